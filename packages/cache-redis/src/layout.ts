// Key layout and the binary codecs of entries: pure functions, no Redis. See the README's "Layout" section.
import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

/** "BKRC": blobkit Redis cache. */
const MAGIC = Uint8Array.of(0x42, 0x4b, 0x52, 0x43);
const VERSION = 1;
const KIND_INLINE = 0;
const KIND_CHUNKED = 1;

/** Bytes of the fixed part of an entry's header key (see the README for the layout). @public */
export const REDIS_CACHE_HEADER_BYTES = 44;
/** Bytes in front of every chunk's data: generation (16), chunk index (4), CRC-32 of the data (4). @public */
export const REDIS_CACHE_CHUNK_PREFIX_BYTES = 24;
/** Bytes of a generation id. */
export const GENERATION_BYTES = 16;
/** Most chunks one entry may have (guards readers against a damaged header announcing billions). */
export const MAX_CHUNKS: number = 1 << 20;

/** The Redis key names of one cache entry. */
export interface EntryKeys {
  /** The header key: `<prefix>{<sha256(key) hex>}`. */
  readonly header: string;
  /** The hash tag shared by every key of the entry (`{…}` included). */
  readonly tag: string;
}

/**
 * The keys of the entry of `key` under `prefix`. The cache key is hashed (SHA-256 of its UTF-8 bytes, hex) so
 * that any string (braces, newlines, 10 kB keys) makes a short key whose `{…}` hash tag is well formed: every
 * key of one entry (header and chunks) then lives in the same Redis Cluster slot.
 */
export function entryKeys(prefix: string, key: string): EntryKeys {
  const tag = `{${createHash("sha256").update(key, "utf8").digest("hex")}}`;
  return { header: `${prefix}${tag}`, tag };
}

/** The key of chunk `index` of generation `generation` of the entry whose header key is `header`. */
export function chunkKey(header: string, generation: Uint8Array, index: number): string {
  return `${header}:${Buffer.from(generation.buffer, generation.byteOffset, generation.byteLength).toString("hex")}:${index}`;
}

/** The keys of all `count` chunks of a generation. */
export function chunkKeys(header: string, generation: Uint8Array, count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push(chunkKey(header, generation, i));
  return keys;
}

/** The hash tag (the text between the first `{` and the next `}`) Redis Cluster hashes for `key`, if any. */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf("{");
  if (open < 0) return undefined;
  const close = key.indexOf("}", open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

/** A fresh random generation id. */
export function newGeneration(): Uint8Array {
  return new Uint8Array(randomBytes(GENERATION_BYTES));
}

/** Number of chunks a value of `length` bytes takes with chunks of `chunkSize` bytes. */
export function chunkCount(length: number, chunkSize: number): number {
  return Math.ceil(length / chunkSize);
}

/** Byte length of chunk `index` of a value of `length` bytes cut in chunks of `chunkSize` bytes. */
export function chunkLength(length: number, chunkSize: number, index: number): number {
  return Math.min(chunkSize, length - index * chunkSize);
}

/** A decoded entry header. */
export type Header =
  | {
      /** The value is stored inside the header key. */
      readonly kind: "inline";
      /** The write's random generation id. */
      readonly generation: Uint8Array;
      /** Value length in bytes. */
      readonly length: number;
      /** The value (a view into the decoded bytes), already checked against its length and CRC-32. */
      readonly value: Uint8Array;
    }
  | {
      /** The value is stored in chunk keys of this generation. */
      readonly kind: "chunked";
      /** The generation id every chunk must carry (and whose hex is in their key names). */
      readonly generation: Uint8Array;
      /** Value length in bytes. */
      readonly length: number;
      /** Data bytes per chunk (the last one may be shorter). */
      readonly chunkSize: number;
      /** Number of chunks. */
      readonly chunks: number;
    };

function crcOf(bytes: Uint8Array): number {
  return crc32(bytes) >>> 0;
}

function fixedPart(
  kind: number,
  generation: Uint8Array,
  length: number,
  chunkSize: number,
  valueCrc: number,
  extra: number,
): Buffer {
  const out = Buffer.alloc(REDIS_CACHE_HEADER_BYTES + extra);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out[5] = kind;
  out.set(generation, 8);
  out.writeBigUInt64BE(BigInt(length), 24);
  out.writeUInt32BE(chunkSize, 32);
  out.writeUInt32BE(valueCrc, 36);
  out.writeUInt32BE(crcOf(out.subarray(0, 40)), 40);
  return out;
}

/** The header of an entry stored inline: the fixed part followed by the value itself. */
export function encodeInlineHeader(generation: Uint8Array, value: Uint8Array): Buffer {
  const out = fixedPart(KIND_INLINE, generation, value.byteLength, 0, crcOf(value), value.byteLength);
  out.set(value, REDIS_CACHE_HEADER_BYTES);
  return out;
}

/** The header of an entry stored in chunks (the fixed part only). */
export function encodeChunkedHeader(generation: Uint8Array, length: number, chunkSize: number): Buffer {
  return fixedPart(KIND_CHUNKED, generation, length, chunkSize, 0, 0);
}

/** The fixed part of a header, checked on its own (enough for `has` and for finding an entry's chunks). */
export interface FixedHeader {
  /** Where the value is stored (see {@link Header}). */
  readonly kind: "inline" | "chunked";
  /** The write's random generation id. */
  readonly generation: Uint8Array;
  /** Value length in bytes. */
  readonly length: number;
  /** Total bytes of the header key's value (fixed part plus, for an inline entry, the value). */
  readonly storedBytes: number;
  /** Chunk size of a chunked entry; 0 for an inline one. */
  readonly chunkSize: number;
  /** Chunk count of a chunked entry; 0 for an inline one. */
  readonly chunks: number;
}

/**
 * Decodes the first {@link REDIS_CACHE_HEADER_BYTES} bytes of a header key's value; `undefined` when they are
 * damaged (magic, version, header CRC, inconsistent sizes). Bytes after the fixed part are ignored.
 */
export function decodeFixedHeader(bytes: Uint8Array): FixedHeader | undefined {
  if (bytes.byteLength < REDIS_CACHE_HEADER_BYTES) return undefined;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, REDIS_CACHE_HEADER_BYTES);
  for (let i = 0; i < MAGIC.length; i++) if (b[i] !== MAGIC[i]) return undefined;
  if (b[4] !== VERSION || b[6] !== 0 || b[7] !== 0) return undefined;
  if (b.readUInt32BE(40) !== crcOf(b.subarray(0, 40))) return undefined;
  const big = b.readBigUInt64BE(24);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const length = Number(big);
  const chunkSize = b.readUInt32BE(32);
  const generation = b.subarray(8, 8 + GENERATION_BYTES);
  if (b[5] === KIND_INLINE) {
    if (chunkSize !== 0) return undefined;
    const storedBytes = REDIS_CACHE_HEADER_BYTES + length;
    return { kind: "inline", generation, length, storedBytes, chunkSize: 0, chunks: 0 };
  }
  if (b[5] === KIND_CHUNKED) {
    if (chunkSize === 0 || length === 0 || b.readUInt32BE(36) !== 0) return undefined;
    const chunks = chunkCount(length, chunkSize);
    if (chunks > MAX_CHUNKS) return undefined;
    return { kind: "chunked", generation, length, storedBytes: REDIS_CACHE_HEADER_BYTES, chunkSize, chunks };
  }
  return undefined;
}

