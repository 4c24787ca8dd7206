import { Builder } from "flatbuffers";
import { BlobError } from "../errors.ts";
import { assertArchivePath, comparePaths } from "../paths.ts";
import { ArchiveIndex, type ArchiveIndexOptions } from "./archive-index.ts";
import type { IndexEntryInput } from "./types.ts";

/** What {@link encodeIndex} writes. @public */
export interface EncodeIndexInput {
  /** The entries, in any order unless `order: "as-given"` is used. */
  entries: readonly IndexEntryInput[];
  /** Total length of the data blob in bytes. */
  dataSize: number;
  /** SHA-256 of the whole data blob: 32 bytes or 64 hex characters. Omit only for tests of legacy indexes. */
  dataSha256?: Uint8Array | string | undefined;
}

/** Options of {@link encodeIndex}. @public */
export interface EncodeIndexOptions {
  /**
   * `"sorted"` (default): entries are written in unsigned UTF-8 byte order of their path, which is what every
   * reader binary-searches. `"as-given"`: the caller's order is kept (used to reproduce Go's walk-ordered
   * indexes in tests).
   */
  order?: "sorted" | "as-given";
}

/**
 * One entry exactly as it goes into the FlatBuffer, without any validation: missing fields are omitted and
 * every value is written verbatim. Only for building test vectors (including deliberately invalid ones).
 *
 * @internal
 */
export interface RawIndexEntry {
  path?: string | Uint8Array | undefined;
  dataOffset?: bigint | number | undefined;
  dataSize?: bigint | number | undefined;
  originalSize?: bigint | number | undefined;
  hash?: Uint8Array | undefined;
  mode?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  mtimeNs?: bigint | undefined;
  compression?: number | undefined;
}

/** An index exactly as it goes into the FlatBuffer, see {@link RawIndexEntry}. @internal */
export interface RawIndex {
  version?: number | undefined;
  hashAlgorithm?: number | undefined;
  /** `undefined` omits the required `entries` vector. */
  entries: readonly RawIndexEntry[] | undefined;
  dataSize?: bigint | number | undefined;
  dataHash?: Uint8Array | undefined;
}

/**
 * Serializes a {@link RawIndex} with the FlatBuffers builder in exactly the call order of the Go writer
 * (reference §1.2): initial capacity 1024, defaults not forced, entries built last to first (path string,
 * hash vector, then the table with fields in id order), then the entries vector, the `data_hash` vector when
 * non-empty, and the `Index` table; finished without file identifier. Nothing is validated.
 *
 * @internal
 */
export function buildIndexBuffer(raw: RawIndex): Uint8Array {
  const b = new Builder(1024);
  let entriesVector = 0;
  if (raw.entries !== undefined) {
    const entries = raw.entries;
    const tables = new Array<number>(entries.length);
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i]!;
      const path = e.path === undefined ? 0 : b.createString(e.path);
      const hash = e.hash === undefined ? 0 : b.createByteVector(e.hash);
      b.startObject(10);
      b.addFieldOffset(0, path, 0);
      b.addFieldInt64(1, BigInt(e.dataOffset ?? 0), 0n);
      b.addFieldInt64(2, BigInt(e.dataSize ?? 0), 0n);
      b.addFieldInt64(3, BigInt(e.originalSize ?? 0), 0n);
      b.addFieldOffset(4, hash, 0);
      b.addFieldInt32(5, e.mode ?? 0, 0);
      b.addFieldInt32(6, e.uid ?? 0, 0);
      b.addFieldInt32(7, e.gid ?? 0, 0);
      b.addFieldInt64(8, e.mtimeNs ?? 0n, 0n);
      b.addFieldInt8(9, e.compression ?? 0, 0);
      tables[i] = b.endObject();
    }
    b.startVector(4, entries.length, 4);
    for (let i = entries.length - 1; i >= 0; i--) b.addOffset(tables[i]!);
    entriesVector = b.endVector();
  }
  const dataHash =
    raw.dataHash !== undefined && raw.dataHash.length > 0 ? b.createByteVector(raw.dataHash) : 0;
  b.startObject(5);
  b.addFieldInt32(0, raw.version ?? 1, 1);
  b.addFieldInt8(1, raw.hashAlgorithm ?? 0, 0);
  b.addFieldOffset(2, entriesVector, 0);
  b.addFieldInt64(3, BigInt(raw.dataSize ?? 0), 0n);
  b.addFieldOffset(4, dataHash, 0);
  b.finish(b.endObject());
  // The builder's buffer is larger than the result; copy so callers hold exactly the index bytes.
  return b.asUint8Array().slice();
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const HIGH_CODE_UNIT = /[\ud800-\uffff]/;

