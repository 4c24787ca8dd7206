import {
  comparePaths,
  decodeIndex,
  encodeIndex,
  type IndexEntryInput,
  invalidPathReason,
} from "@blobkit/core";
import fc from "fast-check";
import { expect, it } from "vitest";
import {
  buildIndexBuffer,
  type RawIndex,
  type RawIndexEntry,
} from "../../../packages/core/src/format/index-codec.ts";
import { pathArb, plainPathArb, sha256, u64Arb } from "./support/arbs.ts";
import { fuzz, InvariantError, mutatedBytes, SEED } from "./support/fuzz.ts";

// Fuzzing of the index decoder/validator (decodeIndex = ArchiveIndex.open), the parser of the most hostile
// input blobkit reads: a FlatBuffer from the registry. Inputs: mutations of valid indexes written by core's
// encoder (sorted and Go walk order, with and without data_hash), raw FlatBuffers with semantically hostile
// fields (bad paths, wrong hash lengths, unknown compression, 64-bit sizes, missing fields), mutations of
// those, and random bytes. An accepted index is then used (every entry, lookups, prefix ranges) and checked
// against the documented invariants.

/** Valid indexes from the encoder: the seeds of the mutations. */
function validSeeds(): Uint8Array[] {
  const entryArb = fc.record({
    path: plainPathArb,
    size: fc.oneof(fc.constant(0), fc.nat(5000)),
    zstd: fc.boolean(),
    mode: fc.nat(0o777),
    mtime: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  });
  const treeArb = fc.record({
    entries: fc.uniqueArray(entryArb, { maxLength: 12, selector: (e) => e.path }),
    order: fc.constantFrom("sorted" as const, "as-given" as const),
    hash: fc.boolean(),
    gap: fc.nat(100),
  });
  const seeds: Uint8Array[] = [];
  for (const tree of fc.sample(treeArb, { numRuns: 400, seed: 42 })) {
    // Drop paths that are a directory of another path (a/b beside a).
    const paths = new Set(tree.entries.map((e) => e.path));
    const entries = tree.entries.filter(
      (e) => ![...paths].some((p) => p !== e.path && e.path.startsWith(`${p}/`)),
    );
    let offset = 0;
    const input: IndexEntryInput[] = entries.map((e, i) => {
      const stored = e.zstd ? Math.max(e.size === 0 ? 0 : 1, Math.floor(e.size / 2)) : e.size;
      const entry: IndexEntryInput = {
        path: e.path,
        offset,
        storedSize: stored,
        size: e.size,
        sha256: sha256(`${e.path}:${i}`),
        mode: e.mode,
        uid: 1000,
        gid: 1000,
        mtimeNs: e.mtime,
        compression: e.zstd ? "zstd" : "none",
      };
      offset += stored;
      return entry;
    });
    seeds.push(
      encodeIndex(
        {
          entries: input,
          dataSize: offset + tree.gap,
          dataSha256: tree.hash ? sha256(String(offset)) : undefined,
        },
        { order: tree.order },
      ),
    );
  }
  return seeds;
}

const rawEntryArb: fc.Arbitrary<RawIndexEntry> = fc.record(
  {
    path: fc.oneof(
      { weight: 4, arbitrary: plainPathArb },
      { weight: 3, arbitrary: pathArb },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) },
    ),
    dataOffset: u64Arb,
    dataSize: u64Arb,
    originalSize: u64Arb,
    hash: fc.oneof(
      { weight: 6, arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    ),
    mode: fc.oneof(fc.nat(0o777), fc.nat()),
    uid: fc.nat(),
    gid: fc.nat(),
    mtimeNs: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    compression: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(0, 1) },
      { weight: 1, arbitrary: fc.integer({ min: -128, max: 127 }) },
    ),
  },
  { requiredKeys: [] },
);

const rawIndexArb: fc.Arbitrary<RawIndex> = fc.record(
  {
    version: fc.oneof({ weight: 8, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat() }),
    hashAlgorithm: fc.oneof(
      { weight: 8, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: -128, max: 127 }) },
    ),
    entries: fc.oneof(
      { weight: 12, arbitrary: fc.array(rawEntryArb, { maxLength: 6 }) },
      { weight: 1, arbitrary: fc.constant(undefined) },
    ),
    dataSize: u64Arb,
    dataHash: fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    ),
  },
  { requiredKeys: ["entries"] },
);

function buildRaw(raw: RawIndex): Uint8Array {
  try {
    return buildIndexBuffer(raw);
  } catch {
    // The flatbuffers builder refuses some values (e.g. int32 overflow of uint32 fields): use a minimal index.
    return buildIndexBuffer({ entries: [] });
  }
}

/** Uses an accepted index the way the reader does and checks what the decoder promises. */
function useAndCheck(bytes: Uint8Array): void {
  const index = decodeIndex(bytes);
  const fail = (what: string): never => {
    throw new InvariantError(what);
  };
  let prev: string | undefined;
  for (let rank = 0; rank < index.length; rank++) {
    const e = index.entry(rank);
    if (invalidPathReason(e.path) !== undefined) fail(`accepted invalid path ${JSON.stringify(e.path)}`);
    if (prev !== undefined && comparePaths(prev, e.path) >= 0) fail("ranks not in strict byte order");
    if (prev !== undefined && e.path.startsWith(`${prev}/`)) fail("file/directory conflict accepted");
    prev = e.path;
    if (!/^[0-9a-f]{64}$/.test(e.sha256)) fail("hash is not 32 bytes");
    if (e.compression !== "none" && e.compression !== "zstd") fail("unknown compression accepted");
    for (const v of [e.offset, e.storedSize, e.size])
      if (!Number.isSafeInteger(v) || v < 0) fail("bad integer");
    if (e.offset + e.storedSize > index.dataSize) fail("entry outside the data blob");
    if (e.compression === "none" && e.storedSize !== e.size) fail("raw entry with storedSize ≠ size");
    if (index.find(e.path) !== rank) fail(`find(${JSON.stringify(e.path)}) ≠ rank`);
    const slash = e.path.lastIndexOf("/");
    if (slash > 0) {
      const [start, end] = index.prefixRange(e.path.slice(0, slash));
      if (!(start <= rank && rank < end)) fail("prefixRange misses an entry of its directory");
    }
  }
  index.find("no/such/path");
  index.lowerBound("m");
  if (!Number.isSafeInteger(index.totalSize())) fail("totalSize not an integer");
  if (index.dataSha256 !== undefined && !/^[0-9a-f]{64}$/.test(index.dataSha256)) fail("bad data hash");
}

it("decodeIndex: a million hostile indexes → a valid index or a typed BlobError, nothing else", () => {
  const seeds = validSeeds();
  for (const seed of seeds) useAndCheck(seed); // the seeds themselves are valid
  const rawSeeds = fc.sample(rawIndexArb, { numRuns: 300, seed: SEED }).map(buildRaw);
  const arbitrary = fc.oneof(
    { weight: 10, arbitrary: mutatedBytes(seeds) },
    { weight: 4, arbitrary: rawIndexArb.map(buildRaw) },
    { weight: 3, arbitrary: mutatedBytes(rawSeeds) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
  );
  const report = fuzz({ parser: "decodeIndex", arbitrary, call: useAndCheck });
  expect(report.distinctCrashes).toEqual([]);
  expect(report.hangs).toBe(0);
});
