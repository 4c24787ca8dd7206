import { createHash } from "node:crypto";
import fc from "fast-check";

/** Path segments that matter to archive path rules and to extraction. */
const HOSTILE_SEGMENTS = [
  "..",
  ".",
  "",
  "a\\..\\..\\b",
  "..\\x",
  "C:",
  "c:\\windows",
  "nul\0byte",
  "\0",
  "caf\u00e9", // NFC
  "cafe\u0301", // NFD
  "README",
  "readme",
  "ReadMe",
  "\ud800", // lone surrogate
  "\udfff",
  "x\u202e",
  "~",
  " ",
  "a b",
  "%2e%2e",
  "\u2024\u2024", // one-dot leader ×2
  "\uff0e\uff0e", // fullwidth full stops
];

/** A path segment: mostly plain names, often a hostile one. */
export const segmentArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom("a", "b", "dir", "x.txt", "sub", "docs", "docs.md", "docs-old", "B"),
  },
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_SEGMENTS) },
  { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 8, unit: "grapheme-ascii" }) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 4, unit: "binary" }) },
);

/** A path: segments joined by `/`, sometimes absolute, with a trailing slash, or doubled separators. */
export const pathArb: fc.Arbitrary<string> = fc
  .tuple(
    fc.array(segmentArb, { minLength: 1, maxLength: 5 }),
    fc.constantFrom("", "", "", "/", "./", "//"),
    fc.constantFrom("", "", "", "/"),
  )
  .map(([segs, pre, post]) => pre + segs.join("/") + post);

/** A valid-looking path (plain segments only). */
export const plainPathArb: fc.Arbitrary<string> = fc
  .array(
    fc.constantFrom("a", "b", "c", "dir", "x.txt", "sub", "docs", "docs.md", "docs-old", "B", "é", "z"),
    {
      minLength: 1,
      maxLength: 4,
    },
  )
  .map((s) => s.join("/"));

/** uint64-ish values that hit every boundary the decoder checks. */
export const u64Arb: fc.Arbitrary<bigint> = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    2n ** 31n,
    2n ** 32n - 1n,
    2n ** 32n,
    2n ** 53n - 1n,
    2n ** 53n,
    2n ** 63n - 1n,
    2n ** 63n,
    2n ** 64n - 1n,
    64n * 1024n ** 3n, // maxFileSize
    64n * 1024n ** 3n + 1n,
    1024n ** 4n * 5n, // 5 TiB "zip bomb" size
  ),
  fc.bigInt({ min: 0n, max: 4096n }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);

export function sha256(bytes: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}