/**
 * Encodes an archive index blob (FlatBuffers, reference §1.2) that Go meigma/blob v1 readers and blobkit read.
 * Inputs are validated first (`ERR_INVALID_PATH` for bad paths, `ERR_INVALID_ARGUMENT` otherwise, with the
 * same `reason`s the decoder would report): valid unique paths without file/directory conflicts, 32-byte
 * hashes, safe non-negative integer sizes, entries inside `dataSize`, raw entries with `storedSize === size`,
 * uint32 mode/uid/gid, int64 `mtimeNs`. Only the permission bits (`mode & 0o777`) are stored.
 *
 * The builder calls mirror the Go writer, so for the same entry order the bytes equal what meigma/blob writes
 * (checked in tests against a golden vector from the Python port of the Go builder); Go itself writes
 * directory-walk order, which `order: "as-given"` reproduces.
 *
 * @public
 */
export function encodeIndex(input: EncodeIndexInput, options: EncodeIndexOptions = {}): Uint8Array {
  const order = options.order ?? "sorted";
  if (order !== "sorted" && order !== "as-given") invalid("bad-order", `unknown order ${String(order)}`);
  const dataSize = input.dataSize;
  if (!Number.isSafeInteger(dataSize) || dataSize < 0)
    invalid("bad-size", "dataSize must be a safe integer ≥ 0");
  let dataHash: Uint8Array | undefined;
  if (input.dataSha256 !== undefined) dataHash = hashBytes(input.dataSha256, "dataSha256");

  const entries = input.entries;
  const n = entries.length;
  const hashes = new Array<Uint8Array>(n);
  for (let i = 0; i < n; i++) {
    const e = entries[i]!;
    const path = e.path;
    assertArchivePath(path);
    if (!isSize(e.offset) || !isSize(e.storedSize) || !isSize(e.size)) {
      invalid("bad-size", `offset and sizes of ${JSON.stringify(path)} must be safe integers ≥ 0`, path);
    }
    if (!isUint32(e.mode) || !isUint32(e.uid) || !isUint32(e.gid)) {
      invalid("bad-metadata", `mode, uid and gid of ${JSON.stringify(path)} must be uint32`, path);
    }
    if (typeof e.mtimeNs !== "bigint" || e.mtimeNs < INT64_MIN || e.mtimeNs > INT64_MAX) {
      invalid("bad-metadata", `mtimeNs of ${JSON.stringify(path)} must be an int64 bigint`, path);
    }
    if (e.compression !== "none" && e.compression !== "zstd") {
      invalid("bad-compression", `unknown compression ${String(e.compression)}`, path);
    }
    if (e.compression === "none" ? e.storedSize !== e.size : e.storedSize === 0 && e.size !== 0) {
      invalid("size-mismatch", `${JSON.stringify(path)} stores ${e.storedSize} bytes for ${e.size}`, path);
    }
    if (e.storedSize > dataSize || e.offset > dataSize - e.storedSize) {
      invalid("entry-out-of-bounds", `${JSON.stringify(path)} lies outside the data blob`, path);
    }
    hashes[i] = hashBytes(e.sha256, `sha256 of ${JSON.stringify(path)}`);
  }

  // Byte order of the paths (comparePaths = UTF-8 byte order without encoding); sorted input is not re-sorted.
  const byRank: number[] = [];
  for (let i = 0; i < n; i++) byRank.push(i);
  let alreadySorted = true;
  for (let i = 1; i < n && alreadySorted; i++) {
    if (comparePaths(entries[i - 1]!.path, entries[i]!.path) > 0) alreadySorted = false;
  }
  if (!alreadySorted) {
    // UTF-16 order equals UTF-8 byte order unless code units ≥ 0xD800 are involved; then compare exactly.
    const paths = entries.map((e) => e.path);
    if (paths.some((p) => HIGH_CODE_UNIT.test(p))) byRank.sort((a, b) => comparePaths(paths[a]!, paths[b]!));
    else byRank.sort((a, b) => (paths[a]! < paths[b]! ? -1 : paths[a]! > paths[b]! ? 1 : 0));
  }
  checkTree(byRank.map((i) => entries[i]!.path));

  // Same builder calls as buildIndexBuffer / the Go writer, without the intermediate objects.
  const write = order === "sorted" ? byRank : byRank.map((_, i) => i);
  const b = new Builder(1024);
  const tables = new Array<number>(n);
  for (let w = n - 1; w >= 0; w--) {
    const i = write[w]!;
    const e = entries[i]!;
    const pathOffset = b.createString(e.path);
    const hashOffset = b.createByteVector(hashes[i]!);
    b.startObject(10);
    b.addFieldOffset(0, pathOffset, 0);
    b.addFieldInt64(1, int64(e.offset), 0n);
    b.addFieldInt64(2, int64(e.storedSize), 0n);
    b.addFieldInt64(3, int64(e.size), 0n);
    b.addFieldOffset(4, hashOffset, 0);
    // Like Go (FileMode.Perm()), only the permission bits are stored.
    b.addFieldInt32(5, e.mode & 0o777, 0);
    b.addFieldInt32(6, e.uid, 0);
    b.addFieldInt32(7, e.gid, 0);
    b.addFieldInt64(8, e.mtimeNs, 0n);
    b.addFieldInt8(9, e.compression === "zstd" ? 1 : 0, 0);
    tables[w] = b.endObject();
  }
  b.startVector(4, n, 4);
  for (let w = n - 1; w >= 0; w--) b.addOffset(tables[w]!);
  const entriesVector = b.endVector();
  const dataHashOffset = dataHash !== undefined ? b.createByteVector(dataHash) : 0;
  b.startObject(5);
  b.addFieldInt32(0, 1, 1);
  b.addFieldInt8(1, 0, 0);
  b.addFieldOffset(2, entriesVector, 0);
  b.addFieldInt64(3, int64(dataSize), 0n);
  b.addFieldOffset(4, dataHashOffset, 0);
  b.finish(b.endObject());
  return b.asUint8Array().slice();
}

