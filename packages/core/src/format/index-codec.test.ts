import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type BlobErrorCode, isBlobError } from "../errors.ts";
import type { Limits } from "../limits.ts";
import {
  buildIndexBuffer,
  decodeIndex,
  encodeIndex,
  type RawIndex,
  type RawIndexEntry,
} from "./index-codec.ts";
import type { IndexEntryInput } from "./types.ts";

const sha = (s: string | Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(s).digest());
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

// --- raw FlatBuffer inspection (independent of the decoder under test) -------------------------------------
const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const u32 = (b: Uint8Array, p: number): number => view(b).getUint32(p, true);
const u16 = (b: Uint8Array, p: number): number => view(b).getUint16(p, true);
const deref = (b: Uint8Array, p: number): number => p + u32(b, p);
const rootOf = (b: Uint8Array): number => u32(b, 0);
const vtableOf = (b: Uint8Array, t: number): number => t - view(b).getInt32(t, true);
/** Absolute position of field `id` of the table at `t`, or 0 when the vtable says it is absent. */
function fieldAt(b: Uint8Array, t: number, id: number): number {
  const vt = vtableOf(b, t);
  const slot = 4 + 2 * id;
  if (slot >= u16(b, vt)) return 0;
  const off = u16(b, vt + slot);
  return off === 0 ? 0 : t + off;
}
const entriesVector = (b: Uint8Array): number => deref(b, fieldAt(b, rootOf(b), 2));
const entryTable = (b: Uint8Array, i: number): number => deref(b, entriesVector(b) + 4 + 4 * i);
const setU32 = (b: Uint8Array, p: number, v: number): void => view(b).setUint32(p, v >>> 0, true);
const setI32 = (b: Uint8Array, p: number, v: number): void => view(b).setInt32(p, v, true);
const setU16 = (b: Uint8Array, p: number, v: number): void => view(b).setUint16(p, v, true);

function expectReject(
  bytes: Uint8Array,
  code: BlobErrorCode,
  reason: string,
  limits?: Partial<Limits>,
): void {
  let error: unknown;
  try {
    decodeIndex(bytes, { limits });
  } catch (e) {
    error = e;
  }
  expect(isBlobError(error), `expected a BlobError, got ${String(error)}`).toBe(true);
  expect({ code: (error as { code: string }).code, reason: (error as { reason: string }).reason }).toEqual({
    code,
    reason,
  });
}

// --- fixtures ------------------------------------------------------------------------------------------------
const H32 = sha("content");
function entry(
  path: string | Uint8Array,
  offset: number,
  size: number,
  extra: RawIndexEntry = {},
): RawIndexEntry {
  return { path, dataOffset: offset, dataSize: size, originalSize: size, hash: H32, mode: 0o644, ...extra };
}
function raw(entries: RawIndexEntry[] | undefined, extra: Partial<RawIndex> = {}): Uint8Array {
  return buildIndexBuffer({ entries, dataSize: 100, dataHash: H32, ...extra });
}
const valid = (): Uint8Array => raw([entry("a.txt", 0, 10), entry("dir/b.txt", 10, 20), entry("z", 30, 5)]);

function input(
  path: string,
  offset: number,
  storedSize: number,
  size: number,
  compression: "none" | "zstd",
  mode: number,
  uid: number,
  gid: number,
  mtimeNs: bigint,
): IndexEntryInput {
  return { path, offset, storedSize, size, compression, mode, uid, gid, mtimeNs, sha256: sha(path) };
}

// A Go-style tree in fs.WalkDir order (reference §1.3): `docs/` before `docs-old/` and `docs.md`.
const WALK: IndexEntryInput[] = [
  input("docs/guide.md", 0, 120, 300, "zstd", 0o644, 1000, 1000, 1700000000123456789n),
  input("docs-old/readme.txt", 120, 5, 5, "none", 0o600, 0, 0, 0n),
  input("docs.md", 125, 0, 0, "zstd", 0o644, 0, 0, -1n),
  input("src/a.ts", 125, 10, 10, "none", 0o755, 501, 20, 1n),
  input("src-gen/b.ts", 135, 7, 7, "none", 0o644, 501, 20, -(2n ** 63n)),
  input("unicode/cafe\u0301 \u00fc.txt", 142, 8, 8, "none", 0o644, 0, 0, 2n ** 63n - 1n),
];

