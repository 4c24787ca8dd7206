import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zstdCompressSync } from "node:zlib";
import { Archive, type BlobErrorCode, isBlobError, MemorySource, sha256Hex } from "@blobkit/core";
import { afterAll, describe, expect, it } from "vitest";
import { buildIndexBuffer, type RawIndexEntry } from "../../../packages/core/src/format/index-codec.ts";
import { buildArchive, type TestFile } from "../../../packages/core/src/test-support/build-archive.ts";
import { sha256 } from "./support/arbs.ts";
import { recordResult } from "./support/results.ts";

// The malicious-archive corpus: every hostile archive is opened, each of its files read, and the whole
// archive extracted into a temp destination that sits beside an "outside" directory (and sometimes contains
// symlinks pointing there). Each case names the stage that must refuse it and the exact code; in every case
// nothing outside the destination changes, and no file that failed verification appears in it.

const enc = new TextEncoder();
type Stage = "open" | "read" | "extract";
interface Built {
  index: Uint8Array;
  data: Uint8Array;
}
interface Case {
  name: string;
  build: () => Built | Promise<Built>;
  /** The stage that must refuse it, and the code; `accept` = must be extracted safely inside the destination. */
  expect: { stage: Stage; code: BlobErrorCode; reason?: string } | "accept";
  /** Prepares the destination (symlinks…); gets dest and the sibling outside dir. */
  setupDest?: (dest: string, outside: string) => void;
  overwrite?: boolean;
}

const H = (s: string): Uint8Array => sha256(s);
const rawEntry = (
  path: string | Uint8Array,
  content: string,
  offset: number,
  extra: Partial<RawIndexEntry> = {},
): RawIndexEntry => ({
  path,
  dataOffset: offset,
  dataSize: enc.encode(content).length,
  originalSize: enc.encode(content).length,
  hash: H(content),
  mode: 0o644,
  ...extra,
});
/** An index of raw entries over `data` (data_hash and data_size of `data`). */
function raw(
  entries: RawIndexEntry[],
  data: Uint8Array,
  extra: { version?: number; hashAlgorithm?: number; dataSize?: bigint | number } = {},
): Built {
  return {
    index: buildIndexBuffer({
      entries,
      dataSize: extra.dataSize ?? data.length,
      dataHash: sha256(data),
      version: extra.version,
      hashAlgorithm: extra.hashAlgorithm,
    }),
    data,
  };
}
const one = (path: string | Uint8Array, content = "evil\n"): Built =>
  raw([rawEntry(path, content, 0)], enc.encode(content));
const files = (list: TestFile[]): Promise<Built> => buildArchive(list);

const TB = 1024n ** 4n;
const zeros64M = new Uint8Array(64 * 1024 * 1024);
const bombFrame = zstdCompressSync(zeros64M);

