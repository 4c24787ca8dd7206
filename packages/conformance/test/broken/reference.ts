// Correct reference implementations that the deliberately broken ones in this directory derive from. The
// control suite runs the conformance suites against these unchanged, proving that every failure of a broken
// variant comes from its one bug.
import { createHash } from "node:crypto";
import {
  BlobError,
  type ByteSource,
  type Cache,
  type CacheOptions,
  type CacheSetOptions,
} from "@blobkit/core";

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** An in-memory ByteSource, correct; the hooks below are what the broken variants override. */
export class ReferenceSource implements ByteSource {
  readonly id: string;
  protected readonly bytes: Uint8Array;
  protected closed = false;

  constructor(bytes: Uint8Array, id = "reference") {
    this.bytes = bytes;
    this.id = id;
  }

  protected checkAbort(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw signal.reason;
  }

  protected checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "bad range");
    }
    if (offset + length > this.bytes.length) throw new BlobError("ERR_OUT_OF_RANGE", "past the end");
  }

  protected copy(offset: number, length: number): Uint8Array {
    return this.bytes.slice(offset, offset + length);
  }

  async size(options: { signal?: AbortSignal | undefined } = {}): Promise<number> {
    this.checkAbort(options.signal);
    if (this.closed) throw new BlobError("ERR_CLOSED", "closed");
    return this.bytes.length;
  }

  async read(
    offset: number,
    length: number,
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<Uint8Array> {
    this.checkAbort(options.signal);
    if (this.closed) throw new BlobError("ERR_CLOSED", "closed");
    this.checkRange(offset, length);
    await tick();
    this.checkAbort(options.signal);
    return this.copy(offset, length);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A ReferenceSource with a correct `stream()` (4 KiB chunks, abort-aware). */
export class ReferenceStreamingSource extends ReferenceSource {
  protected watchAbort = true;

  protected streamEnd(offset: number, length: number): number {
    return offset + length;
  }

  stream(
    offset: number,
    length: number,
    options: { signal?: AbortSignal | undefined } = {},
  ): ReadableStream<Uint8Array> {
    const signal = this.watchAbort ? options.signal : undefined;
    let position = offset;
    const end = this.streamEnd(offset, length);
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.checkAbort(signal);
        if (this.closed) throw new BlobError("ERR_CLOSED", "closed");
        this.checkRange(offset, length);
        signal?.addEventListener("abort", () => controller.error(signal.reason), { once: true });
      },
      pull: (controller) => {
        if (signal?.aborted) return controller.error(signal.reason);
        if (position >= end) return controller.close();
        const n = Math.min(4096, end - position);
        controller.enqueue(this.bytes.slice(position, position + n));
        position += n;
        if (position >= end) controller.close();
      },
    });
  }
}

interface Stored {
  bytes: Uint8Array;
  sha256: string;
  expiresAt: number | undefined;
}

const sha = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** A Map-backed Cache, correct: copies in and out, checksums entries, injected clock for TTLs. */
export class ReferenceCache implements Cache {
  readonly supportsTtl: boolean = true;
  protected readonly entries = new Map<string, Stored>();
  protected closed = false;
  /** Whether get() checks entries against their checksum. */
  protected verifies = true;
  now = 0;

  protected check(options: CacheOptions | undefined): void {
    if (options?.signal?.aborted) throw options.signal.reason;
    if (this.closed) throw new BlobError("ERR_CLOSED", "closed");
  }

  protected storageKey(key: string): string {
    return key;
  }

  protected copyIn(value: Uint8Array): Uint8Array {
    return value.slice();
  }

  protected copyOut(value: Uint8Array): Uint8Array {
    return value.slice();
  }

  protected expiry(ttlMs: number | undefined): number | undefined {
    return ttlMs === undefined ? undefined : this.now + ttlMs;
  }

  /** What get() does with an entry whose checksum no longer matches. */
  protected onDamaged(key: string, _stored: Stored): Uint8Array | undefined {
    this.entries.delete(key);
    return undefined;
  }

  async get(key: string, options?: CacheOptions): Promise<Uint8Array | undefined> {
    this.check(options);
    const k = this.storageKey(key);
    const stored = this.entries.get(k);
    if (stored === undefined) return undefined;
    if (stored.expiresAt !== undefined && this.now >= stored.expiresAt) {
      this.entries.delete(k);
      return undefined;
    }
    if (this.verifies && sha(stored.bytes) !== stored.sha256) return this.onDamaged(k, stored);
    return this.copyOut(stored.bytes);
  }

  async set(key: string, value: Uint8Array, options?: CacheSetOptions): Promise<void> {
    this.check(options);
    const bytes = this.copyIn(value);
    this.entries.set(this.storageKey(key), {
      bytes,
      sha256: sha(bytes),
      expiresAt: this.expiry(options?.ttlMs),
    });
  }

  async delete(key: string, options?: CacheOptions): Promise<void> {
    this.check(options);
    this.entries.delete(this.storageKey(key));
  }

  async has(key: string, options?: CacheOptions): Promise<boolean> {
    return (await this.get(key, options)) !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Test hook: flips one stored byte behind the cache's back. */
  async corrupt(key: string): Promise<void> {
    const stored = this.entries.get(this.storageKey(key));
    if (stored === undefined || stored.bytes.length === 0) return;
    const at = stored.bytes.length >> 1;
    stored.bytes[at] = (stored.bytes[at] ?? 0) ^ 0xff;
  }
}

/** The fixture the broken cache suites use: injected clock and corruption hook wired to the cache. */
export function cacheFixture(cache: ReferenceCache): {
  cache: Cache;
  corrupt: (key: string) => Promise<void>;
  advanceTime: (ms: number) => void;
} {
  return {
    cache,
    corrupt: (key) => cache.corrupt(key),
    advanceTime: (ms) => {
      cache.now += ms;
    },
  };
}