// Golden vectors produced by the Python port of the Go FlatBuffers builder (Debian python3-flatbuffers 2.0.8)
// driven in exactly the Go writer's call order (reference §1.2) for WALK above (data_hash = sha256("data"),
// data_size 150) and for an empty archive. Our JS encoder must reproduce them byte for byte.
const GOLDEN_WALK =
  "180000000000000000000e001800000000001400080004000e0000001400000096000000000000000000000028000000200000003a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b70600000030000000a8000000200100008801000004020000880200001800340030000000280020001c0018001400100008000700180000000000000115cd853dfe9c9717e8030000e8030000a4010000180000002c010000000000007800000000000000280000002000000007fdd026b11c494c3b62c97f764f6939803c453389ebefd6b05e6f187d44859a0d000000646f63732f67756964652e6d640000001000280024001c0014000c00080004001000000080010000200000000500000000000000050000000000000078000000000000002800000020000000cb358d2ba3a69ac31ef19bd2a5a5c16b76a084b438e42f7123efa07d3090aaa013000000646f63732d6f6c642f726561646d652e747874001800240020001800000000001400100000000000080007001800000000000001ffffffffffffffffa4010000100000007d0000000000000028000000200000006a042219e4779f0e778edb839c177737f9d49be99d5032a644a5ae7cded8387607000000646f63732e6d640000001600380034002c0024001c001800140010000c00040016000000010000000000000014000000f5010000ed010000200000000a000000000000000a000000000000007d000000000000002800000020000000072fc23b941d05af2383888f292b78e406e0e82a4a3f8ee698113dd9bcc79e5f080000007372632f612e7473000016003c0038002c0024001c001800140010000c00040016000000000000000000008014000000f5010000a40100002400000007000000000000000700000000000000870000000000000000000000280000002000000034b1c26c9cd3df9975a0fe60bc1c4a111d8794fb321987c25b01dfa354e92b040c0000007372632d67656e2f622e7473000016003400300024001c00140010000c0000000000040016000000ffffffffffffff7fa401000024000000080000000000000008000000000000008e00000000000000000000002800000020000000d403c5c92085c6a9fc708c2561063b2ab5741cd0459e4457393c19c75c7e28e015000000756e69636f64652f63616665cc8120c3bc2e747874000000";
const GOLDEN_EMPTY =
  "1400000000000e000c00000000000800000004000e000000080000002800000020000000e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85500000000";

