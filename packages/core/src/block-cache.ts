/**
 * A block cache in front of any {@link ByteSource}: small reads are served from fixed-size blocks kept in a
 * {@link Cache} under `cacheKeys.block(source.id, blockSize, index)`.
 */
import { type Cache, cacheKeys } from "./cache.ts";
import { BlobError, raceAbort, throwIfAborted } from "./errors.ts";
import type { ByteSource, ReadOptions } from "./source.ts";
import { assertReadArguments, outOfRangeError } from "./sources.ts";

/** Options of {@link withBlockCache}. @public */
export interface BlockCacheOptions {
  /** Block size in bytes. Default 1 MiB. */
  blockSize?: number | undefined;
  /** Reads spanning more blocks than this bypass the cache (one direct source read). Default 16. */
  maxBlocksPerRead?: number | undefined;
  /** Called when a cache operation failed and was treated as a miss. */
  onCacheError?: ((error: unknown, key: string) => void) | undefined;
}

/** Default {@link BlockCacheOptions.blockSize}: 1 MiB. @public */
export const DEFAULT_BLOCK_SIZE: number = 1024 * 1024;
/** Default {@link BlockCacheOptions.maxBlocksPerRead}. @public */
export const DEFAULT_MAX_BLOCKS_PER_READ = 16;

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

class BlockCachedSource implements ByteSource {
  readonly id: string;
  readonly #source: ByteSource;
  readonly #cache: Cache;
  readonly #blockSize: number;
  readonly #maxBlocks: number;
  readonly #onCacheError: ((error: unknown, key: string) => void) | undefined;
  /** Blocks being fetched, by block index: concurrent readers share one fetch. */
  readonly #inflight = new Map<number, Promise<Uint8Array>>();
  #size: number | undefined;
  #closed = false;

  constructor(source: ByteSource, cache: Cache, options: BlockCacheOptions) {
    this.id = source.id;
    this.#source = source;
    this.#cache = cache;
    this.#blockSize = positiveInteger(options.blockSize, DEFAULT_BLOCK_SIZE, "blockSize");
    this.#maxBlocks = positiveInteger(
      options.maxBlocksPerRead,
      DEFAULT_MAX_BLOCKS_PER_READ,
      "maxBlocksPerRead",
    );
    this.#onCacheError = options.onCacheError;
    if (typeof source.stream === "function") {
      const stream = source.stream.bind(source);
      // Large sequential ranges go straight to the source: caching them block by block would turn one
      // streaming request into many small ones.
      this.stream = (offset: number, length: number, opts?: ReadOptions): ReadableStream<Uint8Array> => {
        if (this.#closed) throw new BlobError("ERR_CLOSED", "source is closed");
        return stream(offset, length, opts);
      };
    }
  }

  stream?: (offset: number, length: number, options?: ReadOptions) => ReadableStream<Uint8Array>;

  #assertOpen(): void {
    if (this.#closed) throw new BlobError("ERR_CLOSED", "source is closed");
  }

