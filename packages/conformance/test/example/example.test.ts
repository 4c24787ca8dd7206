// The README's example, run as part of this package's tests so that it stays correct.

import { describeByteSource, describeCache } from "@blobkit/conformance";
import { BlobError, type ByteSource, type Cache, type CacheOptions, type ReadOptions } from "@blobkit/core";

/** A third-party ByteSource: here over a Node Buffer; yours would call S3, IPFS, a database… */
class BufferSource implements ByteSource {
  readonly id: string;
  #buffer: Buffer | undefined;

  constructor(buffer: Buffer, id: string) {
    this.#buffer = buffer;
    this.id = id;
  }

  async size(options: ReadOptions = {}): Promise<number> {
    options.signal?.throwIfAborted();
    return this.#open().length;
  }

  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted();
    const buffer = this.#open();
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "offset and length must be non-negative integers");
    }
    if (offset + length > buffer.length) throw new BlobError("ERR_OUT_OF_RANGE", "read past the end");
    await new Promise((resolve) => setImmediate(resolve)); // stands in for the network round trip
    options.signal?.throwIfAborted();
    return new Uint8Array(buffer.subarray(offset, offset + length)); // a copy: callers may mutate it
  }

  async close(): Promise<void> {
    this.#buffer = undefined;
  }

  #open(): Buffer {
    if (this.#buffer === undefined) throw new BlobError("ERR_CLOSED", "source is closed");
    return this.#buffer;
  }
}

describeByteSource("BufferSource", (bytes) => ({
  source: new BufferSource(Buffer.from(bytes), "example"),
  expected: bytes,
}));

/** A third-party Cache: a Map here; yours would talk to Memcached, DynamoDB, a CDN… (no TTL support). */
class MapCache implements Cache {
  readonly supportsTtl = false;
  #entries: Map<string, Uint8Array> | undefined = new Map();

  async get(key: string, options: CacheOptions = {}): Promise<Uint8Array | undefined> {
    return this.#open(options).get(key)?.slice();
  }

  async set(key: string, value: Uint8Array, options: CacheOptions = {}): Promise<void> {
    this.#open(options).set(key, value.slice());
  }

  async delete(key: string, options: CacheOptions = {}): Promise<void> {
    this.#open(options).delete(key);
  }

  async close(): Promise<void> {
    this.#entries = undefined;
  }

  #open(options: CacheOptions): Map<string, Uint8Array> {
    options.signal?.throwIfAborted();
    if (this.#entries === undefined) throw new BlobError("ERR_CLOSED", "cache is closed");
    return this.#entries;
  }
}

describeCache("MapCache", () => ({ cache: new MapCache() }));