const isSize = (v: number): boolean => Number.isSafeInteger(v) && v >= 0;
const isUint32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
const int64 = (v: number): bigint => (v === 0 ? 0n : BigInt(v));

/**
 * Rejects duplicates and files that are also a directory of another path (`a` and `a/b`) among byte-sorted
 * paths, in one pass: the stack holds the lengths of earlier paths that are prefixes of the previous path; one
 * is a prefix of the current path iff its length ≤ their common prefix, and a conflict always shows against
 * the top (see the decoder's TreeChecker).
 */
function checkTree(sorted: readonly string[]): void {
  const stack = new Int32Array(sorted.length);
  let depth = 0;
  let prev = "";
  for (let r = 0; r < sorted.length; r++) {
    const path = sorted[r]!;
    if (r > 0) {
      const m = Math.min(prev.length, path.length);
      let lcp = 0;
      while (lcp < m && prev.charCodeAt(lcp) === path.charCodeAt(lcp)) lcp++;
      if (lcp === path.length && lcp === prev.length)
        invalid("duplicate-path", `duplicate path ${path}`, path);
      while (depth > 0 && stack[depth - 1]! > lcp) depth--;
      if (depth > 0 && path.charCodeAt(stack[depth - 1]!) === 0x2f) {
        invalid("file-directory-conflict", `${JSON.stringify(path)} lies below a file`, path);
      }
    }
    stack[depth++] = path.length;
    prev = path;
  }
}

/**
 * Decodes and fully validates an index blob; same as {@link ArchiveIndex.open}.
 *
 * @throws BlobError `ERR_INVALID_INDEX` (with a `reason`), `ERR_UNSUPPORTED` or `ERR_LIMIT_EXCEEDED`.
 * @public
 */
export function decodeIndex(bytes: Uint8Array, options?: ArchiveIndexOptions): ArchiveIndex {
  return ArchiveIndex.open(bytes, options);
}

function hashBytes(value: Uint8Array | string, what: string): Uint8Array {
  if (typeof value === "string") {
    if (!/^[0-9a-f]{64}$/.test(value)) invalid("bad-hash", `${what} must be 64 lowercase hex characters`);
    return new Uint8Array(Buffer.from(value, "hex"));
  }
  if (!(value instanceof Uint8Array) || value.length !== 32) invalid("bad-hash", `${what} must be 32 bytes`);
  return value;
}

function invalid(reason: string, message: string, subject?: string): never {
  throw new BlobError("ERR_INVALID_ARGUMENT", `cannot encode index: ${message}`, { reason, subject });
}
