import { BlobError, type BlobErrorCode } from "../errors.ts";
import type { Limits } from "../limits.ts";
import { invalidPathReason, utf8 } from "../paths.ts";

/**
 * The validated, column-oriented content of an index blob, every column in rank order (byte-sorted path
 * order). Produced by {@link decodeIndexData}; wrapped by `ArchiveIndex`.
 *
 * @internal
 */
export interface IndexData {
  readonly version: number;
  readonly dataSize: number;
  /** Byte position of the 32-byte `data_hash` in the buffer, or -1 when absent. */
  readonly dataHashPos: number;
  readonly sortedOnDisk: boolean;
  readonly count: number;
  /** Byte position and length of each entry's UTF-8 path in the buffer (validated). */
  readonly pathStart: Uint32Array;
  readonly pathLen: Uint32Array;
  readonly offsets: Float64Array;
  readonly storedSizes: Float64Array;
  readonly sizes: Float64Array;
  readonly compression: Uint8Array;
  readonly modes: Uint32Array;
  readonly uids: Uint32Array;
  readonly gids: Uint32Array;
  readonly mtimeLo: Uint32Array;
  readonly mtimeHi: Int32Array;
  /** Byte position of each entry's 32-byte hash in the buffer. */
  readonly hashPos: Uint32Array;
  /** rank → position in the on-disk `entries` vector; `undefined` when sorted on disk (identity). */
  readonly diskIndex: Uint32Array | undefined;
}

// Field ids of the schema (reference §1.2); vtable slot = 4 + 2·id.
const INDEX_VERSION = 0;
const INDEX_HASH_ALGORITHM = 1;
const INDEX_ENTRIES = 2;
const INDEX_DATA_SIZE = 3;
const INDEX_DATA_HASH = 4;
const ENTRY_PATH = 0;
const ENTRY_DATA_OFFSET = 1;
const ENTRY_DATA_SIZE = 2;
const ENTRY_ORIGINAL_SIZE = 3;
const ENTRY_HASH = 4;
const ENTRY_MODE = 5;
const ENTRY_UID = 6;
const ENTRY_GID = 7;
const ENTRY_MTIME = 8;
const ENTRY_COMPRESSION = 9;

// Byte size of each Entry field by id: path, data_offset, data_size, original_size, hash, mode, uid, gid,
// mtime_ns, compression (uoffsets are 4 bytes).
const ENTRY_FIELD_SIZES: readonly number[] = [4, 8, 8, 8, 4, 4, 4, 4, 8, 1];

const TWO_POW_32 = 0x1_0000_0000;
// The high word of a uint64 above Number.MAX_SAFE_INTEGER (2^53 - 1) exceeds this.
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;

const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// Absolute position of a field at relative offset `off` of the table at `t` (0 stays "absent").
function at(t: number, off: number): number {
  return off === 0 ? 0 : t + off;
}

function fail(
  reason: string,
  message: string,
  subject?: string,
  code: BlobErrorCode = "ERR_INVALID_INDEX",
): never {
  throw new BlobError(code, `invalid archive index: ${message}`, { reason, subject });
}

/**
 * Decodes and fully validates an index blob. Every read is bounds-checked before it happens, so malformed
 * input only ever produces a `BlobError` (`ERR_INVALID_INDEX`, `ERR_UNSUPPORTED` or `ERR_LIMIT_EXCEEDED`).
 *
 * @internal
 */
