import type { ByteSource, ReadOptions } from "@blobkit/core";
import { MemorySource, streamSource } from "@blobkit/core";
import { describeByteSource } from "./index.ts";

/** A source whose stream() is core's chunked-read fallback over a source that has no stream() of its own. */
class FallbackStreamSource implements ByteSource {
  readonly #inner: ByteSource;
  constructor(bytes: Uint8Array) {
    const memory = new MemorySource(bytes);
    // Hide MemorySource's own stream() so that streamSource has to fall back to reads.
    this.#inner = {
      id: memory.id,
      size: (options) => memory.size(options),
      read: (offset, length, options) => memory.read(offset, length, options),
      close: () => memory.close(),
    };
  }
  get id(): string {
    return this.#inner.id;
  }
  size(options?: ReadOptions): Promise<number> {
    return this.#inner.size(options);
  }
  read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array> {
    return this.#inner.read(offset, length, options);
  }
  stream(offset: number, length: number, options: ReadOptions = {}): ReadableStream<Uint8Array> {
    return streamSource(this.#inner, offset, length, { ...options, chunkSize: 1000 });
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

describeByteSource(
  "streamSource fallback (1000-byte chunks)",
  (bytes) => ({
    source: new FallbackStreamSource(bytes),
    expected: bytes,
  }),
  { streams: true, largeSize: 1024 * 1024 },
);
