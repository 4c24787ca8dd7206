import { sha256Digest } from "../digest.ts";
import { BlobError } from "../errors.ts";
import { type Limits, resolveLimits } from "../limits.ts";
import { utf8 } from "../paths.ts";
import { buildLookupTable, decodeIndexData, hashPathString, type IndexData } from "./index-decode.ts";
import type { Compression, IndexEntry } from "./types.ts";

/** Exact-path lookups after which {@link ArchiveIndex.find} switches to a `Map` (≈ 100 ns per entry to build). */
const MAP_AFTER_FINDS = 4096;
/** The first lookups use binary search: a reader of a few files never builds the hash table. */
const TABLE_AFTER_FINDS = 16;

/** Options of {@link ArchiveIndex.open} and `decodeIndex`. @public */
export interface ArchiveIndexOptions {
  /** Limits to enforce while validating (merged over `DEFAULT_LIMITS`). */
  limits?: Partial<Limits> | undefined;
}

const COMPRESSIONS: readonly Compression[] = ["none", "zstd"];
const TWO_POW_32 = 4294967296n;

/**
 * An immutable, fully validated archive index (the FlatBuffers index blob of reference §1.2).
 *
 * Entries are addressed by *rank*: their position in unsigned UTF-8 byte order of the path, `0..length-1`,
 * whatever order the blob stores them in (Go writes directory-walk order, blobkit writes byte order). Each
 * directory's subtree is therefore a contiguous rank range ({@link ArchiveIndex.prefixRange}).
 *
 * Columns are kept in typed arrays. Exact lookups ({@link ArchiveIndex.find}) use a hash table over the
 * validated UTF-8 path bytes built while opening; prefix queries are a binary search in byte order; path
 * strings are decoded on first use and cached. The `bytes` passed to {@link ArchiveIndex.open} are kept (paths
 * and hashes are read from them lazily) and must not be modified afterwards.
 *
 * @public
 */
export class ArchiveIndex {
  /** The raw index blob. Do not modify. */
  readonly bytes: Uint8Array;
  /** Index format version (always 1 today). */
  readonly version: number;
  /** Number of entries (regular files). */
  readonly length: number;
  /** Length of the data blob in bytes (if the index has no `data_hash`: the end of the furthest entry). */
  readonly dataSize: number;
  /** Lowercase hex SHA-256 of the whole data blob, or `undefined` when the index does not record it. */
  readonly dataSha256: string | undefined;
  /** False for indexes whose entries are not byte-sorted on disk (written by Go `fs.WalkDir` order). */
  readonly sortedOnDisk: boolean;

  readonly #buffer: Buffer;
  readonly #paths: (string | undefined)[];
  readonly #pathStart: Uint32Array;
  readonly #pathLen: Uint32Array;
  #lookup: Int32Array | undefined;
  #finds = 0;
  #map: Map<string, number> | undefined;
  readonly #offsets: Float64Array;
  readonly #storedSizes: Float64Array;
  readonly #sizes: Float64Array;
  readonly #compression: Uint8Array;
  readonly #modes: Uint32Array;
  readonly #uids: Uint32Array;
  readonly #gids: Uint32Array;
  readonly #mtimeLo: Uint32Array;
  readonly #mtimeHi: Int32Array;
  readonly #hashPos: Uint32Array;
  readonly #diskIndex: Uint32Array | undefined;
  #digest: string | undefined;
  #totalSize = -1;
  #totalStoredSize = -1;

  private constructor(bytes: Uint8Array, data: IndexData) {
    this.bytes = bytes;
    this.version = data.version;
    this.length = data.count;
    this.dataSize = data.dataSize;
    this.dataSha256 = data.dataHashPos < 0 ? undefined : hex(bytes, data.dataHashPos, 32);
    this.sortedOnDisk = data.sortedOnDisk;
    this.#buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    // Path strings are decoded on first use: lookups work on the validated UTF-8 bytes directly.
    this.#paths = new Array<string | undefined>(data.count);
    this.#pathStart = data.pathStart;
    this.#pathLen = data.pathLen;
    this.#offsets = data.offsets;
    this.#storedSizes = data.storedSizes;
    this.#sizes = data.sizes;
    this.#compression = data.compression;
    this.#modes = data.modes;
    this.#uids = data.uids;
    this.#gids = data.gids;
    this.#mtimeLo = data.mtimeLo;
    this.#mtimeHi = data.mtimeHi;
    this.#hashPos = data.hashPos;
    this.#diskIndex = data.diskIndex;
  }