export function decodeIndexData(bytes: Uint8Array, limits: Limits): IndexData {
  const len = bytes.length;
  if (len > limits.maxIndexSize) {
    fail(
      "index-too-large",
      `${len} bytes exceeds maxIndexSize ${limits.maxIndexSize}`,
      undefined,
      "ERR_LIMIT_EXCEEDED",
    );
  }
  if (len < 12) fail("truncated", `${len} bytes is too short for a FlatBuffer`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);

  // --- structural helpers; each throws before an out-of-range read could happen -------------------------
  // A table's vtable position (validated). Table position must leave room for its soffset.
  const tableVtable = (pos: number): number => {
    if (pos + 4 > len) fail("table-out-of-bounds", `table at ${pos} is past the end`);
    const vt = pos - dv.getInt32(pos, true);
    if (vt < 0 || vt + 4 > len) fail("vtable-out-of-bounds", `vtable of table at ${pos} is out of bounds`);
    const vtSize = dv.getUint16(vt, true);
    const objSize = dv.getUint16(vt + 2, true);
    if (vtSize < 4 || (vtSize & 1) !== 0 || vt + vtSize > len) {
      fail("vtable-out-of-bounds", `vtable at ${vt} has bad size ${vtSize}`);
    }
    if (objSize < 4 || pos + objSize > len) fail("table-out-of-bounds", `table at ${pos} is past the end`);
    return vt;
  };
  // Absolute position of field `id` (of `size` bytes) in the table at `pos`, or 0 when absent.
  const field = (pos: number, vt: number, id: number, size: number): number => {
    const slot = 4 + 2 * id;
    if (slot + 2 > dv.getUint16(vt, true)) return 0;
    const off = dv.getUint16(vt + slot, true);
    if (off === 0) return 0;
    if (off < 4 || off + size > dv.getUint16(vt + 2, true)) {
      fail("field-out-of-bounds", `field ${id} of table at ${pos} is outside the table`);
    }
    return pos + off;
  };
  // Follows the uoffset stored at `pos`; the target must leave room for a 4-byte length or soffset.
  const deref = (pos: number): number => {
    const o = dv.getUint32(pos, true);
    const target = pos + o;
    if (o === 0 || o > 0x7fff_ffff || target + 4 > len)
      fail("offset-out-of-bounds", `offset at ${pos} is out of bounds`);
    return target;
  };
  // A byte vector's element position; its length is at `pos - 4`.
  const byteVector = (fieldPos: number, what: string): number => {
    const v = deref(fieldPos);
    if (v + 4 + dv.getUint32(v, true) > len) fail("vector-out-of-bounds", `${what} vector runs past the end`);
    return v + 4;
  };
  const readUint64 = (pos: number, what: string, subject?: string): number => {
    if (pos === 0) return 0;
    const hi = dv.getUint32(pos + 4, true);
    if (hi > MAX_SAFE_HIGH_WORD) {
      fail("integer-overflow", `${what} exceeds Number.MAX_SAFE_INTEGER`, subject);
    }
    return hi * TWO_POW_32 + dv.getUint32(pos, true);
  };

  // --- Index table ---------------------------------------------------------------------------------------
  const root = deref(0);
  const rootVt = tableVtable(root);

  const versionPos = field(root, rootVt, INDEX_VERSION, 4);
  const version = versionPos === 0 ? 1 : dv.getUint32(versionPos, true);
  if (version !== 1) {
    throw new BlobError("ERR_UNSUPPORTED", `unsupported archive index version ${version}`, {
      reason: "unsupported-version",
    });
  }
  const algPos = field(root, rootVt, INDEX_HASH_ALGORITHM, 1);
  const algorithm = algPos === 0 ? 0 : dv.getInt8(algPos);
  if (algorithm !== 0) {
    throw new BlobError("ERR_UNSUPPORTED", `unsupported archive index hash algorithm ${algorithm}`, {
      reason: "unsupported-hash-algorithm",
    });
  }

  const entriesField = field(root, rootVt, INDEX_ENTRIES, 4);
  if (entriesField === 0) fail("missing-entries", "the required entries vector is absent");
  const entriesVec = deref(entriesField);
  const count = dv.getUint32(entriesVec, true);
  if (count > limits.maxFiles) {
    throw new BlobError(
      "ERR_LIMIT_EXCEEDED",
      `archive index has ${count} entries, maxFiles is ${limits.maxFiles}`,
      {
        reason: "too-many-files",
      },
    );
  }
  if (entriesVec + 4 + count * 4 > len) fail("vector-out-of-bounds", "entries vector runs past the end");

  let dataHashPos = -1;
  const dataHashField = field(root, rootVt, INDEX_DATA_HASH, 4);
  if (dataHashField !== 0) {
    const p = byteVector(dataHashField, "data_hash");
    const n = dv.getUint32(p - 4, true);
    // Go reports an empty data_hash as "absent"; accept that, but nothing other than exactly 32 bytes.
    if (n !== 0 && n !== 32) fail("bad-data-hash-length", `data_hash has ${n} bytes, expected 32`);
    if (n === 32) dataHashPos = p;
  }
  let dataSize = readUint64(field(root, rootVt, INDEX_DATA_SIZE, 8), "data_size");
  // Without data_hash Go treats data_size as unknown; then the entries' extent is the data size.
  const dataSizeKnown = dataHashPos !== -1 || dataSize !== 0;

  // --- entries ---------------------------------------------------------------------------------------------
  const maxFileSize = limits.maxFileSize;
  const maxPathLength = limits.maxPathLength;
  const pathStart = new Uint32Array(count);
  const pathLen = new Uint32Array(count);
  const offsets = new Float64Array(count);
  const storedSizes = new Float64Array(count);
  const sizes = new Float64Array(count);
  const compression = new Uint8Array(count);
  const modes = new Uint32Array(count);
  const uids = new Uint32Array(count);
  const gids = new Uint32Array(count);
  const mtimeLo = new Uint32Array(count);
  const mtimeHi = new Int32Array(count);
  const hashPos = new Uint32Array(count);
  const tree = new TreeChecker(bytes, count);
  // Relative offsets of the Entry fields under the last vtable seen (0 = absent).
  const fieldOff = new Int32Array(ENTRY_FIELD_SIZES.length);
  let cachedVt = -1;
  let sortedOnDisk = true;
  let extent = 0;
  let pathBytes = 0;

  for (let i = 0; i < count; i++) {
    const t = deref(entriesVec + 4 + i * 4);
    const vt = tableVtable(t);
    if (vt !== cachedVt) {
      // Go and flatbuffers-js de-duplicate vtables, so a handful serve all entries: validate each once.
      for (let id = 0; id < ENTRY_FIELD_SIZES.length; id++) {
        const f = field(t, vt, id, ENTRY_FIELD_SIZES[id]!);
        fieldOff[id] = f === 0 ? 0 : f - t;
      }
      cachedVt = vt;
    }

    // path: required, NUL-terminated string, valid archive path in valid UTF-8
    const pathField = at(t, fieldOff[ENTRY_PATH]!);
    if (pathField === 0) fail("missing-path", `entry ${i} has no path`);
    const s = deref(pathField);
    const n = dv.getUint32(s, true);
    const start = s + 4;
    const end = start + n;
    if (end >= len) fail("string-out-of-bounds", `path of entry ${i} runs past the end`);
    if (bytes[end] !== 0) fail("string-not-terminated", `path of entry ${i} is not NUL-terminated`);
    // Distinct paths occupy distinct bytes (length, content, NUL). Entries sharing or overlapping path strings
    // are duplicates or crafted, and could make validation cost far more than the index size: refuse them.
    pathBytes += n + 5;
    if (pathBytes > len) fail("string-overlap", `path of entry ${i} shares bytes with another path`);
    if (n > maxPathLength) {
      throw new BlobError(
        "ERR_LIMIT_EXCEEDED",
        `path of entry ${i} has ${n} bytes, maxPathLength is ${maxPathLength}`,
        { reason: "path-too-long" },
      );
    }
    if (pathSuspicious(dv, bytes, start, n)) checkPathSlow(bytes, start, end, i, maxPathLength);
    pathStart[i] = start;
    pathLen[i] = n;
    // While the disk order is byte order, duplicates and conflicts are checked on the fly.
    if (sortedOnDisk && !tree.next(start, n)) sortedOnDisk = false;

    // hash: required, exactly 32 bytes
    const hashField = at(t, fieldOff[ENTRY_HASH]!);
    if (hashField === 0) failEntry("missing-hash", "has no hash", bytes, start, end);
    const hp = byteVector(hashField, "hash");
    const hashLen = dv.getUint32(hp - 4, true);
    if (hashLen !== 32)
      failEntry("bad-hash-length", `has a ${hashLen}-byte hash, expected 32`, bytes, start, end);

    // compression (int8 enum): only None and Zstd exist; Go maps unknown values to None, we refuse them.
    const compPos = at(t, fieldOff[ENTRY_COMPRESSION]!);
    const comp = compPos === 0 ? 0 : dv.getInt8(compPos);
    if (comp !== 0 && comp !== 1) {
      const path = decodePath(bytes, start, end);
      throw new BlobError(
        "ERR_UNSUPPORTED",
        `entry ${JSON.stringify(path)} has unknown compression ${comp}`,
        {
          reason: "unsupported-compression",
          subject: path,
        },
      );
    }

    const stored = readSize(
      dv,
      at(t, fieldOff[ENTRY_DATA_SIZE]!),
      maxFileSize,
      "stored size",
      bytes,
      start,
      end,
    );
    const size = readSize(dv, at(t, fieldOff[ENTRY_ORIGINAL_SIZE]!), maxFileSize, "size", bytes, start, end);
    // Raw bytes are the content; an empty zstd entry is an empty file, but non-empty content needs a frame.
    if (comp === 0 ? stored !== size : stored === 0 && size !== 0) {
      failEntry("size-mismatch", `stores ${stored} bytes for ${size} bytes`, bytes, start, end);
    }
    const offsetPos = at(t, fieldOff[ENTRY_DATA_OFFSET]!);
    let offset = 0;
    if (offsetPos !== 0) {
      const hi = dv.getUint32(offsetPos + 4, true);
      if (hi > MAX_SAFE_HIGH_WORD)
        failEntry("integer-overflow", "has an offset above 2^53", bytes, start, end);
      offset = hi * TWO_POW_32 + dv.getUint32(offsetPos, true);
    }
    // Both values are safe integers, so the subtraction is exact where a sum might round.
    if (dataSizeKnown) {
      if (stored > dataSize || offset > dataSize - stored) {
        failEntry(
          "entry-out-of-bounds",
          `[${offset}, +${stored}) exceeds data size ${dataSize}`,
          bytes,
          start,
          end,
        );
      }
    } else if (offset + stored > extent) {
      extent = offset + stored;
    }

    const modePos = at(t, fieldOff[ENTRY_MODE]!);
    const uidPos = at(t, fieldOff[ENTRY_UID]!);
    const gidPos = at(t, fieldOff[ENTRY_GID]!);
    const mtimePos = at(t, fieldOff[ENTRY_MTIME]!);
    offsets[i] = offset;
    storedSizes[i] = stored;
    sizes[i] = size;
    compression[i] = comp;
    // Only permission bits are meaningful (Go stores FileMode.Perm()); never surface type or setuid bits.
    modes[i] = modePos === 0 ? 0 : dv.getUint32(modePos, true) & 0o777;
    uids[i] = uidPos === 0 ? 0 : dv.getUint32(uidPos, true);
    gids[i] = gidPos === 0 ? 0 : dv.getUint32(gidPos, true);
    if (mtimePos !== 0) {
      mtimeLo[i] = dv.getUint32(mtimePos, true);
      mtimeHi[i] = dv.getInt32(mtimePos + 4, true);
    }
    hashPos[i] = hp;
  }
  if (!dataSizeKnown) {
    if (extent > Number.MAX_SAFE_INTEGER)
      fail("integer-overflow", "entries extend past Number.MAX_SAFE_INTEGER");
    dataSize = extent;
  }

  // --- order, duplicates, file/directory conflicts -----------------------------------------------------------
  let order: Uint32Array | undefined;
  if (!sortedOnDisk) {
    // Go writes fs.WalkDir order (reference §1.3); keep a byte-sorted permutation instead of failing lookups.
    const perm: number[] = [];
    for (let i = 0; i < count; i++) perm.push(i);
    perm.sort(
      (a, b) => compareRanges(dv, bytes, pathStart[a]!, pathLen[a]!, pathStart[b]!, pathLen[b]!) || a - b,
    );
    order = Uint32Array.from(perm);
    const checker = new TreeChecker(bytes, count);
    for (let r = 0; r < count; r++) {
      const d = order[r]!;
      checker.next(pathStart[d]!, pathLen[d]!);
    }
  }

  const columns = {
    pathStart,
    pathLen,
    offsets,
    storedSizes,
    sizes,
    compression,
    modes,
    uids,
    gids,
    mtimeLo,
    mtimeHi,
    hashPos,
  };
  if (order !== undefined) {
    // One monomorphic loop per array type (a single generic loop over mixed typed arrays is megamorphic).
    columns.pathStart = permuteU32(pathStart, order);
    columns.pathLen = permuteU32(pathLen, order);
    columns.offsets = permuteF64(offsets, order);
    columns.storedSizes = permuteF64(storedSizes, order);
    columns.sizes = permuteF64(sizes, order);
    columns.compression = permuteU8(compression, order);
    columns.modes = permuteU32(modes, order);
    columns.uids = permuteU32(uids, order);
    columns.gids = permuteU32(gids, order);
    columns.mtimeLo = permuteU32(mtimeLo, order);
    columns.mtimeHi = permuteI32(mtimeHi, order);
    columns.hashPos = permuteU32(hashPos, order);
  }
  return {
    version,
    dataSize,
    dataHashPos,
    sortedOnDisk,
    count,
    ...columns,
    diskIndex: order,
  };
}