describe("encodeIndex: Go compatibility", () => {
  it("reproduces the Go builder's bytes for a walk-ordered tree and for an empty archive", () => {
    const walk = encodeIndex(
      { entries: WALK, dataSize: 150, dataSha256: sha("data") },
      { order: "as-given" },
    );
    expect(hex(walk)).toBe(GOLDEN_WALK);
    const empty = encodeIndex({ entries: [], dataSize: 0, dataSha256: hex(sha("")) });
    expect(hex(empty)).toBe(GOLDEN_EMPTY);
  });

  it("spends the Go tool's 108 bytes per entry on the workload of its IndexSize benchmark", () => {
    // Go's benchmark (reference §13): `dirNN/fileNNNNN.dat` over 16 directories, raw 64 KiB files, zero
    // uid/gid/mtime: ~108 B/entry (10 000 entries → 1 080 088 B). Longer paths and real mtimes cost more.
    const build = (n: number): number => {
      const paths = Array.from(
        { length: n },
        (_, i) => `dir${String(i % 16).padStart(2, "0")}/file${String(i).padStart(5, "0")}.dat`,
      ).sort();
      const entries = paths.map((path, i) => input(path, i * 65536, 65536, 65536, "none", 0o644, 0, 0, 0n));
      return encodeIndex({ entries, dataSize: n * 65536 }).byteLength;
    };
    expect((build(2000) - build(1000)) / 1000).toBe(108);
  });

  it("omits default-valued scalars like Go (ForceDefaults off)", () => {
    const b = Buffer.from(GOLDEN_WALK, "hex");
    const root = rootOf(b);
    expect(fieldAt(b, root, 0)).toBe(0); // version (1 = default)
    expect(fieldAt(b, root, 1)).toBe(0); // hash_algorithm (SHA256 = default)
    expect(fieldAt(b, root, 2)).not.toBe(0); // entries
    expect(fieldAt(b, root, 4)).not.toBe(0); // data_hash
    const first = entryTable(b, 0); // docs/guide.md: offset 0, zstd
    expect(fieldAt(b, first, 1)).toBe(0); // data_offset 0
    expect(fieldAt(b, first, 9)).not.toBe(0); // compression zstd
    const second = entryTable(b, 1); // docs-old/readme.txt: uid/gid/mtime 0, compression none
    for (const id of [6, 7, 8, 9]) expect(fieldAt(b, second, id)).toBe(0);
    const third = entryTable(b, 2); // docs.md: empty zstd file
    expect(fieldAt(b, third, 2)).toBe(0); // data_size 0
    expect(fieldAt(b, third, 3)).toBe(0); // original_size 0
    // An empty archive: empty entries vector, no data_size, data_hash = sha256("").
    const e = Buffer.from(GOLDEN_EMPTY, "hex");
    expect(u32(e, entriesVector(e))).toBe(0);
    expect(fieldAt(e, rootOf(e), 3)).toBe(0);
    const dh = deref(e, fieldAt(e, rootOf(e), 4));
    expect(hex(e.subarray(dh + 4, dh + 4 + u32(e, dh)))).toBe(hex(sha("")));
  });

  it("reads a Go walk-ordered index: exact lookups, prefix ranges and byte-order iteration all work", () => {
    const idx = decodeIndex(Buffer.from(GOLDEN_WALK, "hex"));
    expect(idx.sortedOnDisk).toBe(false);
    expect(idx.version).toBe(1);
    expect(idx.length).toBe(6);
    expect(idx.dataSize).toBe(150);
    expect(idx.dataSha256).toBe(hex(sha("data")));
    const sorted = WALK.map((e) => e.path).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect([...idx].map((e) => e.path)).toEqual(sorted);
    expect(sorted.slice(0, 3)).toEqual(["docs-old/readme.txt", "docs.md", "docs/guide.md"]);
    for (const [disk, e] of WALK.entries()) {
      const rank = idx.find(e.path);
      expect(rank, e.path).toBe(sorted.indexOf(e.path));
      expect(idx.diskIndex(rank)).toBe(disk);
      expect(idx.get(e.path)).toEqual({ ...e, sha256: hex(sha(e.path)) });
    }
    const [s, end] = idx.prefixRange("docs/");
    expect(end - s).toBe(1);
    expect(idx.path(s)).toBe("docs/guide.md");
    const [s2, e2] = idx.prefixRange("src/");
    expect([s2, e2].map((r) => (r < idx.length ? idx.path(r) : undefined))).toEqual([
      "src/a.ts",
      "unicode/cafe\u0301 \u00fc.txt",
    ]);
    expect(idx.prefixRange("docs")).toEqual([0, 3]);
    expect(idx.find("docs")).toBe(-1);
    expect(idx.find("unicode/caf\u00e9 \u00fc.txt")).toBe(-1); // NFC form of an NFD name is a different path
  });

  it("reads the empty archive", () => {
    const idx = decodeIndex(Buffer.from(GOLDEN_EMPTY, "hex"));
    expect(idx.length).toBe(0);
    expect(idx.dataSize).toBe(0);
    expect(idx.dataSha256).toBe(hex(sha("")));
    expect(idx.sortedOnDisk).toBe(true);
    expect([...idx]).toEqual([]);
    expect(idx.find("a")).toBe(-1);
    expect(idx.prefixRange("")).toEqual([0, 0]);
    expect(idx.totalSize()).toBe(0);
  });
});