  /**
   * Decodes and validates an index blob: FlatBuffers bounds, required fields, 32-byte hashes, valid unique
   * paths without file/directory conflicts, entries inside the data blob, sizes within `limits`, known
   * version, hash algorithm and compression.
   *
   * @throws BlobError `ERR_INVALID_INDEX` (with a `reason`), `ERR_UNSUPPORTED` or `ERR_LIMIT_EXCEEDED`.
   */
  static open(bytes: Uint8Array, options: ArchiveIndexOptions = {}): ArchiveIndex {
    if (!(bytes instanceof Uint8Array)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "archive index bytes must be a Uint8Array");
    }
    return new ArchiveIndex(bytes, decodeIndexData(bytes, resolveLimits(options.limits)));
  }

  /** OCI digest (`sha256:<hex>`) of {@link ArchiveIndex.bytes}, computed once. */
  digest(): string {
    this.#digest ??= sha256Digest(this.bytes);
    return this.#digest;
  }

  /** Path of the entry at `rank`. */
  path(rank: number): string {
    this.#check(rank);
    return this.#paths[rank] ?? this.#decodePath(rank);
  }

  /** Data-blob offset of the entry at `rank`. */
  offset(rank: number): number {
    this.#check(rank);
    return this.#offsets[rank]!;
  }

  /** Stored (possibly compressed) length of the entry at `rank`. */
  storedSize(rank: number): number {
    this.#check(rank);
    return this.#storedSizes[rank]!;
  }

  /** Uncompressed size of the entry at `rank`. */
  size(rank: number): number {
    this.#check(rank);
    return this.#sizes[rank]!;
  }

  /** Compression of the entry at `rank`. */
  compression(rank: number): Compression {
    this.#check(rank);
    return COMPRESSIONS[this.#compression[rank]!]!;
  }

  /** Lowercase hex SHA-256 of the uncompressed content of the entry at `rank`. */
  sha256(rank: number): string {
    this.#check(rank);
    return hex(this.bytes, this.#hashPos[rank]!, 32);
  }

  /** The 32 raw SHA-256 bytes of the entry at `rank` (a view into {@link ArchiveIndex.bytes}). */
  sha256Bytes(rank: number): Uint8Array {
    this.#check(rank);
    const p = this.#hashPos[rank]!;
    return this.bytes.subarray(p, p + 32);
  }

  /** Permission bits (≤ 0o777) of the entry at `rank`. */
  mode(rank: number): number {
    this.#check(rank);
    return this.#modes[rank]!;
  }

  /** Owner user id recorded for the entry at `rank`. */
  uid(rank: number): number {
    this.#check(rank);
    return this.#uids[rank]!;
  }

  /** Owner group id recorded for the entry at `rank`. */
  gid(rank: number): number {
    this.#check(rank);
    return this.#gids[rank]!;
  }

  /** Modification time of the entry at `rank`, nanoseconds since the Unix epoch. */
  mtimeNs(rank: number): bigint {
    this.#check(rank);
    return BigInt(this.#mtimeHi[rank]!) * TWO_POW_32 + BigInt(this.#mtimeLo[rank]!);
  }

  /** Position of the entry at `rank` in the blob's on-disk `entries` vector (equal to `rank` when sorted). */
  diskIndex(rank: number): number {
    this.#check(rank);
    return this.#diskIndex === undefined ? rank : this.#diskIndex[rank]!;
  }

  /** The entry at `rank` as a plain object. */
  entry(rank: number): IndexEntry {
    this.#check(rank);
    return {
      path: this.#paths[rank] ?? this.#decodePath(rank),
      offset: this.#offsets[rank]!,
      storedSize: this.#storedSizes[rank]!,
      size: this.#sizes[rank]!,
      sha256: hex(this.bytes, this.#hashPos[rank]!, 32),
      mode: this.#modes[rank]!,
      uid: this.#uids[rank]!,
      gid: this.#gids[rank]!,
      mtimeNs: BigInt(this.#mtimeHi[rank]!) * TWO_POW_32 + BigInt(this.#mtimeLo[rank]!),
      compression: COMPRESSIONS[this.#compression[rank]!]!,
    };
  }

  /** Rank of the entry whose path is exactly `path` (no normalization), or -1. */
  find(path: string): number {
    const map = this.#map;
    if (map !== undefined) return map.get(path) ?? -1;
    // Callers that look up many paths (walks, extractions, servers) get a string-keyed Map, built once the
    // lookups have paid for it; opening stays cheap for callers that read a handful of files.
    const finds = ++this.#finds;
    if (finds > MAP_AFTER_FINDS) return this.#buildMap().get(path) ?? -1;
    if (finds <= TABLE_AFTER_FINDS) return this.#search(path);
    // Hashing every path costs a third of opening the index: done only once lookups have paid for it.
    this.#lookup ??= buildLookupTable(this.bytes, this.#pathStart, this.#pathLen);
    const lookup = this.#lookup;
    const h = hashPathString(path);
    if (h === undefined) return -1; // lone surrogates: no UTF-8 form, so no entry can have this path
    const mask = (lookup.length >>> 2) - 1;
    const hs = h | 0;
    for (let slot = hs & mask; ; slot = (slot + 1) & mask) {
      const base = slot * 4;
      const v = lookup[base + 1]!;
      if (v === 0) return -1;
      if (lookup[base] === hs && this.#equals(lookup[base + 2]!, lookup[base + 3]!, path)) return v - 1;
    }
  }

  /** {@link ArchiveIndex.find} by binary search over the byte-sorted paths. */
  #search(path: string): number {
    if (!(path as unknown as { isWellFormed(): boolean }).isWellFormed()) return -1; // no UTF-8 form
    const q = utf8(path);
    const rank = this.#lowerBound(q);
    if (rank === this.length || this.#pathLen[rank] !== q.length) return -1;
    const bytes = this.bytes;
    const p = this.#pathStart[rank]!;
    for (let j = 0; j < q.length; j++) if (bytes[p + j] !== q[j]) return -1;
    return rank;
  }

  #buildMap(): Map<string, number> {
    const map = new Map<string, number>();
    for (let rank = 0; rank < this.length; rank++) map.set(this.path(rank), rank);
    this.#map = map;
    return map;
  }

  /** True when an entry has exactly this path. */
  has(path: string): boolean {
    return this.find(path) !== -1;
  }

  /** The entry whose path is exactly `path`, or `undefined`. */
  get(path: string): IndexEntry | undefined {
    const rank = this.find(path);
    return rank === -1 ? undefined : this.entry(rank);
  }

  /** The first rank whose path is ≥ `path` in unsigned UTF-8 byte order (`length` if none). */
  lowerBound(path: string): number {
    return this.#lowerBound(utf8(path));
  }

  /**
   * The rank range `[start, end)` of entries whose path starts with `prefix` (a plain byte prefix: pass
   * `"dir/"` for the contents of directory `dir`). Empty when `start === end`.
   */
  prefixRange(prefix: string): [start: number, end: number] {
    if (prefix === "") return [0, this.length];
    const q = utf8(prefix);
    const start = this.#lowerBound(q);
    // Paths with the prefix are contiguous from `start`; find the first one after them.
    const bytes = this.bytes;
    const pathStart = this.#pathStart;
    const pathLen = this.#pathLen;
    let lo = start;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      let has = pathLen[mid]! >= q.length;
      const p = pathStart[mid]!;
      for (let j = 0; has && j < q.length; j++) has = bytes[p + j] === q[j];
      if (has) lo = mid + 1;
      else hi = mid;
    }
    return [start, lo];
  }

  /** Entries in byte-sorted path order. */
  *[Symbol.iterator](): Iterator<IndexEntry> {
    for (let r = 0; r < this.length; r++) yield this.entry(r);
  }

  /** Sum of all uncompressed sizes. */
  totalSize(): number {
    if (this.#totalSize < 0) this.#totalSize = sum(this.#sizes);
    return this.#totalSize;
  }

  /** Sum of all stored sizes. */
  totalStoredSize(): number {
    if (this.#totalStoredSize < 0) this.#totalStoredSize = sum(this.#storedSizes);
    return this.#totalStoredSize;
  }

  #lowerBound(q: Uint8Array): number {
    const bytes = this.bytes;
    const pathStart = this.#pathStart;
    const pathLen = this.#pathLen;
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = pathStart[mid]!;
      const n = pathLen[mid]!;
      const m = Math.min(n, q.length);
      let c = 0;
      for (let j = 0; c === 0 && j < m; j++) c = bytes[p + j]! - q[j]!;
      if (c === 0) c = n - q.length;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // Compares the `n` path bytes at `p` with a well-formed string (its hash was computable).
  #equals(p: number, n: number, path: string): boolean {
    if (path.length > n) return false; // UTF-8 is never shorter than UTF-16
    const bytes = this.bytes;
    if (path.length === n) {
      // Equal lengths: the string must be pure ASCII to be equal, so compare code units to bytes.
      for (let j = 0; j < n; j++) {
        const c = path.charCodeAt(j);
        if (c !== bytes[p + j] || c >= 0x80) return false;
      }
      return true;
    }
    const q = utf8(path);
    if (q.length !== n) return false;
    for (let j = 0; j < n; j++) if (q[j] !== bytes[p + j]) return false;
    return true;
  }

  #decodePath(rank: number): string {
    const p = this.#pathStart[rank]!;
    const path = this.#buffer.toString("utf8", p, p + this.#pathLen[rank]!);
    this.#paths[rank] = path;
    return path;
  }

  #check(rank: number): void {
    if (rank >>> 0 !== rank || rank >= this.length) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `rank ${rank} is outside 0..${this.length - 1}`);
    }
  }
}

function hex(bytes: Uint8Array, pos: number, n: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + pos, n).toString("hex");
}

function sum(values: Float64Array): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i]!;
  return total;
}
