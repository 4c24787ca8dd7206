/** Options of every {@link ByteSource} read. @public */
export interface ReadOptions {
  /** Aborts the read; the promise (or stream) rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
}

/**
 * Random-access bytes: a local file, a buffer, an HTTP URL, a registry blob or anything a user writes
 * (an S3 object, an IPFS gateway…). The archive reader only ever talks to this interface.
 *
 * Contract (checked by `@blobkit/conformance`):
 * - `read(offset, length)` resolves to exactly `length` bytes or rejects; reads past the end reject with
 *   `ERR_OUT_OF_RANGE`; `length` 0 resolves to an empty array; negative or non-integer arguments reject
 *   with `ERR_INVALID_ARGUMENT`.
 * - Concurrent reads are allowed and independent.
 * - An aborted read rejects with `signal.reason`.
 * - After `close()` (idempotent), reads reject with `ERR_CLOSED`.
 *
 * @public
 */
export interface ByteSource {
  /**
   * Stable identity of the bytes, used as a block-cache key. Two sources with the same id must hold the
   * same bytes (a content digest such as `sha256:<hex>` is ideal).
   */
  readonly id: string;
  /** Total size in bytes. May perform one request the first time; cached afterwards. */
  size(options?: ReadOptions): Promise<number>;
  /** Reads exactly `length` bytes at `offset`. */
  read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array>;
  /**
   * Optional: streams `length` bytes at `offset` without buffering them all (large ranges). When absent,
   * callers fall back to chunked `read`s (see `streamSource`).
   */
  stream?(offset: number, length: number, options?: ReadOptions): ReadableStream<Uint8Array>;
  /** Releases sockets / file handles. Idempotent. */
  close(): Promise<void>;
}