describe("encodeIndex / decodeIndex round trip", () => {
  const entries: IndexEntryInput[] = [
    input("z/last file.bin", 2 ** 33, 3, 3, "none", 0o600, 4294967295, 4294967295, 2n ** 63n - 1n),
    input("a b/c d.txt", 0, 12, 100, "zstd", 0o644, 0, 0, -1234567890123456789n),
    input("empty.zst", 12, 0, 0, "zstd", 0o644, 1, 2, 0n),
    input("emoji/\u{1f600}.txt", 12, 4, 4, "none", 0o755, 0, 0, 1n),
    input("emoji/\uffff.txt", 16, 1, 1, "none", 0o644, 0, 0, 1n),
    input("nfd/cafe\u0301", 17, 1, 1, "none", 0o644, 0, 0, 1n),
    input("nfc/caf\u00e9", 18, 1, 1, "none", 0o644, 0, 0, 1n),
    input("B", 19, 1, 1, "none", 0o644, 0, 0, 1n),
    input("big/huge.bin", 2 ** 40, 2 ** 36, 2 ** 36, "none", 0o644, 0, 0, 1n),
  ];
  const dataSize = 2 ** 40 + 2 ** 36;

  it("round-trips every field and sorts by UTF-8 byte order", () => {
    const bytes = encodeIndex({ entries, dataSize, dataSha256: sha("d") });
    const idx = decodeIndex(bytes);
    expect(idx.sortedOnDisk).toBe(true);
    expect(idx.length).toBe(entries.length);
    const expectedOrder = entries
      .map((e) => e.path)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    // U+FFFF (EF BF BF) sorts before U+1F600 (F0 9F 98 80) in bytes though not in UTF-16.
    expect(expectedOrder.indexOf("emoji/\uffff.txt")).toBeLessThan(
      expectedOrder.indexOf("emoji/\u{1f600}.txt"),
    );
    expect([...idx].map((e) => e.path)).toEqual(expectedOrder);
    for (const e of entries) {
      const got = idx.get(e.path);
      expect(got).toEqual({ ...e, sha256: hex(sha(e.path)) });
    }
    expect(idx.totalSize()).toBe(entries.reduce((n, e) => n + e.size, 0));
    expect(idx.totalStoredSize()).toBe(entries.reduce((n, e) => n + e.storedSize, 0));
    // A view into a bigger buffer at an odd offset decodes the same.
    const shifted = new Uint8Array(bytes.length + 7);
    shifted.set(bytes, 3);
    const again = decodeIndex(shifted.subarray(3, 3 + bytes.length));
    expect([...again]).toEqual([...idx]);
  });

  it("keeps caller order with order: as-given and still looks everything up", () => {
    const bytes = encodeIndex({ entries, dataSize, dataSha256: sha("d") }, { order: "as-given" });
    const idx = decodeIndex(bytes);
    expect(idx.sortedOnDisk).toBe(false);
    for (const [disk, e] of entries.entries()) expect(idx.diskIndex(idx.find(e.path))).toBe(disk);
  });

  it("accepts hex hashes and masks mode to the permission bits", () => {
    const e = { ...input("f", 0, 1, 1, "none", 0o100644, 0, 0, 0n), sha256: hex(sha("f")) };
    const idx = decodeIndex(encodeIndex({ entries: [e], dataSize: 1 }));
    expect(idx.mode(0)).toBe(0o644);
    expect(idx.sha256(0)).toBe(hex(sha("f")));
    expect(idx.dataSha256).toBeUndefined();
  });

  it("rejects invalid input with the decoder's reasons", () => {
    const ok = input("a", 0, 1, 1, "none", 0o644, 0, 0, 0n);
    const cases: [IndexEntryInput[], number, string, string][] = [
      [[ok, ok], 2, "ERR_INVALID_ARGUMENT", "duplicate-path"],
      [[ok, { ...ok, path: "a/b", offset: 1 }], 2, "ERR_INVALID_ARGUMENT", "file-directory-conflict"],
      [
        [
          { ...ok, path: "a/b" },
          { ...ok, path: "a-c" },
          { ...ok, path: "a" },
        ],
        1,
        "ERR_INVALID_ARGUMENT",
        "file-directory-conflict",
      ],
      [[{ ...ok, path: "b" }, ok, { ...ok, path: "b" }], 1, "ERR_INVALID_ARGUMENT", "duplicate-path"],
      [[{ ...ok, path: "../x" }], 1, "ERR_INVALID_PATH", "'..' segment"],
      [[{ ...ok, sha256: new Uint8Array(31) }], 1, "ERR_INVALID_ARGUMENT", "bad-hash"],
      [[{ ...ok, sha256: "ABC" }], 1, "ERR_INVALID_ARGUMENT", "bad-hash"],
      [[{ ...ok, size: 2 }], 2, "ERR_INVALID_ARGUMENT", "size-mismatch"],
      [[{ ...ok, offset: 1 }], 1, "ERR_INVALID_ARGUMENT", "entry-out-of-bounds"],
      [[{ ...ok, offset: -1 }], 1, "ERR_INVALID_ARGUMENT", "bad-size"],
      [[{ ...ok, offset: 0.5 }], 1, "ERR_INVALID_ARGUMENT", "bad-size"],
      [[{ ...ok, uid: -1 }], 1, "ERR_INVALID_ARGUMENT", "bad-metadata"],
      [[{ ...ok, mtimeNs: 2n ** 63n }], 1, "ERR_INVALID_ARGUMENT", "bad-metadata"],
      [[{ ...ok, compression: "gzip" as "none" }], 1, "ERR_INVALID_ARGUMENT", "bad-compression"],
    ];
    for (const [list, dataSize, code, reason] of cases) {
      let error: unknown;
      try {
        encodeIndex({ entries: list, dataSize });
      } catch (e) {
        error = e;
      }
      expect(isBlobError(error), reason).toBe(true);
      expect([(error as { code: string }).code, (error as { reason: string }).reason]).toEqual([
        code,
        reason,
      ]);
    }
  });
});

