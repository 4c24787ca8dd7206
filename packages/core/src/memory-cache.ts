import type { Cache, CacheOptions, CacheSetOptions } from "./cache.ts";
import { BlobError, throwIfAborted } from "./errors.ts";

/** Options of {@link MemoryCache}. @public */
export interface MemoryCacheOptions {
  /** Most value bytes held; least-recently-used entries are evicted beyond it. Default 64 MiB. */
  maxBytes?: number | undefined;
  /** Clock in milliseconds used for TTLs (inject one in tests). Default `Date.now`. */
  now?: (() => number) | undefined;
}

interface Entry {
  readonly value: Uint8Array;
  /** Expiry time on the cache's clock, or `undefined` for no TTL. */
  readonly expiresAt: number | undefined;
}

/**
 * An in-process {@link Cache}: least-recently-used eviction by value bytes, TTLs supported. Values are copied
 * in and out, so neither the caller's array nor a returned one aliases the stored bytes. A value larger than
 * `maxBytes` is not stored (and the previous value of its key is dropped). Sizes count value bytes only.
 *
 * @public
 */
export class MemoryCache implements Cache {
  /** Always true: `ttlMs` is honoured. */
  readonly supportsTtl: boolean = true;
  /** The byte budget. */
  readonly maxBytes: number;
  readonly #now: () => number;
  // A Map iterates in insertion order; re-inserting on use keeps it in recency order (oldest first).
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #closed = false;

  constructor(options: MemoryCacheOptions = {}) {
    const { maxBytes = 64 * 1024 * 1024, now = Date.now } = options;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `maxBytes must be a non-negative integer, got ${maxBytes}`);
    }
    if (typeof now !== "function") throw new BlobError("ERR_INVALID_ARGUMENT", "now must be a function");
    this.maxBytes = maxBytes;
    this.#now = now;
  }

  /** Returns a copy of the value, or `undefined` on a miss (expired entries are misses and are removed). */
  async get(key: string, options: CacheOptions = {}): Promise<Uint8Array | undefined> {
    this.#enter(key, options.signal);
    const entry = this.#live(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value.slice();
  }

  /** Stores a copy of `value`, replacing any previous value and TTL. */
  async set(key: string, value: Uint8Array, options: CacheSetOptions = {}): Promise<void> {
    this.#enter(key, options.signal);
    if (!(value instanceof Uint8Array)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "cache values must be Uint8Arrays", { subject: key });
    }
    const { ttlMs } = options;
    if (ttlMs !== undefined && (typeof ttlMs !== "number" || !(ttlMs > 0) || !Number.isFinite(ttlMs))) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `ttlMs must be a positive number, got ${String(ttlMs)}`, {
        subject: key,
      });
    }
    this.#remove(key);
    if (value.byteLength > this.maxBytes) return;
    this.#entries.set(key, {
      value: value.slice(),
      expiresAt: ttlMs === undefined ? undefined : this.#now() + ttlMs,
    });
    this.#bytes += value.byteLength;
    this.#evictTo(this.maxBytes);
  }

  /** Removes `key`; no error when it is absent. */
  async delete(key: string, options: CacheOptions = {}): Promise<void> {
    this.#enter(key, options.signal);
    this.#remove(key);
  }

  /** Whether a live entry exists under `key` (does not count as a use for LRU). */
  async has(key: string, options: CacheOptions = {}): Promise<boolean> {
    this.#enter(key, options.signal);
    return this.#live(key) !== undefined;
  }

  /** Value bytes currently held by live entries. */
  async sizeBytes(options: CacheOptions = {}): Promise<number> {
    this.#check(options.signal);
    this.#dropExpired();
    return this.#bytes;
  }

  /** Drops expired entries, then least-recently-used ones until at most `targetBytes` remain. */
  async prune(targetBytes: number, options: CacheOptions = {}): Promise<number> {
    this.#check(options.signal);
    if (typeof targetBytes !== "number" || !Number.isSafeInteger(targetBytes) || targetBytes < 0) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `targetBytes must be a non-negative integer, got ${targetBytes}`,
      );
    }
    const before = this.#bytes;
    this.#dropExpired();
    this.#evictTo(targetBytes);
    return before - this.#bytes;
  }

  /** Drops every entry; later operations reject with `ERR_CLOSED`. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Same as {@link MemoryCache.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #check(signal: AbortSignal | undefined): void {
    throwIfAborted(signal);
    if (this.#closed) throw new BlobError("ERR_CLOSED", "cache is closed");
  }

  #enter(key: string, signal: AbortSignal | undefined): void {
    this.#check(signal);
    if (typeof key !== "string") throw new BlobError("ERR_INVALID_ARGUMENT", "cache keys must be strings");
  }

  /** The entry under `key` unless absent or expired (expired ones are removed). */
  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && this.#now() >= entry.expiresAt) {
      this.#remove(key);
      return undefined;
    }
    return entry;
  }

  #remove(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.value.byteLength;
  }

  #dropExpired(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt !== undefined && now >= entry.expiresAt) this.#remove(key);
    }
  }

  #evictTo(targetBytes: number): void {
    for (const key of this.#entries.keys()) {
      if (this.#bytes <= targetBytes) break;
      this.#remove(key);
    }
  }
}