  async size(options?: ReadOptions): Promise<number> {
    this.#assertOpen();
    if (this.#size === undefined) this.#size = await this.#source.size(options);
    return this.#size;
  }

  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    this.#assertOpen();
    const { signal } = options;
    throwIfAborted(signal);
    assertReadArguments(offset, length, this.id);
    const size = await this.size({ signal });
    if (offset + length > size) throw outOfRangeError(offset, length, size, this.id);
    if (length === 0) return new Uint8Array(0);
    const bs = this.#blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((offset + length - 1) / bs);
    if (last - first + 1 > this.#maxBlocks) return this.#source.read(offset, length, options);

    const blocks = new Map<number, Uint8Array | Promise<Uint8Array>>();
    const lookups: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      const pending = this.#inflight.get(i);
      if (pending !== undefined) {
        blocks.set(i, pending);
        continue;
      }
      const expected = Math.min(bs, size - i * bs);
      lookups.push(
        this.#cacheGet(i, expected, signal).then((hit) => {
          if (hit !== undefined) blocks.set(i, hit);
        }),
      );
    }
    await Promise.all(lookups);
    throwIfAborted(signal);

    // Fetch every still-missing block; contiguous runs are one source read.
    let runStart = -1;
    for (let i = first; i <= last + 1; i++) {
      const missing = i <= last && !blocks.has(i) && !this.#inflight.has(i);
      if (i <= last && !blocks.has(i) && this.#inflight.has(i)) blocks.set(i, this.#inflight.get(i)!);
      if (missing && runStart < 0) runStart = i;
      if (!missing && runStart >= 0) {
        this.#fetchRun(runStart, i - 1, size, blocks);
        runStart = -1;
      }
    }

    const out = new Uint8Array(length);
    for (let i = first; i <= last; i++) {
      const block = await raceAbort(Promise.resolve(blocks.get(i)!), signal);
      const blockStart = i * bs;
      const from = Math.max(offset, blockStart) - blockStart;
      const to = Math.min(offset + length, blockStart + block.byteLength) - blockStart;
      out.set(block.subarray(from, to), Math.max(offset, blockStart) - offset);
    }
    return out;
  }

  /** Starts one source read for blocks `from..to` and registers each block as in flight. */
  #fetchRun(
    from: number,
    to: number,
    size: number,
    blocks: Map<number, Uint8Array | Promise<Uint8Array>>,
  ): void {
    const bs = this.#blockSize;
    const start = from * bs;
    const end = Math.min(size, (to + 1) * bs);
    // Not tied to any caller's signal: other readers may join these blocks; aborted callers just stop waiting.
    const run = this.#source.read(start, end - start);
    for (let i = from; i <= to; i++) {
      const blockStart = i * bs;
      const promise = run.then(async (bytes) => {
        if (bytes.byteLength !== end - start) {
          throw new BlobError(
            "ERR_INTEGRITY",
            `source returned ${bytes.byteLength} bytes, expected ${end - start}`,
            {
              reason: "short-read",
              subject: this.id,
            },
          );
        }
        const block = bytes.subarray(blockStart - start, Math.min(end, blockStart + bs) - start);
        await this.#cacheSet(i, block);
        return block;
      });
      const settled = promise.finally(() => {
        if (this.#inflight.get(i) === settled) this.#inflight.delete(i);
      });
      settled.catch(() => {});
      this.#inflight.set(i, settled);
      blocks.set(i, settled);
    }
  }

  #report(error: unknown, key: string): void {
    try {
      this.#onCacheError?.(error, key);
    } catch {
      // Observers must not turn a cache problem into a read failure.
    }
  }

  async #cacheGet(
    index: number,
    expected: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array | undefined> {
    const key = cacheKeys.block(this.id, this.#blockSize, index);
    let value: Uint8Array | undefined;
    try {
      value = await this.#cache.get(key, { signal });
    } catch (error) {
      throwIfAborted(signal);
      this.#report(error, key);
      return undefined;
    }
    if (value === undefined) return undefined;
    if (value instanceof Uint8Array && value.byteLength === expected) return value;
    // A block of the wrong length is damaged (or from another source size): drop it and refetch.
    try {
      await this.#cache.delete(key);
    } catch (error) {
      this.#report(error, key);
    }
    return undefined;
  }

  async #cacheSet(index: number, block: Uint8Array): Promise<void> {
    const key = cacheKeys.block(this.id, this.#blockSize, index);
    try {
      await this.#cache.set(key, block);
    } catch (error) {
      this.#report(error, key);
    }
  }

  /** Closes the wrapped source (the wrapper owns it); the cache is left open. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#source.close();
  }
}

/**
 * Wraps `source` so that reads spanning at most `maxBlocksPerRead` blocks are served from `cache` in
 * `blockSize` blocks; missing blocks are fetched whole (contiguous missing blocks in one source read),
 * shared by concurrent readers and stored best-effort. Larger reads and `stream()` go straight to the
 * source. Blocks are checked for length only; file content stays protected by the archive's SHA-256
 * verification. A failing cache never fails a read. The returned source has the same `id` and closing it
 * closes `source`.
 *
 * @public
 */
export function withBlockCache(
  source: ByteSource,
  cache: Cache,
  options: BlockCacheOptions = {},
): ByteSource {
  return new BlockCachedSource(source, cache, options);
}