describe("decodeIndex rejects malformed and malicious indexes", () => {
  it("accepts the base fixture (sanity)", () => {
    expect([...decodeIndex(valid())].map((e) => e.path)).toEqual(["a.txt", "dir/b.txt", "z"]);
  });

  const structural: [string, (b: Uint8Array) => void, string][] = [
    ["root offset past the end", (b) => setU32(b, 0, b.length + 100), "offset-out-of-bounds"],
    ["root offset 0", (b) => setU32(b, 0, 0), "offset-out-of-bounds"],
    ["root offset at the last byte", (b) => setU32(b, 0, b.length - 1), "offset-out-of-bounds"],
    ["vtable past the end", (b) => setI32(b, rootOf(b), -b.length), "vtable-out-of-bounds"],
    ["vtable before the start", (b) => setI32(b, rootOf(b), rootOf(b) + 64), "vtable-out-of-bounds"],
    ["vtable size odd", (b) => setU16(b, vtableOf(b, rootOf(b)), 5), "vtable-out-of-bounds"],
    ["vtable size too small", (b) => setU16(b, vtableOf(b, rootOf(b)), 2), "vtable-out-of-bounds"],
    ["vtable size past the end", (b) => setU16(b, vtableOf(b, rootOf(b)), 0xfffe), "vtable-out-of-bounds"],
    ["object size past the end", (b) => setU16(b, vtableOf(b, rootOf(b)) + 2, 0xffff), "table-out-of-bounds"],
    [
      "field offset outside its table",
      (b) => {
        const vt = vtableOf(b, rootOf(b));
        setU16(b, vt + 4 + 2 * 2, u16(b, vt + 2)); // entries field at the object's end
      },
      "field-out-of-bounds",
    ],
    [
      "entries vector length past the end",
      (b) => setU32(b, entriesVector(b), 100_000),
      "vector-out-of-bounds",
    ],
    [
      "entry offset past the end",
      (b) => setU32(b, entriesVector(b) + 4, 0x7fff_0000),
      "offset-out-of-bounds",
    ],
    [
      "entry offset with the sign bit",
      (b) => setU32(b, entriesVector(b) + 4, 0x8000_0010),
      "offset-out-of-bounds",
    ],
    [
      "path length past the end",
      (b) => setU32(b, deref(b, fieldAt(b, entryTable(b, 0), 0)), 0xffff_fff0),
      "string-out-of-bounds",
    ],
    [
      "path not NUL-terminated",
      (b) => {
        const s = deref(b, fieldAt(b, entryTable(b, 0), 0));
        b[s + 4 + u32(b, s)] = 0x41;
      },
      "string-not-terminated",
    ],
    [
      "hash length past the end",
      (b) => setU32(b, deref(b, fieldAt(b, entryTable(b, 0), 4)), 0x00ff_ffff),
      "vector-out-of-bounds",
    ],
    ["entry vtable past the end", (b) => setI32(b, entryTable(b, 1), -b.length), "vtable-out-of-bounds"],
  ];
  for (const [name, patch, reason] of structural) {
    it(`structure: ${name}`, () => {
      const b = valid();
      patch(b);
      expectReject(b, "ERR_INVALID_INDEX", reason);
    });
  }

  const semantic: [string, () => Uint8Array, BlobErrorCode, string, Partial<Limits>?][] = [
    ["too short", () => new Uint8Array(8), "ERR_INVALID_INDEX", "truncated"],
    ["missing entries", () => raw(undefined), "ERR_INVALID_INDEX", "missing-entries"],
    [
      "missing path",
      () => raw([{ ...entry("a", 0, 1), path: undefined }]),
      "ERR_INVALID_INDEX",
      "missing-path",
    ],
    [
      "missing hash",
      () => raw([{ ...entry("a", 0, 1), hash: undefined }]),
      "ERR_INVALID_INDEX",
      "missing-hash",
    ],
    [
      "31-byte hash",
      () => raw([entry("a", 0, 1, { hash: new Uint8Array(31) })]),
      "ERR_INVALID_INDEX",
      "bad-hash-length",
    ],
    [
      "33-byte hash",
      () => raw([entry("a", 0, 1, { hash: new Uint8Array(33) })]),
      "ERR_INVALID_INDEX",
      "bad-hash-length",
    ],
    [
      "empty hash",
      () => raw([entry("a", 0, 1, { hash: new Uint8Array(0) })]),
      "ERR_INVALID_INDEX",
      "bad-hash-length",
    ],
    ["'..' segment", () => raw([entry("../x", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["'..' inside", () => raw([entry("a/../x", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["absolute path", () => raw([entry("/abs", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["empty segment", () => raw([entry("a//b", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["'.' segment", () => raw([entry("a/./b", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["just '.'", () => raw([entry(".", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["trailing slash", () => raw([entry("a/", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["empty path", () => raw([entry("", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["NUL in path", () => raw([entry("a\0b", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    ["NUL in non-ASCII path", () => raw([entry("\u00e9\0b", 0, 1)]), "ERR_INVALID_INDEX", "invalid-path"],
    [
      "invalid UTF-8",
      () => raw([entry(Uint8Array.of(0x61, 0xff, 0x62), 0, 1)]),
      "ERR_INVALID_INDEX",
      "path-not-utf8",
    ],
    [
      "UTF-8 encoded surrogate",
      () => raw([entry(Uint8Array.of(0xed, 0xa0, 0x80), 0, 1)]),
      "ERR_INVALID_INDEX",
      "path-not-utf8",
    ],
    [
      "overlong UTF-8 '/'",
      () => raw([entry(Uint8Array.of(0x61, 0xc0, 0xaf), 0, 1)]),
      "ERR_INVALID_INDEX",
      "path-not-utf8",
    ],
    [
      "path too long",
      () => raw([entry("abcdefghijk", 0, 1)]),
      "ERR_LIMIT_EXCEEDED",
      "path-too-long",
      { maxPathLength: 10 },
    ],
    [
      "duplicate (sorted)",
      () => raw([entry("a", 0, 1), entry("a", 1, 1)]),
      "ERR_INVALID_INDEX",
      "duplicate-path",
    ],
    [
      "duplicate (unsorted)",
      () => raw([entry("b", 0, 1), entry("a", 1, 1), entry("b", 2, 1)]),
      "ERR_INVALID_INDEX",
      "duplicate-path",
    ],
    [
      "file/directory conflict (adjacent)",
      () => raw([entry("a", 0, 1), entry("a/b", 1, 1)]),
      "ERR_INVALID_INDEX",
      "file-directory-conflict",
    ],
    [
      "file/directory conflict (separated)",
      () => raw([entry("a", 0, 1), entry("a-x", 1, 1), entry("a.y", 2, 1), entry("a/b/c", 3, 1)]),
      "ERR_INVALID_INDEX",
      "file-directory-conflict",
    ],
    [
      "file/directory conflict (walk order)",
      () => raw([entry("a/b", 0, 1), entry("a-x", 1, 1), entry("a", 2, 1)]),
      "ERR_INVALID_INDEX",
      "file-directory-conflict",
    ],
    [
      "entries sharing one path string",
      () => {
        const b = raw([entry("first-path", 0, 1), entry("other-path", 1, 1)]);
        // uoffsets only point forward: aim entry 0's path field at entry 1's string.
        const s1 = deref(b, fieldAt(b, entryTable(b, 1), 0));
        const f0 = fieldAt(b, entryTable(b, 0), 0);
        setU32(b, f0, s1 - f0);
        return b;
      },
      "ERR_INVALID_INDEX",
      "duplicate-path",
    ],
    [
      "unsorted entries re-using one long path string (cost amplification)",
      () => {
        const list = [entry("z", 0, 1), entry("y", 1, 1)];
        for (let i = 2; i < 10; i++) list.push(entry(`p${i}`, i, 1));
        list.push(entry("c".repeat(300), 10, 1));
        const b = raw(list);
        const long = deref(b, fieldAt(b, entryTable(b, 10), 0));
        for (let i = 2; i < 10; i++) {
          const f = fieldAt(b, entryTable(b, i), 0);
          setU32(b, f, long - f);
        }
        return b;
      },
      "ERR_INVALID_INDEX",
      "string-overlap",
    ],
    ["entry past data end", () => raw([entry("a", 95, 10)]), "ERR_INVALID_INDEX", "entry-out-of-bounds"],
    ["entry larger than data", () => raw([entry("a", 0, 101)]), "ERR_INVALID_INDEX", "entry-out-of-bounds"],
    [
      "offset above 2^53",
      () => raw([entry("a", 0, 1, { dataOffset: 2n ** 63n })]),
      "ERR_INVALID_INDEX",
      "integer-overflow",
    ],
    [
      "offset wraps uint64",
      () => raw([entry("a", 0, 10, { dataOffset: 2n ** 64n - 5n })]),
      "ERR_INVALID_INDEX",
      "integer-overflow",
    ],
    [
      "data_size above 2^53",
      () => raw([entry("a", 0, 1)], { dataSize: 2n ** 60n }),
      "ERR_INVALID_INDEX",
      "integer-overflow",
    ],
    [
      "size above 2^53",
      () => raw([entry("a", 0, 1, { dataSize: 2n ** 62n, originalSize: 2n ** 62n })]),
      "ERR_LIMIT_EXCEEDED",
      "file-too-large",
    ],
    [
      "size above maxFileSize",
      () => raw([entry("a", 0, 10)]),
      "ERR_LIMIT_EXCEEDED",
      "file-too-large",
      { maxFileSize: 9 },
    ],
    [
      "raw storedSize != size",
      () => raw([entry("a", 0, 5, { originalSize: 6 })]),
      "ERR_INVALID_INDEX",
      "size-mismatch",
    ],
    [
      "zstd entry with no bytes for content",
      () => raw([entry("a", 0, 0, { originalSize: 6, compression: 1 })]),
      "ERR_INVALID_INDEX",
      "size-mismatch",
    ],
    [
      "compression 2",
      () => raw([entry("a", 0, 1, { compression: 2 })]),
      "ERR_UNSUPPORTED",
      "unsupported-compression",
    ],
    [
      "compression -1",
      () => raw([entry("a", 0, 1, { compression: -1 })]),
      "ERR_UNSUPPORTED",
      "unsupported-compression",
    ],
    ["version 2", () => raw([entry("a", 0, 1)], { version: 2 }), "ERR_UNSUPPORTED", "unsupported-version"],
    ["version 0", () => raw([entry("a", 0, 1)], { version: 0 }), "ERR_UNSUPPORTED", "unsupported-version"],
    [
      "hash_algorithm 1",
      () => raw([entry("a", 0, 1)], { hashAlgorithm: 1 }),
      "ERR_UNSUPPORTED",
      "unsupported-hash-algorithm",
    ],
    [
      "data_hash 31 bytes",
      () => raw([entry("a", 0, 1)], { dataHash: new Uint8Array(31) }),
      "ERR_INVALID_INDEX",
      "bad-data-hash-length",
    ],
    [
      "data_hash 33 bytes",
      () => raw([entry("a", 0, 1)], { dataHash: new Uint8Array(33) }),
      "ERR_INVALID_INDEX",
      "bad-data-hash-length",
    ],
    [
      "more entries than maxFiles",
      () => raw([entry("a", 0, 1), entry("b", 1, 1), entry("c", 2, 1)]),
      "ERR_LIMIT_EXCEEDED",
      "too-many-files",
      { maxFiles: 2 },
    ],
    [
      "index larger than maxIndexSize",
      () => valid(),
      "ERR_LIMIT_EXCEEDED",
      "index-too-large",
      { maxIndexSize: 64 },
    ],
  ];
  for (const [name, make, code, reason, limits] of semantic) {
    it(`content: ${name}`, () => expectReject(make(), code, reason, limits));
  }

  it("accepts an unsorted but otherwise valid index and lookups still work", () => {
    const idx = decodeIndex(raw([entry("b", 0, 1), entry("a/x", 1, 1), entry("a-b", 2, 1)]));
    expect(idx.sortedOnDisk).toBe(false);
    expect([...idx].map((e) => e.path)).toEqual(["a-b", "a/x", "b"]);
    expect(idx.find("a/x")).toBe(1);
    expect(idx.prefixRange("a/")).toEqual([1, 2]);
  });

  it("treats data_size as the entries' extent when data_hash is absent (Go: size unknown)", () => {
    const idx = decodeIndex(buildIndexBuffer({ entries: [entry("a", 0, 10), entry("b", 10, 7)] }));
    expect(idx.dataSize).toBe(17);
    expect(idx.dataSha256).toBeUndefined();
  });

  it("finds bad segments, NUL and bad UTF-8 at every position within the decoder's 4-byte words", () => {
    // Each is a bad ending after a valid first segment.
    const bad = ["/..", "/../x", "/.", "/./x", "//x", "/", "\0", "\0x", "\u00e9\0", "/\u00e9/\0"];
    for (const needle of bad) {
      for (let pad = 0; pad < 8; pad++) {
        const path = `${"p".repeat(pad + 1)}${needle}`;
        const error = (() => {
          try {
            decodeIndex(raw([entry(path, 0, 1)]));
          } catch (e) {
            return e;
          }
          return undefined;
        })();
        expect(isBlobError(error, "ERR_INVALID_INDEX") && error.reason, JSON.stringify(path)).toBe(
          "invalid-path",
        );
      }
    }
    // And valid paths with the bytes the fast path must look at are accepted at every alignment.
    for (let pad = 0; pad < 8; pad++) {
      const path = `${"q".repeat(pad + 1)}/a.b-c_d/\u00e9t\u00e9/..x/x../.x`;
      expect(decodeIndex(raw([entry(path, 0, 1)])).path(0), path).toBe(path);
    }
  });

  it("rejects every truncation of a valid index with a BlobError (except cutting trailing padding)", () => {
    const full = valid();
    const expected = [...decodeIndex(full)];
    let rejected = 0;
    for (let n = 0; n < full.length; n++) {
      let error: unknown;
      try {
        const idx = decodeIndex(full.slice(0, n));
        // Only zero padding after the last string may go missing without harm.
        expect(
          full.subarray(n).every((x) => x === 0),
          `length ${n} accepted`,
        ).toBe(true);
        expect([...idx]).toEqual(expected);
        continue;
      } catch (e) {
        error = e;
      }
      rejected++;
      expect(isBlobError(error), `length ${n}: ${String(error)}`).toBe(true);
      expect(["ERR_INVALID_INDEX", "ERR_UNSUPPORTED", "ERR_LIMIT_EXCEEDED"]).toContain(
        (error as { code: string }).code,
      );
    }
    expect(rejected).toBeGreaterThan(full.length - 4);
  });

  it("never throws anything but a BlobError on random mutations (seeded fuzz)", () => {
    let seed = 0x5eed;
    const rand = (): number => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const bases = [
      valid(),
      Buffer.from(GOLDEN_WALK, "hex"),
      raw([entry("d/\u00e9.txt", 0, 3), entry("d/b", 3, 4, { compression: 1, originalSize: 9 })]),
    ];
    const interesting = [0x00, 0x01, 0x2f, 0x2e, 0x7f, 0x80, 0xff, 0xfe];
    let accepted = 0;
    for (let iter = 0; iter < 3000; iter++) {
      const base = bases[iter % bases.length]!;
      let b: Uint8Array = base.slice();
      const mutations = 1 + Math.floor(rand() * 4);
      for (let m = 0; m < mutations; m++) {
        const kind = rand();
        const p = Math.floor(rand() * b.length);
        if (kind < 0.5) b[p] = Math.floor(rand() * 256);
        else if (kind < 0.8) b[p] = interesting[Math.floor(rand() * interesting.length)]!;
        else if (kind < 0.9) b = b.slice(0, p);
        else b[p] = (b[p] ?? 0) ^ (1 << Math.floor(rand() * 8));
      }
      try {
        const idx = decodeIndex(b);
        accepted++;
        // Whatever was accepted must be internally consistent.
        let prev: Buffer | undefined;
        for (const e of idx) {
          const cur = Buffer.from(e.path);
          if (prev !== undefined) expect(Buffer.compare(prev, cur)).toBeLessThan(0);
          prev = cur;
          expect(idx.get(e.path)).toEqual(e);
          expect(e.offset + e.storedSize).toBeLessThanOrEqual(idx.dataSize);
        }
      } catch (e) {
        if (!isBlobError(e)) throw e;
      }
    }
    // Some mutations only touch hash bytes or padding; those must still decode.
    expect(accepted).toBeGreaterThan(0);
  });
});