// Murmur3-style 32-bit hash over little-endian 4-byte words of the UTF-8 path: the per-word multiplies are
// independent, so it is several times faster than a byte-serial hash on typical 20–60 byte paths.
function mixWord(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finishHash(h: number, n: number): number {
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * One pass over a path's bytes, 4 at a time, applying the rules of invalidPathReason for the pure-ASCII case
 * (no empty, `.` or `..` segment, no NUL). Words without a `/`, NUL or non-ASCII byte need no per-byte look;
 * the SWAR test may flag a word too often, never too rarely. Returns true when the path needs the strict
 * check (it may break a rule, or is not pure ASCII).
 */
function pathSuspicious(dv: DataView, bytes: Uint8Array, start: number, n: number): boolean {
  const end = start + n;
  let suspicious = n === 0;
  let segStart = start;
  for (let j = start; j < end; j += 4) {
    if (j + 4 <= end) {
      const w = dv.getInt32(j, true);
      // Only NUL, '/' (segment checks) and bytes ≥ 0x80 need a closer look: skip words without any of them
      // (a zero byte in w, or in w ^ '////', sets a high bit in (x - 0x01010101) & ~x).
      const slash = w ^ 0x2f2f2f2f;
      if (((w | ((w - 0x01010101) & ~w) | ((slash - 0x01010101) & ~slash)) & 0x80808080) === 0) continue;
    }
    const stop = Math.min(j + 4, end);
    for (let q = j; q < stop; q++) {
      const c = bytes[q]!;
      if (c > 0x2f && c < 0x80) continue;
      if (c === 0x2f) {
        if (badSegment(bytes, segStart, q)) suspicious = true;
        segStart = q + 1;
      } else if (c === 0 || c >= 0x80) {
        suspicious = true;
      }
    }
  }
  return suspicious || badSegment(bytes, segStart, end);
}

function badSegment(bytes: Uint8Array, from: number, to: number): boolean {
  const seg = to - from;
  return seg === 0 || (seg <= 2 && bytes[from] === 0x2e && (seg === 1 || bytes[from + 1] === 0x2e));
}

/** Hash of the `n` bytes at `start`; {@link hashPathString} gives the same value for the decoded string. */
function hashRange(dv: DataView, start: number, n: number): number {
  let h = 0x9747b28c;
  const end = start + n;
  let j = start;
  for (; j + 4 <= end; j += 4) h = mixWord(h, dv.getInt32(j, true));
  if (j < end) {
    let k = 0;
    for (let shift = 0; j < end; j++, shift += 8) k |= dv.getUint8(j) << shift;
    h = mixWord(h, k);
  }
  return finishHash(h, n);
}

/**
 * The lookup hash of the UTF-8 form of `path`, or `undefined` when `path` has lone surrogates (no UTF-8
 * form, so it cannot be the path of any entry).
 *
 * @internal
 */
export function hashPathString(path: string): number | undefined {
  const n = path.length;
  let h = 0x9747b28c;
  let j = 0;
  let high = 0;
  for (; j + 4 <= n; j += 4) {
    const a = path.charCodeAt(j);
    const b = path.charCodeAt(j + 1);
    const c = path.charCodeAt(j + 2);
    const d = path.charCodeAt(j + 3);
    high |= a | b | c | d;
    h = mixWord(h, a | (b << 8) | (c << 16) | (d << 24));
  }
  let k = 0;
  for (let shift = 0; j < n; j++, shift += 8) {
    const c = path.charCodeAt(j);
    high |= c;
    k |= c << shift;
  }
  if (high < 0x80) return finishHash(n % 4 === 0 ? h : mixWord(h, k), n);
  if (!(path as unknown as { isWellFormed(): boolean }).isWellFormed()) return undefined;
  const bytes = utf8(path);
  return hashRange(new DataView(bytes.buffer, bytes.byteOffset, bytes.length), 0, bytes.length);
}

/**
 * Open-addressing hash table (linear probing, 2^k slots, load ≤ 80 %) of 4-int slots `[hash, rank + 1,
 * pathStart, pathLen]` (rank + 1 = 0 marks a free slot), keyed by the hash {@link hashPathString} computes
 * for a string: a probe and its key check touch one table cache line plus the path bytes, nothing else.
 */
export function buildLookupTable(
  bytes: Uint8Array,
  pathStart: Uint32Array,
  pathLen: Uint32Array,
): Int32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const count = pathStart.length;
  let slots = 16;
  while (slots < count * 1.25) slots *= 2;
  const table = new Int32Array(slots * 4);
  const mask = slots - 1;
  for (let r = 0; r < count; r++) {
    const start = pathStart[r]!;
    const n = pathLen[r]!;
    const h = hashRange(dv, start, n) | 0;
    let slot = h & mask;
    while (table[slot * 4 + 1] !== 0) slot = (slot + 1) & mask;
    const base = slot * 4;
    table[base] = h;
    table[base + 1] = r + 1;
    table[base + 2] = start;
    table[base + 3] = n;
  }
  return table;
}

/** Unsigned byte-order comparison of two byte ranges of one buffer (4 bytes at a time, big-endian). */
function compareRanges(
  dv: DataView,
  bytes: Uint8Array,
  a: number,
  aLen: number,
  b: number,
  bLen: number,
): number {
  const m = Math.min(aLen, bLen);
  let j = 0;
  for (; j + 4 <= m; j += 4) {
    const x = dv.getUint32(a + j);
    const y = dv.getUint32(b + j);
    if (x !== y) return x < y ? -1 : 1;
  }
  for (; j < m; j++) {
    const d = bytes[a + j]! - bytes[b + j]!;
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

function permuteU32(source: Uint32Array, order: Uint32Array): Uint32Array<ArrayBuffer> {
  const target = new Uint32Array(order.length);
  for (let r = 0; r < order.length; r++) target[r] = source[order[r]!]!;
  return target;
}

function permuteI32(source: Int32Array, order: Uint32Array): Int32Array<ArrayBuffer> {
  const target = new Int32Array(order.length);
  for (let r = 0; r < order.length; r++) target[r] = source[order[r]!]!;
  return target;
}

function permuteF64(source: Float64Array, order: Uint32Array): Float64Array<ArrayBuffer> {
  const target = new Float64Array(order.length);
  for (let r = 0; r < order.length; r++) target[r] = source[order[r]!]!;
  return target;
}

function permuteU8(source: Uint8Array, order: Uint32Array): Uint8Array<ArrayBuffer> {
  const target = new Uint8Array(order.length);
  for (let r = 0; r < order.length; r++) target[r] = source[order[r]!]!;
  return target;
}

/**
 * Streams paths in byte order and rejects duplicates and files that are also a directory of another path
 * (`a` and `a/b`) in O(total bytes). The stack holds the lengths of the earlier paths that are prefixes of the
 * previous path (innermost last); one of them is a prefix of the current path iff its length ≤ the longest
 * common prefix of previous and current path. All paths under `d/` follow `d` contiguously after the keys
 * that merely start with `d`, and a conflict always shows against the top of the stack (a deeper entry would
 * have conflicted with the top already).
 */
class TreeChecker {
  readonly #bytes: Uint8Array;
  readonly #dv: DataView;
  readonly #stack: Uint32Array;
  #depth = 0;
  #prevStart = 0;
  #prevLen = -1;

  constructor(bytes: Uint8Array, count: number) {
    this.#bytes = bytes;
    this.#dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    this.#stack = new Uint32Array(count);
  }

  /** Feeds the next path; false when it sorts before the previous one (then nothing was checked). */
  next(start: number, n: number): boolean {
    const bytes = this.#bytes;
    if (this.#prevLen >= 0) {
      const ps = this.#prevStart;
      const pl = this.#prevLen;
      const m = Math.min(pl, n);
      let lcp = 0;
      const dv = this.#dv;
      while (lcp + 4 <= m && dv.getInt32(ps + lcp) === dv.getInt32(start + lcp)) lcp += 4;
      while (lcp < m && bytes[ps + lcp] === bytes[start + lcp]) lcp++;
      if (lcp < m ? bytes[ps + lcp]! > bytes[start + lcp]! : pl > n) return false;
      if (lcp === n && pl === n) failEntry("duplicate-path", "appears twice", bytes, start, start + n);
      const stack = this.#stack;
      while (this.#depth > 0 && stack[this.#depth - 1]! > lcp) this.#depth--;
      if (this.#depth > 0 && bytes[start + stack[this.#depth - 1]!] === 0x2f) {
        failEntry(
          "file-directory-conflict",
          "lies below a file of the same name as its directory",
          bytes,
          start,
          start + n,
        );
      }
    }
    this.#stack[this.#depth++] = n;
    this.#prevStart = start;
    this.#prevLen = n;
    return true;
  }
}

/** Decodes a path that has passed validation (or, for messages, any bytes: invalid UTF-8 becomes U+FFFD). */
function decodePath(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString("utf8");
}

function failEntry(reason: string, what: string, bytes: Uint8Array, start: number, end: number): never {
  const path = decodePath(bytes, start, end);
  fail(reason, `entry ${JSON.stringify(path)} ${what}`, path);
}

/** The strict path check for paths the fast byte scan did not clear: UTF-8 validity, then invalidPathReason. */
function checkPathSlow(
  bytes: Uint8Array,
  start: number,
  end: number,
  i: number,
  maxPathLength: number,
): void {
  let path: string;
  try {
    path = fatalDecoder.decode(bytes.subarray(start, end));
  } catch (cause) {
    throw new BlobError("ERR_INVALID_INDEX", `invalid archive index: path of entry ${i} is not valid UTF-8`, {
      reason: "path-not-utf8",
      cause,
    });
  }
  const bad = invalidPathReason(path, maxPathLength);
  if (bad !== undefined)
    fail("invalid-path", `entry ${i} has an invalid path ${JSON.stringify(path)}: ${bad}`, path);
}

function readSize(
  dv: DataView,
  pos: number,
  maxFileSize: number,
  what: string,
  bytes: Uint8Array,
  start: number,
  end: number,
): number {
  if (pos === 0) return 0;
  const hi = dv.getUint32(pos + 4, true);
  const value = hi * TWO_POW_32 + dv.getUint32(pos, true);
  // hi > MAX_SAFE_HIGH_WORD makes `value` inexact, but it is then far above any (safe-integer) limit anyway.
  if (hi > MAX_SAFE_HIGH_WORD || value > maxFileSize) {
    const path = decodePath(bytes, start, end);
    throw new BlobError(
      "ERR_LIMIT_EXCEEDED",
      `${what} of ${JSON.stringify(path)} (${value}) exceeds maxFileSize ${maxFileSize}`,
      { reason: "file-too-large", subject: path },
    );
  }
  return value;
}