const CASES: Case[] = [
  // ---- sizes: zip bombs -------------------------------------------------------------------------------------
  {
    name: "zip bomb: original size 5 TiB (zstd, 10 stored bytes)",
    build: () =>
      raw(
        [rawEntry("bomb", "x", 0, { dataSize: 10, originalSize: 5n * TB, compression: 1 })],
        new Uint8Array(10),
      ),
    expect: { stage: "open", code: "ERR_LIMIT_EXCEEDED", reason: "file-too-large" },
  },
  {
    name: "zip bomb: raw entry of 2^63 bytes",
    build: () =>
      raw([rawEntry("bomb", "x", 0, { dataSize: 2n ** 63n, originalSize: 2n ** 63n })], new Uint8Array(10)),
    expect: { stage: "open", code: "ERR_LIMIT_EXCEEDED", reason: "file-too-large" },
  },
  {
    name: "zip bomb: data_size 2^64-1",
    build: () => raw([rawEntry("a", "a", 0)], enc.encode("a"), { dataSize: 2n ** 64n - 1n }),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "integer-overflow" },
  },
  {
    name: "zip bomb: 64 MiB of zeros in a 2 KiB frame declared as 1 KiB",
    build: () =>
      raw(
        [
          {
            path: "bomb",
            dataOffset: 0,
            dataSize: bombFrame.length,
            originalSize: 1024,
            hash: H("x"),
            compression: 1,
          },
        ],
        bombFrame,
      ),
    expect: { stage: "read", code: "ERR_DECOMPRESSION" },
  },
  {
    name: "zip bomb: 64 MiB of zeros declared as 60 GiB (within maxFileSize), hash of nothing",
    build: () =>
      raw(
        [
          {
            path: "bomb",
            dataOffset: 0,
            dataSize: bombFrame.length,
            originalSize: 60 * 1024 ** 3,
            hash: H("x"),
            compression: 1,
          },
        ],
        bombFrame,
      ),
    expect: { stage: "read", code: "ERR_DECOMPRESSION" },
  },
  {
    name: "too many entries (count word 2^31)",
    build: () => {
      const b = one("a");
      const idx = b.index.slice();
      patchEntryCount(idx, 0x7fff_ffff);
      return { ...b, index: idx };
    },
    expect: { stage: "open", code: "ERR_LIMIT_EXCEEDED", reason: "too-many-files" },
  },
  {
    name: "path of 5000 bytes",
    build: () => one("p".repeat(5000)),
    expect: { stage: "open", code: "ERR_LIMIT_EXCEEDED", reason: "path-too-long" },
  },
  // ---- ranges ---------------------------------------------------------------------------------------------
  {
    name: "entry beyond the data blob",
    build: () => raw([rawEntry("a", "aaaa", 0), rawEntry("b", "bbbb", 100)], enc.encode("aaaabbbb")),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "entry-out-of-bounds" },
  },
  {
    name: "entry offset+size wraps past 2^53",
    build: () => raw([rawEntry("a", "a", 0, { dataOffset: 2n ** 53n - 1n })], enc.encode("a")),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "entry-out-of-bounds" },
  },
  {
    name: "data blob shorter than the index says",
    build: () => {
      const b = one("a", "hello");
      return { index: b.index, data: b.data.subarray(0, 3) };
    },
    expect: { stage: "open", code: "ERR_INTEGRITY", reason: "data-too-small" },
  },
  {
    name: "overlapping entries: b reuses a's bytes but claims other content",
    build: () => raw([rawEntry("a", "AAAA", 0), { ...rawEntry("b", "BBBB", 0) }], enc.encode("AAAA")),
    expect: { stage: "read", code: "ERR_INTEGRITY" },
  },
  {
    name: "raw entry whose stored size ≠ size",
    build: () => raw([rawEntry("a", "abcd", 0, { originalSize: 3 })], enc.encode("abcd")),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "size-mismatch" },
  },
  {
    name: "tampered content (hash mismatch)",
    build: async () => {
      const b = await files([{ path: "f.txt", content: "genuine" }]);
      const data = b.data.slice();
      data[0] = (data[0] ?? 0) ^ 1;
      return { index: b.index, data };
    },
    expect: { stage: "read", code: "ERR_INTEGRITY" },
  },
  {
    name: "corrupt zstd frame",
    build: async () => {
      const b = await files([{ path: "z", content: "z".repeat(5000), compression: "zstd" }]);
      const data = b.data.slice();
      data[data.length >> 1] = (data[data.length >> 1] ?? 0) ^ 0xff;
      return { index: b.index, data };
    },
    expect: { stage: "read", code: "ERR_DECOMPRESSION" },
  },
  // ---- hashes and enums ---------------------------------------------------------------------------------------
  ...[0, 1, 31, 33, 64].map(
    (n): Case => ({
      name: `hash of ${n} bytes`,
      build: () => raw([rawEntry("a", "a", 0, { hash: new Uint8Array(n) })], enc.encode("a")),
      expect: {
        stage: "open",
        code: "ERR_INVALID_INDEX",
        reason: n === 0 ? "bad-hash-length" : "bad-hash-length",
      },
    }),
  ),
  {
    name: "missing hash",
    build: () => raw([{ path: "a", dataSize: 1, originalSize: 1 }], enc.encode("a")),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "missing-hash" },
  },
  {
    name: "data_hash of 31 bytes",
    build: () => ({
      index: buildIndexBuffer({
        entries: [rawEntry("a", "a", 0)],
        dataSize: 1,
        dataHash: new Uint8Array(31),
      }),
      data: enc.encode("a"),
    }),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "bad-data-hash-length" },
  },
  ...[2, 7, -1, 127].map(
    (c): Case => ({
      name: `unknown compression ${c}`,
      build: () => raw([rawEntry("a", "a", 0, { compression: c })], enc.encode("a")),
      expect: { stage: "open", code: "ERR_UNSUPPORTED", reason: "unsupported-compression" },
    }),
  ),
  {
    name: "index version 2",
    build: () => raw([rawEntry("a", "a", 0)], enc.encode("a"), { version: 2 }),
    expect: { stage: "open", code: "ERR_UNSUPPORTED", reason: "unsupported-version" },
  },
  {
    name: "hash algorithm 1",
    build: () => raw([rawEntry("a", "a", 0)], enc.encode("a"), { hashAlgorithm: 1 }),
    expect: { stage: "open", code: "ERR_UNSUPPORTED", reason: "unsupported-hash-algorithm" },
  },
  // ---- paths ---------------------------------------------------------------------------------------------------
  ...[
    "../evil",
    "a/../../evil",
    "..",
    "/etc/evil",
    "//evil",
    "a\0b",
    "",
    ".",
    "./a",
    "a/./b",
    "a//b",
    "a/",
  ].map(
    (p): Case => ({
      name: `path ${JSON.stringify(p)}`,
      build: () => one(p),
      expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "invalid-path" },
    }),
  ),
  {
    name: "path that is not UTF-8",
    build: () => one(new Uint8Array([0x61, 0xff, 0x2f, 0x62])),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "path-not-utf8" },
  },
  {
    name: "path with an encoded surrogate (CESU)",
    build: () => one(new Uint8Array([0xed, 0xa0, 0x80])),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "path-not-utf8" },
  },
  {
    name: "duplicate paths",
    build: () => raw([rawEntry("a", "x", 0), rawEntry("a", "x", 0)], enc.encode("x")),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "duplicate-path" },
  },
  {
    name: "duplicate paths in walk order (not adjacent)",
    build: () => raw([rawEntry("a", "x", 0), rawEntry("b", "x", 0), rawEntry("a", "x", 0)], enc.encode("x")),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "duplicate-path" },
  },
  {
    name: "file and directory conflict (a, a/b)",
    build: () => raw([rawEntry("a", "x", 0), rawEntry("a/b", "x", 0)], enc.encode("x")),
    expect: { stage: "open", code: "ERR_INVALID_INDEX", reason: "file-directory-conflict" },
  },
  // Legal on POSIX: written literally inside the destination (refused on Windows with reason windows-separator).
  {
    name: "backslashes ..\\..\\evil (a literal file name on POSIX)",
    build: () =>
      files([
        { path: "..\\..\\evil", content: "x" },
        { path: "a\\b", content: "y" },
      ]),
    expect: "accept",
  },
  {
    name: "NFC and NFD spellings of café (two distinct byte paths)",
    build: () =>
      files([
        { path: "caf\u00e9", content: "nfc" },
        { path: "cafe\u0301", content: "nfd" },
      ]),
    expect: "accept",
  },
  {
    name: "case collision README / readme",
    build: () =>
      files([
        { path: "README", content: "upper" },
        { path: "readme", content: "lower" },
      ]),
    expect: "accept",
  },
  // ---- destinations holding symlinks ---------------------------------------------------------------------------
  {
    name: "destination directory is a symlink to outside (sub → ../outside)",
    build: () => files([{ path: "sub/evil.txt", content: "pwned" }]),
    setupDest: (dest, outside) => symlinkSync(outside, join(dest, "sub")),
    expect: { stage: "extract", code: "ERR_PATH_ESCAPE", reason: "symlink" },
  },
  {
    name: "nested destination symlink (a/b → outside), deep file",
    build: () =>
      files([
        { path: "a/b/c/d.txt", content: "pwned" },
        { path: "a/ok.txt", content: "fine" },
      ]),
    setupDest: (dest, outside) => {
      mkdirSync(join(dest, "a"));
      symlinkSync(outside, join(dest, "a", "b"));
    },
    expect: { stage: "extract", code: "ERR_PATH_ESCAPE", reason: "symlink" },
  },
  {
    name: "destination file is a symlink to an outside file, overwrite on",
    build: () => files([{ path: "x.txt", content: "pwned" }]),
    setupDest: (dest, outside) => symlinkSync(join(outside, "target.txt"), join(dest, "x.txt")),
    overwrite: true,
    expect: "accept",
  },
  {
    name: "destination file is a symlink to an outside file, overwrite off (skipped)",
    build: () => files([{ path: "x.txt", content: "pwned" }]),
    setupDest: (dest, outside) => symlinkSync(join(outside, "target.txt"), join(dest, "x.txt")),
    expect: "accept",
  },
  {
    name: "dangling destination symlink to a path outside, overwrite on",
    build: () => files([{ path: "new.txt", content: "pwned" }]),
    setupDest: (dest, outside) => symlinkSync(join(outside, "created-by-extract.txt"), join(dest, "new.txt")),
    overwrite: true,
    expect: "accept",
  },
];

