import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isBlobError } from "../errors.ts";
import { ArchiveIndex } from "./archive-index.ts";
import { encodeIndex } from "./index-codec.ts";
import type { IndexEntryInput } from "./types.ts";

const sha = (s: string): Uint8Array => new Uint8Array(createHash("sha256").update(s).digest());
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

function build(paths: readonly string[], order: "sorted" | "as-given" = "sorted"): ArchiveIndex {
  let offset = 0;
  const entries: IndexEntryInput[] = paths.map((path, i) => {
    const size = (i % 5) + 1;
    const e: IndexEntryInput = {
      path,
      offset,
      storedSize: size,
      size,
      sha256: sha(path),
      mode: 0o644,
      uid: i,
      gid: i + 1,
      mtimeNs: BigInt(i) * 1_000_000_000n,
      compression: "none",
    };
    offset += size;
    return e;
  });
  return ArchiveIndex.open(encodeIndex({ entries, dataSize: offset, dataSha256: sha("data") }, { order }));
}

describe("ArchiveIndex lookups", () => {
  const paths = [
    "a",
    "a b/c",
    "a-b/c",
    "a.txt",
    "ab/c",
    "B",
    "dir/sub/deep/file",
    "dir/sub/x",
    "dir/y",
    "caf\u00e9",
    "cafe\u0301",
    "\u00c3\u00a9", // "Ã©": its code units equal the UTF-8 bytes of "é" — must not be confused with it
    "x/\uffff",
    "x/\u{1f600}",
    "x/\ue000",
  ];

  for (const order of ["sorted", "as-given"] as const) {
    it(`finds every path and nothing else (${order})`, () => {
      const idx = build(paths, order);
      const sorted = [...paths].sort(byteOrder);
      expect([...idx].map((e) => e.path)).toEqual(sorted);
      for (const p of paths) {
        const rank = idx.find(p);
        expect(rank, p).toBe(sorted.indexOf(p));
        expect(idx.path(rank)).toBe(p);
        expect(idx.has(p)).toBe(true);
      }
      for (const missing of ["", "a/", "dir", "dir/sub", "é", "caf", "x/\ud83d", "x/\ude00", "zzz", "a\0"]) {
        expect(idx.find(missing), JSON.stringify(missing)).toBe(-1);
        expect(idx.get(missing)).toBeUndefined();
      }
    });
  }

  it("answers the same through every lookup strategy (binary search, hash table, Map)", () => {
    for (const order of ["sorted", "as-given"] as const) {
      // U+FFFD: what a lone surrogate would become if it were encoded instead of refused.
      const all = [...paths, "x/\ufffd"];
      const idx = build(all, order);
      const sorted = [...all].sort(byteOrder);
      // Misses first, so the binary search (the first 16 lookups) sees them too.
      const queries = ["x/\ud83d", "x/\ude00", "", "a/", "dir", "é", "zzz", "a\0", "caf\u00e9x", ...all];
      // The first lookups binary-search, later ones use the hash table, and after 4 096 a Map.
      for (let round = 0; round * queries.length < 5000; round++) {
        for (const q of queries)
          expect(idx.find(q), `${order} round ${round}: ${JSON.stringify(q)}`).toBe(sorted.indexOf(q));
      }
    }
  });

  it("prefixRange and lowerBound follow unsigned UTF-8 byte order", () => {
    const idx = build(paths);
    const sorted = [...paths].sort(byteOrder);
    for (const prefix of [
      "",
      "a",
      "a/",
      "a-",
      "dir/",
      "dir/sub/",
      "dir/sub/deep/",
      "x/",
      "x/\uffff",
      "caf",
      "q",
      "\u00c3",
    ]) {
      const [start, end] = idx.prefixRange(prefix);
      const expected = sorted.filter((p) =>
        Buffer.from(p).subarray(0, Buffer.byteLength(prefix)).equals(Buffer.from(prefix)),
      );
      expect(sorted.slice(start, end), JSON.stringify(prefix)).toEqual(expected);
      const lb = sorted.findIndex((p) => byteOrder(p, prefix) >= 0);
      expect(idx.lowerBound(prefix)).toBe(lb === -1 ? sorted.length : lb);
    }
  });

  it("matches a naive model on a larger generated tree", () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return seed % n;
    };
    const names = ["a", "b", "a-b", "a.b", "a b", "\u00e9", "z", "src", "src-gen", "docs", "docs.md"];
    const set = new Set<string>();
    while (set.size < 600) {
      const depth = 1 + rand(4);
      const parts = Array.from({ length: depth }, () => names[rand(names.length)]!);
      set.add(`${parts.join("/")}.${rand(1000)}`);
    }
    const all = [...set];
    // Walk-like order: shuffle then the encoder keeps it; the reader must sort it.
    for (let i = all.length - 1; i > 0; i--) {
      const j = rand(i + 1);
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    const idx = build(all, "as-given");
    const sorted = [...all].sort(byteOrder);
    expect(idx.sortedOnDisk).toBe(false);
    for (let r = 0; r < sorted.length; r++) expect(idx.path(r)).toBe(sorted[r]);
    for (const p of all) expect(idx.find(p)).toBe(sorted.indexOf(p));
    for (const n of names) {
      const prefix = `${n}/`;
      const [s, e] = idx.prefixRange(prefix);
      expect(sorted.slice(s, e)).toEqual(sorted.filter((p) => p.startsWith(prefix)));
    }
  });

  it("exposes per-rank columns consistent with entry()", () => {
    const idx = build(["b", "a", "c/d"]);
    for (let r = 0; r < idx.length; r++) {
      const e = idx.entry(r);
      expect(idx.offset(r)).toBe(e.offset);
      expect(idx.storedSize(r)).toBe(e.storedSize);
      expect(idx.size(r)).toBe(e.size);
      expect(idx.compression(r)).toBe(e.compression);
      expect(idx.sha256(r)).toBe(e.sha256);
      expect(Buffer.from(idx.sha256Bytes(r)).toString("hex")).toBe(e.sha256);
      expect(idx.mode(r)).toBe(e.mode);
      expect(idx.uid(r)).toBe(e.uid);
      expect(idx.gid(r)).toBe(e.gid);
      expect(idx.mtimeNs(r)).toBe(e.mtimeNs);
      expect(e.sha256).toBe(Buffer.from(sha(e.path)).toString("hex"));
    }
    expect(idx.digest()).toBe(`sha256:${createHash("sha256").update(idx.bytes).digest("hex")}`);
    expect(idx.digest()).toBe(idx.digest());
  });

  it("rejects ranks outside 0..length-1", () => {
    const idx = build(["a"]);
    for (const bad of [-1, 1, 0.5, Number.NaN, 2 ** 32]) {
      let error: unknown;
      try {
        idx.path(bad);
      } catch (e) {
        error = e;
      }
      expect(isBlobError(error, "ERR_INVALID_ARGUMENT"), String(bad)).toBe(true);
    }
  });

  it("rejects non-Uint8Array input", () => {
    expect(() => ArchiveIndex.open("x" as unknown as Uint8Array)).toThrow(/Uint8Array/);
  });
});

describe("ArchiveIndex lookups after many finds", () => {
  it("answers the same before and after switching to its Map", () => {
    const paths = Array.from({ length: 6000 }, (_, i) => `d${i % 13}/é-${i}.txt`);
    const index = build(paths);
    const expected = new Map([...paths].sort(byteOrder).map((p, rank) => [p, rank]));
    // Three rounds cross the switch (after 4096 finds) in the middle of the second one.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2500; i++) {
        const path = paths[(i * 7 + round) % paths.length]!;
        expect(index.find(path)).toBe(expected.get(path));
        expect(index.find(`${path}.missing`)).toBe(-1);
      }
    }
    expect(index.find("d1")).toBe(-1);
    expect(index.find("\ud800")).toBe(-1);
    expect(index.get(paths[42]!)?.path).toBe(paths[42]);
  });
});