/**
 * Decodes a whole header key's value; `undefined` when it is damaged (see {@link decodeFixedHeader}; also a
 * stored size that does not match, or for an inline entry a value whose CRC-32 does not match).
 */
export function decodeHeader(bytes: Uint8Array): Header | undefined {
  const fixed = decodeFixedHeader(bytes);
  if (fixed === undefined || bytes.byteLength !== fixed.storedBytes) return undefined;
  const { generation, length } = fixed;
  if (fixed.kind === "chunked") {
    return { kind: "chunked", generation, length, chunkSize: fixed.chunkSize, chunks: fixed.chunks };
  }
  const value = bytes.subarray(REDIS_CACHE_HEADER_BYTES);
  const expected = Buffer.from(bytes.buffer, bytes.byteOffset, REDIS_CACHE_HEADER_BYTES).readUInt32BE(36);
  if (crcOf(value) !== expected) return undefined;
  return { kind: "inline", generation, length, value };
}

/** A chunk's stored value: generation, index and CRC-32 of `data`, then `data`. */
export function encodeChunk(generation: Uint8Array, index: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(REDIS_CACHE_CHUNK_PREFIX_BYTES + data.byteLength);
  out.set(generation, 0);
  out.writeUInt32BE(index, GENERATION_BYTES);
  out.writeUInt32BE(crcOf(data), GENERATION_BYTES + 4);
  out.set(data, REDIS_CACHE_CHUNK_PREFIX_BYTES);
  return out;
}

/**
 * The data of a stored chunk when it belongs to `generation`, is chunk `index`, has exactly `length` data
 * bytes and matches its CRC-32; otherwise `undefined` (a torn, stale or damaged chunk).
 */
export function decodeChunk(
  stored: Uint8Array,
  generation: Uint8Array,
  index: number,
  length: number,
): Uint8Array | undefined {
  if (stored.byteLength !== REDIS_CACHE_CHUNK_PREFIX_BYTES + length) return undefined;
  const b = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (!b.subarray(0, GENERATION_BYTES).equals(generation)) return undefined;
  if (b.readUInt32BE(GENERATION_BYTES) !== index) return undefined;
  const data = b.subarray(REDIS_CACHE_CHUNK_PREFIX_BYTES);
  if (crcOf(data) !== b.readUInt32BE(GENERATION_BYTES + 4)) return undefined;
  return data;
}