/** Sets the entries-vector length word of an index built by buildIndexBuffer. */
function patchEntryCount(index: Uint8Array, count: number): void {
  const dv = new DataView(index.buffer, index.byteOffset, index.length);
  const root = dv.getUint32(0, true);
  const vt = root - dv.getInt32(root, true);
  const off = dv.getUint16(vt + 4 + 2 * 2, true);
  const field = root + off;
  const vec = field + dv.getUint32(field, true);
  dv.setUint32(vec, count, true);
}

/** Every path below `dir` with its type and content (links: their target), for before/after comparison. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      const r = rel === "" ? name : `${rel}/${name}`;
      const st = lstatSync(full);
      if (st.isSymbolicLink()) out.set(r, `link:${readlinkSync(full)}`);
      else if (st.isDirectory()) {
        out.set(r, "dir");
        walk(full, r);
      } else out.set(r, `file:${st.mode & 0o777}:${sha256Hex(readFileSync(full))}`);
    }
  };
  walk(dir, "");
  return out;
}

const results: { name: string; outcome: string; ok: boolean }[] = [];
const work = mkdtempSync(join(tmpdir(), "blobkit-stress-corpus-"));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  const rejected = results.filter((r) => r.outcome !== "accepted safely").length;
  const summary = {
    corpusSize: results.length,
    rejectedWithExpectedCode: rejected,
    acceptedSafely: results.length - rejected,
    failures: results.filter((r) => !r.ok).map((r) => r.name),
    cases: results,
  };
  recordResult("corpus", "maliciousArchives", summary);
  console.log(
    `[corpus] ${results.length} hostile archives: ${rejected} rejected with the expected code, ${results.length - rejected} accepted and extracted safely inside the destination, ${summary.failures.length} failures`,
  );
});

describe("malicious-archive corpus", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const built = await c.build();
    const root = mkdtempSync(join(work, "case-"));
    const dest = join(root, "dest");
    const outside = join(root, "outside");
    mkdirSync(dest);
    mkdirSync(outside);
    writeFileSync(join(outside, "target.txt"), "outside content\n");
    writeFileSync(join(root, "sibling.txt"), "sibling\n");
    c.setupDest?.(dest, outside);
    const before = snapshot(root);
    const failures: unknown[] = [];
    let stage: Stage | "none" = "none";
    let error: unknown;
    let archive: Archive | undefined;
    const hashes = new Map<string, string>();
    try {
      stage = "open";
      archive = await Archive.open({ index: built.index, source: new MemorySource(built.data) });
      stage = "read";
      for (const entry of archive.entries()) hashes.set(entry.path, entry.sha256);
      for (const entry of archive.entries()) {
        try {
          const bytes = await archive.readFile(entry.path);
          // A read that returns must return verified bytes.
          if (sha256Hex(bytes as Uint8Array) !== entry.sha256)
            failures.push(`unverified bytes for ${entry.path}`);
        } catch (e) {
          failures.push(e);
        }
      }
      if (failures.length > 0) throw failures[0];
      stage = "extract";
      await archive.extract(dest, { overwrite: c.overwrite === true });
      stage = "none";
    } catch (e) {
      error = e;
      // Extraction must refuse as well when reading did (nothing unverified may land in the destination).
      if (stage === "read" && archive !== undefined) {
        const extractError = await archive.extract(dest).then(
          () => undefined,
          (x: unknown) => x,
        );
        expect(isBlobError(extractError), `extract after a failed read: ${String(extractError)}`).toBe(true);
        expect((extractError as { code: string }).code).toBe((e as { code: string }).code);
      }
    } finally {
      await archive?.close();
    }
    // Nothing outside the destination changed.
    const after = snapshot(root);
    const outsideBefore = [...before].filter(([p]) => !p.startsWith("dest/") && p !== "dest");
    const outsideAfter = [...after].filter(([p]) => !p.startsWith("dest/") && p !== "dest");
    expect(new Map(outsideAfter)).toEqual(new Map(outsideBefore));
    // No temp files left, and every new or changed file in the destination holds verified content (a refused
    // archive may leave its *other*, verified files: each file is published on its own, after verification).
    for (const [p, v] of after) {
      if (!p.startsWith("dest/")) continue;
      expect(p).not.toMatch(/\.blobkit-.*\.tmp$/);
      if (v.startsWith("file:") && before.get(p) !== v) {
        const expected = hashes.get(p.slice("dest/".length));
        expect(v.slice(v.lastIndexOf(":") + 1), `unverified content at ${p}`).toBe(expected);
      }
    }
    let outcome: string;
    if (c.expect === "accept") {
      expect(error, `expected acceptance, got ${String(error)}`).toBeUndefined();
      outcome = "accepted safely";
    } else {
      expect(
        isBlobError(error),
        `expected a BlobError at ${c.expect.stage}, got ${String(error)} at ${stage}`,
      ).toBe(true);
      const e = error as { code: string; reason?: string };
      expect({ stage, code: e.code, ...(c.expect.reason === undefined ? {} : { reason: e.reason }) }).toEqual(
        c.expect,
      );
      outcome = `${stage}: ${e.code}${e.reason === undefined ? "" : `/${e.reason}`}`;
    }
    results.push({ name: c.name, outcome, ok: true });
  });
});
