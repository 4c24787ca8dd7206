/**
 * Test helper: a {@link ByteSource} wrapper that records every read and stream request.
 *
 * @internal
 */
import type { ByteSource, ReadOptions } from "../source.ts";

/** Options of {@link CountingSource}. @internal */
export interface CountingSourceOptions {
  /** Expose `stream()` (sliced into `chunkSize` chunks, read through the inner source). Default true. */
  readonly stream?: boolean | undefined;
  /** Chunk size of `stream()`. Default 16 KiB. */
  readonly chunkSize?: number | undefined;
}

/** Records calls to an inner source. @internal */
export class CountingSource implements ByteSource {
  readonly inner: ByteSource;
  /** `[offset, length]` of each `read`. */
  readonly reads: [number, number][] = [];
  /** `[offset, length]` of each `stream`. */
  readonly streams: [number, number][] = [];
  /** Extra hook run before each read (e.g. to delay or fail). */
  beforeRead: ((offset: number, length: number, options?: ReadOptions) => Promise<void> | void) | undefined;
  closeCount = 0;
  readonly #chunkSize: number;

  constructor(inner: ByteSource, options: CountingSourceOptions = {}) {
    this.inner = inner;
    this.#chunkSize = options.chunkSize ?? 16 * 1024;
    if (options.stream === false) this.stream = undefined;
  }

  get id(): string {
    return this.inner.id;
  }

  /** Total number of requests (reads + streams). */
  get requests(): number {
    return this.reads.length + this.streams.length;
  }

  /** Forgets recorded requests. */
  reset(): void {
    this.reads.length = 0;
    this.streams.length = 0;
  }

  size(options?: ReadOptions): Promise<number> {
    return this.inner.size(options);
  }

  async read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array> {
    this.reads.push([offset, length]);
    await this.beforeRead?.(offset, length, options);
    return this.inner.read(offset, length, options);
  }

  stream:
    | ((offset: number, length: number, options?: ReadOptions) => ReadableStream<Uint8Array>)
    | undefined = (offset, length, options) => {
    this.streams.push([offset, length]);
    let at = offset;
    const end = offset + length;
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          if (at >= end) {
            controller.close();
            return;
          }
          const n = Math.min(this.#chunkSize, end - at);
          await this.beforeRead?.(at, n, options);
          const chunk = await this.inner.read(at, n, options);
          at += n;
          controller.enqueue(chunk);
        },
      },
      { highWaterMark: 0 },
    );
  };

  async close(): Promise<void> {
    this.closeCount++;
    await this.inner.close();
  }
}
