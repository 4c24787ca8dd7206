/** Options of {@link Cache} reads and deletes. @public */
export interface CacheOptions {
  /** Aborts the operation; rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link Cache.set}. @public */
export interface CacheSetOptions extends CacheOptions {
  /** Time to live in milliseconds; only honoured by caches whose `supportsTtl` is true. */
  ttlMs?: number | undefined;
}

/**
 * Bytes by string key. One interface serves every cache layer through key namespaces (see
 * {@link cacheKeys}). A cache is a performance feature, never a source of truth: readers verify what comes
 * out of it, and a cache that fails (Redis down, disk full) degrades to a miss.
 *
 * Contract (checked by `@blobkit/conformance`):
 * - `get` of a missing key resolves to `undefined`; values round-trip byte for byte (including empty ones);
 * - `set` overwrites; concurrent `set`s of one key leave one whole value, never a mix;
 * - an entry the backend detects as damaged reads as a miss (`undefined`) and is removed;
 * - after `close()` (idempotent), operations reject with `ERR_CLOSED`.
 *
 * @public
 */
export interface Cache {
  /** Whether `set` honours `ttlMs`. */
  readonly supportsTtl: boolean;
  /** Returns the value, or `undefined` on a miss. */
  get(key: string, options?: CacheOptions): Promise<Uint8Array | undefined>;
  /** Stores `value` under `key`, replacing any previous value. */
  set(key: string, value: Uint8Array, options?: CacheSetOptions): Promise<void>;
  /** Removes `key`; no error when it is absent. */
  delete(key: string, options?: CacheOptions): Promise<void>;
  /** Optional: whether `key` is present, without reading it. */
  has?(key: string, options?: CacheOptions): Promise<boolean>;
  /** Optional: streams a value (entries larger than memory); `undefined` on a miss. */
  getStream?(key: string, options?: CacheOptions): Promise<ReadableStream<Uint8Array> | undefined>;
  /** Optional: stores a streamed value; nothing is visible under `key` until the stream completes. */
  setStream?(key: string, value: ReadableStream<Uint8Array>, options?: CacheSetOptions): Promise<void>;
  /** Optional: bytes currently held. */
  sizeBytes?(options?: CacheOptions): Promise<number>;
  /** Optional: evicts least-recently-used entries until at most `targetBytes` remain; resolves to bytes freed. */
  prune?(targetBytes: number, options?: CacheOptions): Promise<number>;
  /** Releases connections / handles. Idempotent. */
  close(): Promise<void>;
}

/**
 * Key namespaces shared by every cache layer, so that one {@link Cache} can hold all of them.
 *
 * @public
 */
export const cacheKeys = {
  /** Verified, uncompressed file content by its SHA-256 (hex); shared across archives. */
  file: (sha256Hex: string): string => `file/sha256:${sha256Hex}`,
  /** One block of a byte source. */
  block: (sourceId: string, blockSize: number, blockIndex: number): string =>
    `block/${blockSize}/${blockIndex}/${sourceId}`,
  /** A raw manifest by digest. */
  manifest: (digest: string): string => `manifest/${digest}`,
  /** A raw index blob by digest. */
  index: (digest: string): string => `index/${digest}`,
  /** A tag → digest resolution (store with a TTL). */
  ref: (reference: string): string => `ref/${reference}`,
} as const;
