import {
  BlobError,
  type Cache,
  type CacheOptions,
  type CacheSetOptions,
  isBlobError,
  throwIfAborted,
} from "@blobkit/core";
import { type Cluster, Redis, type RedisOptions } from "ioredis";
import {
  chunkKeys,
  chunkLength,
  decodeChunk,
  decodeFixedHeader,
  decodeHeader,
  type EntryKeys,
  encodeChunk,
  encodeChunkedHeader,
  encodeInlineHeader,
  entryKeys,
  type Header,
  hashTagOf,
  newGeneration,
  REDIS_CACHE_CHUNK_PREFIX_BYTES,
  REDIS_CACHE_HEADER_BYTES,
} from "./layout.ts";
import { COMMIT, EVICT, type LuaScript } from "./scripts.ts";

/** Default of {@link RedisCacheOptions.timeoutMs}. @public */
export const DEFAULT_REDIS_TIMEOUT_MS = 300;
/** Default of {@link RedisCacheOptions.chunkSize}: 1 MiB. @public */
export const DEFAULT_REDIS_CHUNK_SIZE: number = 1024 * 1024;
/** Default of {@link RedisCacheOptions.maxEntryBytes}: 64 MiB. @public */
export const DEFAULT_REDIS_MAX_ENTRY_BYTES: number = 64 * 1024 * 1024;

/** TTL of chunks written but not yet committed: leftovers of a crashed writer expire after this. */
const PENDING_TTL_MS = 60 * 60 * 1000;
/** Chunk commands in flight per operation. */
const WINDOW = 4;
/** Commit attempts when another writer switches the entry in between. */
const COMMIT_ATTEMPTS = 4;
/** Keys per SCAN step and per pipeline of `sizeBytes`/`prune`. */
const SCAN_COUNT = 1000;
/** Values smaller than this are copied out of the reply buffer (do not pin a socket chunk). */
const COPY_BELOW = 64 * 1024;

/** An ioredis client: a standalone/Sentinel `Redis` or a `Cluster`. @public */
export type RedisClient = Redis | Cluster;

/** Options of {@link RedisCache}. Exactly one of `url` and `client` is required. @public */
export interface RedisCacheOptions {
  /**
   * A Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS). The cache creates its own
   * client with {@link redisClientOptions} (plus `redisOptions`) and closes it in `close()`.
   */
  url?: string | undefined;
  /**
   * An existing ioredis `Redis` or `Cluster` client, shared with the application; `close()` leaves it open.
   * It must not have a `keyPrefix` (use {@link RedisCacheOptions.keyPrefix}). For bounded waits configure it
   * like {@link redisClientOptions} (the cache bounds its own waits anyway, but a client with an offline queue
   * keeps queued commands until Redis is back).
   */
  client?: RedisClient | undefined;
  /** Extra ioredis options for the client created from `url` (override the defaults). */
  redisOptions?: RedisOptions | undefined;
  /** Prefix of every Redis key of this cache; caches with different prefixes are isolated. No `{`/`}`. Default `"blobkit:"`. */
  keyPrefix?: string | undefined;
  /**
   * Most ms one Redis round trip may take before the operation rejects with `ERR_CACHE` (a big value takes
   * several round trips, each bounded). Default 300.
   */
  timeoutMs?: number | undefined;
  /**
   * Values up to this many bytes are stored in one key; larger ones in chunks of this size, so that no
   * single command moves more than this. Default 1 MiB.
   */
  chunkSize?: number | undefined;
  /** Values larger than this are not stored (and the key's previous value is removed). Default 64 MiB. */
  maxEntryBytes?: number | undefined;
  /**
   * Optional byte budget of this cache's keys (values, headers, chunks, as Redis' `MEMORY USAGE` counts them:
   * per-key overhead included).
   * When set, every `pruneEvery` writes this instance scans the prefix in the background and, if the total
   * exceeds `maxBytes`, evicts least-recently-used entries down to `lowWaterBytes`. Default: none — bound the
   * memory with Redis' own `maxmemory` and `maxmemory-policy allkeys-lru` (see the README).
   */
  maxBytes?: number | undefined;
  /** Target of a prune triggered by `maxBytes`. Default 90% of `maxBytes`. */
  lowWaterBytes?: number | undefined;
  /** Writes by this instance between two budget checks (only with `maxBytes`). Default 100. */
  pruneEvery?: number | undefined;
  /** Called with every backend failure (`ERR_CACHE`, including the client's connection errors) and every damaged entry found (`ERR_INTEGRITY`). */
  onError?: ((error: BlobError) => void) | undefined;
}

/**
 * The ioredis options {@link RedisCache} uses for the client it creates from a URL: every command fails fast
 * while Redis is unreachable (`enableOfflineQueue: false`, `maxRetriesPerRequest: 0`), is bounded by
 * `commandTimeout`, and the client reconnects in the background (backoff 50 ms → 1 s). Use them for a client
 * you pass in `client` too.
 *
 * @public
 */
export function redisClientOptions(timeoutMs: number = DEFAULT_REDIS_TIMEOUT_MS): RedisOptions {
  return {
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(1000, timeoutMs),
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times - 1, 5), 1000),
  };
}

/** Wraps an error thrown by the caller's stream, so that it is rethrown as is and not as `ERR_CACHE`. */
class SourceFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

function positiveInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `${name} must be an integer between 1 and ${max}`);
  }
  return value;
}

function isClient(value: unknown): value is RedisClient {
  const v = value as { getBuffer?: unknown; evalsha?: unknown } | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.getBuffer === "function" &&
    typeof v.evalsha === "function"
  );
}

/** Escapes SCAN/KEYS glob metacharacters. */
function globEscape(text: string): string {
  return text.replace(/[\\*?[\]]/g, "\\$&");
}

function copyOut(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength < COPY_BELOW || bytes.buffer.byteLength > 2 * bytes.byteLength) {
    return new Uint8Array(bytes);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Runs `tasks` with at most `limit` in flight; rejects with the first failure (after the others settle). */
async function inWindow(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, count) }, worker));
  for (const result of results) if (result.status === "rejected") throw result.reason;
}

/** A scanned entry: its header key, the chunk keys seen with its hash tag, and what they hold. */
interface ScannedEntry {
  readonly header: string;
  readonly chunks: string[];
  prefix: Buffer;
  bytes: number;
  idle: number;
}

/** Whether a scanned entry has chunks of a generation other than its header's (or no header at all). */
function hasOrphans(entry: ScannedEntry): boolean {
  if (entry.chunks.length === 0) return false;
  const fixed = decodeFixedHeader(entry.prefix);
  if (fixed === undefined) return true;
  const generation = Buffer.from(fixed.generation).toString("hex");
  return entry.chunks.some((key) => !key.includes(`:${generation}:`));
}

/**
 * A {@link Cache} on Redis through ioredis, shared by every machine of a fleet.
 *
 * - Layout: an entry is a header key `<prefix>{<sha256(key) hex>}` and, for values larger than `chunkSize`,
 *   chunk keys `<prefix>{<same>}:<generation hex>:<index>`. Small values live inside the header key (one
 *   round trip per hit). All keys of an entry share one hash tag, so every multi-key command and script is
 *   legal on Redis Cluster.
 * - Writes: chunks are written under a fresh random generation (with a one-hour safety TTL), then a Lua
 *   script atomically checks they are all present, switches the header to the new generation, applies the
 *   entry's TTL and deletes the previous generation's chunks. Readers check every chunk's generation, index,
 *   length and CRC-32 (and an inline value's length and CRC-32): a reader never assembles a mix of two writes;
 *   a torn, missing or damaged chunk reads as a miss and the entry is removed.
 * - TTL: `supportsTtl` is true (Redis `PX` on the header and chunks).
 * - Failures: every Redis round trip is bounded by `timeoutMs`; Redis down, slow or restarting makes
 *   operations reject with `ERR_CACHE` (the core `Archive` then reads from its source), the client
 *   reconnects in the background, and `onError` is called. Damaged entries are reported as `ERR_INTEGRITY`.
 *
 * @public
 */
export class RedisCache implements Cache {
  /** Always true: `ttlMs` is honoured. */
  readonly supportsTtl: boolean = true;
  /** The prefix of every key of this cache. */
  readonly keyPrefix: string;
  /** Most ms one Redis round trip may take. */
  readonly timeoutMs: number;
  /** Values up to this size are stored in one key; larger ones in chunks of this size. */
  readonly chunkSize: number;
  /** Values larger than this are not stored. */
  readonly maxEntryBytes: number;
  /** The byte budget, if any (see {@link RedisCacheOptions.maxBytes}). */
  readonly maxBytes: number | undefined;
  readonly #lowWaterBytes: number;
  readonly #pruneEvery: number;
  readonly #client: RedisClient;
  readonly #owned: boolean;
  readonly #onError: ((error: BlobError) => void) | undefined;
  readonly #onClientError: (error: Error) => void;
  readonly #onClientReady: () => void;
  #ready: boolean;
  readonly #firstReady: Promise<void>;
  #resolveFirstReady: () => void = () => undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #degraded = false;
  #writesSinceCheck = 0;
  #pruning: Promise<void> | undefined;

  /** Creates a cache on `options.url` or `options.client`; see {@link RedisCacheOptions}. Connects in the background. */
  constructor(options: RedisCacheOptions) {
    const { url, client, keyPrefix = "blobkit:", timeoutMs = DEFAULT_REDIS_TIMEOUT_MS } = options;
    if ((url === undefined) === (client === undefined)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "pass exactly one of url and client");
    }
    if (url !== undefined && (typeof url !== "string" || url === "")) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "url must be a non-empty string");
    }
    if (client !== undefined && !isClient(client)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "client must be an ioredis Redis or Cluster client");
    }
    if (typeof keyPrefix !== "string" || /[{}]/.test(keyPrefix)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "keyPrefix must be a string without '{' or '}'");
    }
    this.timeoutMs = positiveInteger("timeoutMs", timeoutMs);
    this.chunkSize = positiveInteger(
      "chunkSize",
      options.chunkSize ?? DEFAULT_REDIS_CHUNK_SIZE,
      64 * 1024 * 1024,
    );
    this.maxEntryBytes = positiveInteger(
      "maxEntryBytes",
      options.maxEntryBytes ?? DEFAULT_REDIS_MAX_ENTRY_BYTES,
    );
    this.maxBytes =
      options.maxBytes === undefined ? undefined : positiveInteger("maxBytes", options.maxBytes);
    const lowWater = options.lowWaterBytes ?? Math.floor((this.maxBytes ?? 0) * 0.9);
    if (!Number.isSafeInteger(lowWater) || lowWater < 0 || lowWater > (this.maxBytes ?? 0)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "lowWaterBytes must be an integer between 0 and maxBytes");
    }
    this.#lowWaterBytes = lowWater;
    this.#pruneEvery = positiveInteger("pruneEvery", options.pruneEvery ?? 100);
    if (options.onError !== undefined && typeof options.onError !== "function") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "onError must be a function");
    }
    this.#onError = options.onError;
    this.keyPrefix = keyPrefix;

    if (client !== undefined) {
      const clientOptions = client.options as
        | { keyPrefix?: unknown; redisOptions?: { keyPrefix?: unknown } }
        | undefined;
      const clientPrefix = clientOptions?.keyPrefix ?? clientOptions?.redisOptions?.keyPrefix;
      if (typeof clientPrefix === "string" && clientPrefix !== "") {
        throw new BlobError("ERR_INVALID_ARGUMENT", "the client must not have a keyPrefix; use keyPrefix");
      }
      this.#client = client;
      this.#owned = false;
    } else {
      this.#client = new Redis(url as string, {
        ...redisClientOptions(this.timeoutMs),
        ...options.redisOptions,
      });
      this.#owned = true;
    }
    this.#firstReady = new Promise<void>((resolve) => {
      this.#resolveFirstReady = resolve;
    });
    this.#ready = this.#client.status === "ready";
    if (this.#ready) this.#resolveFirstReady();
    this.#onClientReady = () => {
      this.#ready = true;
      this.#resolveFirstReady();
    };
    this.#onClientError = (error: Error) => {
      this.#degraded = true;
      this.#report(
        new BlobError("ERR_CACHE", `redis cache connection error: ${error.message}`, { cause: error }),
      );
    };
    this.#client.on("ready", this.#onClientReady);
    this.#client.on("error", this.#onClientError);
  }

  /**
   * Creates a cache and waits (at most `timeoutMs`, or until `signal` aborts) for its client to be ready.
   * Never rejects because Redis is unreachable: operations then fail with `ERR_CACHE` until it is back.
   */
  static async open(options: RedisCacheOptions & CacheOptions): Promise<RedisCache> {
    const cache = new RedisCache(options);
    try {
      await cache.#waitReady(options.signal);
    } catch (error) {
      await cache.close();
      throw error;
    }
    return cache;
  }

  /** The ioredis client (created from `url`, or the one passed in). */
  get client(): RedisClient {
    return this.#client;
  }

  /** True after a backend failure, until the next successful operation. */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** The Redis keys of `key`'s entry header and its hash tag (chunk keys are `<header>:<generation hex>:<index>`). */
  entryKeys(key: string): EntryKeys {
    if (typeof key !== "string") throw new BlobError("ERR_INVALID_ARGUMENT", "cache keys must be strings");
    return entryKeys(this.keyPrefix, key);
  }

  /** Returns the value, or `undefined` on a miss (absent, expired, damaged). Rejects with `ERR_CACHE` when Redis fails. */
  async get(key: string, options: CacheOptions = {}): Promise<Uint8Array | undefined> {
    const { signal } = options;
    const { header } = await this.#enter(key, signal);
    try {
      const raw = await this.#call(() => this.#client.getBuffer(header), signal);
      if (raw === null) return this.#ok(undefined);
      const decoded = decodeHeader(raw);
      if (decoded === undefined) return this.#ok(await this.#discardDamaged(key, header, raw, signal));
      if (decoded.kind === "inline") return this.#ok(copyOut(decoded.value));
      const out = new Uint8Array(decoded.length);
      const keys = chunkKeys(header, decoded.generation, decoded.chunks);
      let intact = true;
      await inWindow(decoded.chunks, WINDOW, async (index) => {
        const data = await this.#readChunk(keys, decoded, index, signal);
        if (data === undefined) intact = false;
        else out.set(data, index * decoded.chunkSize);
      });
      if (!intact) return this.#ok(await this.#discardDamaged(key, header, raw, signal));
      return this.#ok(out);
    } catch (error) {
      throw this.#fail("get", key, error, signal);
    }
  }

  /**
   * Stores `value` under `key`, replacing any previous value and TTL. Nothing is visible until the whole
   * value is stored. A value larger than `maxEntryBytes` is not stored (the previous value is removed).
   */
  async set(key: string, value: Uint8Array, options: CacheSetOptions = {}): Promise<void> {
    const { signal } = options;
    const { header } = await this.#enter(key, signal);
    if (!(value instanceof Uint8Array)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "cache values must be Uint8Arrays", { subject: key });
    }
    const ttl = this.#ttl(key, options.ttlMs);
    try {
      if (value.byteLength > this.maxEntryBytes) {
        await this.#commit(header, undefined, [], 0, signal);
        return this.#ok(undefined);
      }
      const generation = newGeneration();
      if (value.byteLength <= this.chunkSize) {
        await this.#commit(header, encodeInlineHeader(generation, value), [], ttl, signal);
      } else {
        const keys = chunkKeys(header, generation, Math.ceil(value.byteLength / this.chunkSize));
        try {
          await inWindow(keys.length, WINDOW, (index) => {
            const start = index * this.chunkSize;
            const data = value.subarray(start, start + this.chunkSize);
            return this.#writeChunk(keys[index]!, generation, index, data, signal);
          });
          await this.#commit(
            header,
            encodeChunkedHeader(generation, value.byteLength, this.chunkSize),
            keys,
            ttl,
            signal,
          );
        } catch (error) {
          this.#dropChunks(keys);
          throw error;
        }
      }
      this.#ok(undefined);
    } catch (error) {
      throw this.#fail("set", key, error, signal);
    }
    this.#afterWrite();
  }

  /**
   * Stores a streamed value: chunks are written as the stream delivers them (at most about two chunks held in
   * memory) and the value becomes visible under `key` only once the stream has completed. A stream that
   * errors rejects with its error and stores nothing; a value growing beyond `maxEntryBytes` is not stored
   * (the stream is cancelled and the previous value removed).
   */
  async setStream(
    key: string,
    value: ReadableStream<Uint8Array>,
    options: CacheSetOptions = {},
  ): Promise<void> {
    const { signal } = options;
    const { header } = await this.#enter(key, signal);
    if (value === null || typeof value !== "object" || typeof value.getReader !== "function") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "setStream needs a ReadableStream", { subject: key });
    }
    const ttl = this.#ttl(key, options.ttlMs);
    const reader = value.getReader();
    const generation = newGeneration();
    const keys: string[] = [];
    const writes = new Set<Promise<void>>();
    let failure: unknown;
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let total = 0;
    let finished = false;
    const take = (size: number): Uint8Array => {
      const out = new Uint8Array(size);
      let at = 0;
      const rest: Uint8Array[] = [];
      for (const part of pending) {
        if (at < size) {
          const n = Math.min(size - at, part.byteLength);
          out.set(part.subarray(0, n), at);
          at += n;
          if (n < part.byteLength) rest.push(part.subarray(n));
        } else rest.push(part);
      }
      pending = rest;
      pendingBytes -= size;
      return out;
    };
    const flush = async (size: number): Promise<void> => {
      const index = keys.length;
      const chunkKey = `${header}:${Buffer.from(generation).toString("hex")}:${index}`;
      keys.push(chunkKey);
      const write: Promise<void> = this.#writeChunk(chunkKey, generation, index, take(size), signal).then(
        () => void writes.delete(write),
        (error: unknown) => {
          writes.delete(write);
          failure ??= error;
        },
      );
      writes.add(write);
      if (writes.size >= 2) await Promise.race(writes);
      if (failure !== undefined) throw failure;
    };
    try {
      try {
        for (;;) {
          throwIfAborted(signal);
          let step: ReadableStreamReadResult<Uint8Array>;
          try {
            step = await reader.read();
          } catch (error) {
            throw new SourceFailure(error);
          }
          if (step.done) break;
          const chunk = step.value;
          if (!(chunk instanceof Uint8Array)) {
            throw new BlobError("ERR_INVALID_ARGUMENT", "setStream chunks must be Uint8Arrays", {
              subject: key,
            });
          }
          total += chunk.byteLength;
          if (total > this.maxEntryBytes) {
            await reader.cancel().catch(() => undefined);
            finished = true;
            await Promise.all(writes);
            this.#dropChunks(keys);
            await this.#commit(header, undefined, [], 0, signal);
            return this.#ok(undefined);
          }
          pending.push(new Uint8Array(chunk)); // a copy: the producer may reuse its buffer
          pendingBytes += chunk.byteLength;
          while (pendingBytes > this.chunkSize) await flush(this.chunkSize);
        }
        finished = true;
        if (keys.length === 0) {
          await this.#commit(header, encodeInlineHeader(generation, take(pendingBytes)), [], ttl, signal);
        } else {
          if (pendingBytes > 0) await flush(pendingBytes);
          await Promise.all(writes);
          if (failure !== undefined) throw failure;
          await this.#commit(
            header,
            encodeChunkedHeader(generation, total, this.chunkSize),
            keys,
            ttl,
            signal,
          );
        }
      } catch (error) {
        if (!finished) await reader.cancel(error).catch(() => undefined);
        await Promise.all(writes);
        this.#dropChunks(keys);
        throw error;
      } finally {
        reader.releaseLock();
      }
      this.#ok(undefined);
    } catch (error) {
      if (error instanceof SourceFailure) throw error.error;
      throw this.#fail("setStream", key, error, signal);
    }
    this.#afterWrite();
  }

  /**
   * Streams a value; `undefined` on a miss. The header is read and every chunk's presence and size checked before
   * returning; each chunk is verified (generation, index, length, CRC-32) before it is delivered. A chunk that
   * vanishes or is damaged meanwhile makes the stream error with `ERR_INTEGRITY` (the entry is removed); a
   * Redis failure with `ERR_CACHE`. `signal` also aborts the stream.
   */
  async getStream(key: string, options: CacheOptions = {}): Promise<ReadableStream<Uint8Array> | undefined> {
    const { signal } = options;
    const { header } = await this.#enter(key, signal);
    let decoded: Header | undefined;
    let raw: Buffer | null;
    let keys: string[] = [];
    try {
      raw = await this.#call(() => this.#client.getBuffer(header), signal);
      if (raw === null) return this.#ok(undefined);
      decoded = decodeHeader(raw);
      if (decoded === undefined) return this.#ok(await this.#discardDamaged(key, header, raw, signal));
      if (decoded.kind === "chunked") {
        keys = chunkKeys(header, decoded.generation, decoded.chunks);
        if (!(await this.#chunkSizesMatch(keys, decoded, signal))) {
          return this.#ok(await this.#discardDamaged(key, header, raw, signal));
        }
      }
      this.#ok(undefined);
    } catch (error) {
      throw this.#fail("getStream", key, error, signal);
    }
    if (decoded.kind === "inline") {
      const value = copyOut(decoded.value);
      return new ReadableStream<Uint8Array>({
        pull: (controller) => {
          if (signal?.aborted) return controller.error(signal.reason);
          if (value.byteLength > 0) controller.enqueue(value);
          controller.close();
        },
      });
    }
    const entry = decoded;
    const rawHeader = raw;
    let index = 0;
    let ahead: Promise<Uint8Array | undefined> | undefined;
    const fetch = (i: number): Promise<Uint8Array | undefined> => {
      const promise = this.#readChunk(keys, entry, i, signal);
      promise.catch(() => undefined); // read-ahead may be abandoned; its failure surfaces when awaited
      return promise;
    };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          throwIfAborted(signal);
          if (this.#closed) throw new BlobError("ERR_CLOSED", "cache is closed");
          const current = ahead ?? fetch(index);
          ahead = index + 1 < entry.chunks ? fetch(index + 1) : undefined;
          const data = await current;
          if (data === undefined) {
            ahead = undefined;
            await this.#discardDamaged(key, header, rawHeader, signal);
            throw new BlobError("ERR_INTEGRITY", "redis cache entry changed or is damaged", { subject: key });
          }
          controller.enqueue(data);
          if (++index === entry.chunks) controller.close();
        } catch (error) {
          ahead = undefined;
          controller.error(
            isBlobError(error) || error === signal?.reason
              ? error
              : this.#fail("getStream", key, error, signal),
          );
        }
      },
      cancel: () => {
        ahead = undefined;
      },
    });
  }

  /** Removes `key`; no error when it is absent. */
  async delete(key: string, options: CacheOptions = {}): Promise<void> {
    const { signal } = options;
    const { header } = await this.#enter(key, signal);
    try {
      await this.#commit(header, undefined, [], 0, signal);
      this.#ok(undefined);
    } catch (error) {
      throw this.#fail("delete", key, error, signal);
    }
  }

  /**
   * Whether a live entry exists under `key`: its header is intact, its stored size matches, and (for a chunked
   * value) all its chunks exist with the right sizes. Does not read the value, so damaged bytes inside a value
   * are only found by `get`/`getStream`.
   */
  async has(key: string, options: CacheOptions = {}): Promise<boolean> {
    const { signal } = options;
    const { header } = await this.#enter(key, signal);
    try {
      const [prefix, size] = await Promise.all([
        this.#call(() => this.#client.getrangeBuffer(header, 0, REDIS_CACHE_HEADER_BYTES - 1), signal),
        this.#call(() => this.#client.strlen(header), signal),
      ]);
      if (prefix.byteLength === 0 && size === 0) return this.#ok(false);
      const fixed = decodeFixedHeader(prefix);
      let intact = fixed !== undefined && fixed.storedBytes === size;
      if (intact && fixed?.kind === "chunked") {
        const keys = chunkKeys(header, fixed.generation, fixed.chunks);
        intact = await this.#chunkSizesMatch(keys, fixed, signal);
      }
      if (!intact) {
        await this.#discardDamaged(key, header, prefix, signal);
        return this.#ok(false);
      }
      return this.#ok(true);
    } catch (error) {
      throw this.#fail("has", key, error, signal);
    }
  }

  /**
   * Bytes held by this cache's keys (Redis' `MEMORY USAGE` of every key under `keyPrefix`: values, headers,
   * chunks, the chunks of writes in progress, and Redis' per-key overhead), counted by scanning the prefix on
   * every Redis node: O(keys). The scan does not touch the keys, so it does not disturb LRU order.
   */
  async sizeBytes(options: CacheOptions = {}): Promise<number> {
    const { signal } = options;
    this.#enterAny(signal);
    await this.#waitReady(signal);
    try {
      let total = 0;
      for (const entry of await this.#scan(signal)) total += entry.bytes;
      return this.#ok(total);
    } catch (error) {
      throw this.#fail("sizeBytes", undefined, error, signal);
    }
  }

  /**
   * Scans the prefix and evicts entries, least recently used first (Redis `OBJECT IDLETIME` of their header),
   * until at most `targetBytes` remain. Also deletes orphaned chunks (chunks without a TTL whose header no
   * longer references them, e.g. after Redis evicted the header alone), whatever the target. Resolves to the
   * bytes deleted.
   */
  async prune(targetBytes: number, options: CacheOptions = {}): Promise<number> {
    const { signal } = options;
    this.#enterAny(signal);
    if (typeof targetBytes !== "number" || !Number.isSafeInteger(targetBytes) || targetBytes < 0) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `targetBytes must be a non-negative integer, got ${targetBytes}`,
      );
    }
    await this.#waitReady(signal);
    try {
      return this.#ok(await this.#pruneTo(targetBytes, signal));
    } catch (error) {
      throw this.#fail("prune", undefined, error, signal);
    }
  }

  /**
   * Closes the cache: waits for a background prune, then closes the client if the cache created it (a client
   * passed in stays open; the cache's listeners are removed from it). Later operations reject with
   * `ERR_CLOSED`. Idempotent.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      await this.#pruning;
      this.#client.off("ready", this.#onClientReady);
      this.#resolveFirstReady();
      if (!this.#owned) {
        this.#client.off("error", this.#onClientError);
        return;
      }
      // Keep an error listener on the client being closed, so a late socket error is never unhandled.
      this.#client.on("error", () => undefined);
      this.#client.off("error", this.#onClientError);
      try {
        if (this.#client.status === "ready") {
          await Promise.race([
            this.#client.quit(),
            new Promise((resolve) => setTimeout(resolve, this.timeoutMs)),
          ]);
        }
      } catch {
        // Closing anyway.
      }
      if (this.#client.status !== "end") {
        const ended = new Promise<void>((resolve) => {
          this.#client.once("end", resolve);
          setTimeout(resolve, this.timeoutMs).unref();
        });
        this.#client.disconnect();
        await ended;
      }
    })();
    return this.#closing;
  }

  /** Same as {@link RedisCache.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #enterAny(signal: AbortSignal | undefined): void {
    throwIfAborted(signal);
    if (this.#closed) throw new BlobError("ERR_CLOSED", "cache is closed");
  }

  async #enter(key: string, signal: AbortSignal | undefined): Promise<EntryKeys> {
    this.#enterAny(signal);
    const keys = this.entryKeys(key);
    await this.#waitReady(signal);
    return keys;
  }

  /** Until the client has been ready once, waits for it (at most `timeoutMs`); afterwards never waits. */
  async #waitReady(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#ready) {
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      await Promise.race([
        this.#firstReady,
        new Promise<void>((resolve, reject) => {
          timer = setTimeout(resolve, this.timeoutMs);
          onAbort = () => reject(signal?.reason);
          signal?.addEventListener("abort", onAbort, { once: true });
        }),
      ]).finally(() => {
        this.#ready = true; // wait once: afterwards commands fail fast until Redis is back
        clearTimeout(timer);
        if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
      });
    }
    this.#enterAny(signal);
  }

  /** Runs one Redis round trip, bounded by `timeoutMs` and `signal`. */
  #call<T>(command: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    throwIfAborted(signal);
    let promise: Promise<T>;
    try {
      promise = command();
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        done();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new BlobError("ERR_CACHE", `redis did not answer within ${this.timeoutMs} ms`, {
            reason: "timeout",
          }),
        );
      }, this.timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      promise.then(
        (value) => {
          done();
          resolve(value);
        },
        (error: unknown) => {
          done();
          reject(error);
        },
      );
    });
  }

  /** Runs a Lua script (EVALSHA, loading it with EVAL when the server does not have it). */
  async #script(
    lua: LuaScript,
    keys: string[],
    args: (string | Buffer)[],
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    try {
      return await this.#call(() => this.#client.evalsha(lua.sha, keys.length, ...keys, ...args), signal);
    } catch (error) {
      if (!String((error as Error | null)?.message).startsWith("NOSCRIPT")) throw error;
      return await this.#call(() => this.#client.eval(lua.source, keys.length, ...keys, ...args), signal);
    }
  }

  /**
   * Switches `header` to `next` (undefined: deletes the entry) with `chunks` as its new generation, if no other
   * writer switched it in between; retries a few times, then gives up (a concurrent writer's value stands).
   */
  async #commit(
    header: string,
    next: Buffer | undefined,
    chunks: string[],
    ttl: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const current = await this.#call(
        () => this.#client.getrangeBuffer(header, 0, REDIS_CACHE_HEADER_BYTES - 1),
        signal,
      );
      throwIfAborted(signal);
      const fixed = decodeFixedHeader(current);
      const old = fixed?.kind === "chunked" ? chunkKeys(header, fixed.generation, fixed.chunks) : [];
      const result = await this.#script(
        COMMIT,
        [header, ...chunks, ...old],
        [current, String(chunks.length), next ?? "", String(ttl)],
        signal,
      );
      if (result === 1) return;
      if (result === -1) {
        throw new BlobError("ERR_CACHE", "redis evicted chunks of the value before it was committed", {
          reason: "evicted",
        });
      }
    }
    this.#dropChunks(chunks);
  }

  /** Deletes uncommitted chunks in the background (they expire anyway). */
  #dropChunks(keys: string[]): void {
    if (keys.length === 0 || this.#closed) return;
    this.#client.unlink(keys).catch(() => undefined);
  }

  async #writeChunk(
    key: string,
    generation: Uint8Array,
    index: number,
    data: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const stored = encodeChunk(generation, index, data);
    await this.#call(() => this.#client.set(key, stored, "PX", PENDING_TTL_MS), signal);
  }

  /** Whether every chunk exists with its expected stored size (one pipelined STRLEN per chunk). */
  async #chunkSizesMatch(
    keys: string[],
    header: { readonly length: number; readonly chunkSize: number },
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const sizes = await this.#call(() => {
      const pipeline = this.#client.pipeline();
      for (const key of keys) pipeline.strlen(key);
      return pipeline.exec();
    }, signal);
    return keys.every((_, i) => {
      const [error, size] = sizes?.[i] ?? [null, -1];
      if (error) throw error;
      return size === REDIS_CACHE_CHUNK_PREFIX_BYTES + chunkLength(header.length, header.chunkSize, i);
    });
  }

  /** Chunk `index` of a chunked entry, verified; `undefined` when it is missing, stale or damaged. */
  async #readChunk(
    keys: string[],
    header: Extract<Header, { kind: "chunked" }>,
    index: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array | undefined> {
    const stored = await this.#call(() => this.#client.getBuffer(keys[index]!), signal);
    if (stored === null) return undefined;
    return decodeChunk(stored, header.generation, index, chunkLength(header.length, header.chunkSize, index));
  }

  /** Reports a damaged entry and removes it, unless another writer replaced it since; resolves to a miss. */
  async #discardDamaged(
    key: string,
    header: string,
    raw: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<undefined> {
    this.#report(new BlobError("ERR_INTEGRITY", "redis cache entry is damaged; deleted", { subject: key }));
    const prefix = Buffer.from(
      raw.buffer,
      raw.byteOffset,
      Math.min(raw.byteLength, REDIS_CACHE_HEADER_BYTES),
    );
    const fixed = decodeFixedHeader(prefix);
    const chunks = fixed?.kind === "chunked" ? chunkKeys(header, fixed.generation, fixed.chunks) : [];
    try {
      // Delete the header only if it is still the damaged one; the chunks of its generation in any case.
      await this.#script(COMMIT, [header, ...chunks], [prefix, "0", "", "0"], signal);
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error;
      this.#fail("delete", key, error, signal); // reported; the read is a miss either way
    }
    return undefined;
  }

  #ttl(key: string, ttlMs: number | undefined): number {
    if (ttlMs === undefined) return 0;
    if (typeof ttlMs !== "number" || !(ttlMs > 0) || !Number.isFinite(ttlMs)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `ttlMs must be a positive number, got ${String(ttlMs)}`, {
        subject: key,
      });
    }
    return Math.max(1, Math.ceil(ttlMs));
  }

  /** Every Redis node holding keys: the masters of a Cluster, or the one server. */
  #nodes(): Redis[] {
    const client = this.#client;
    return client.isCluster ? (client as Cluster).nodes("master") : [client as Redis];
  }

  /** Lists this cache's keys by entry, with their sizes and the idle time of their header. */
  async #scan(signal: AbortSignal | undefined): Promise<ScannedEntry[]> {
    const entries = new Map<string, ScannedEntry>();
    const pattern = `${globEscape(this.keyPrefix)}{*`;
    for (const node of this.#nodes()) {
      let cursor = "0";
      do {
        const [next, keys] = await this.#call(
          () => node.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT),
          signal,
        );
        cursor = next;
        if (keys.length === 0) continue;
        // Neither OBJECT IDLETIME nor MEMORY USAGE touches a key: a scan must not reset the recency that
        // prune (and Redis' own allkeys-lru) orders by. STRLEN or GETRANGE would (Redis < 7.2 has no NO-TOUCH).
        const pipeline = node.pipeline();
        for (const k of keys) pipeline.object("IDLETIME", k).memory("USAGE", k, "SAMPLES", "0");
        const results = (await this.#call(() => pipeline.exec(), signal)) ?? [];
        for (const [i, k] of keys.entries()) {
          const tag = hashTagOf(k.slice(this.keyPrefix.length));
          if (tag === undefined) continue;
          const header = `${this.keyPrefix}{${tag}}`;
          let entry = entries.get(header);
          if (entry === undefined) {
            entry = { header, chunks: [], prefix: Buffer.alloc(0), bytes: 0, idle: Number.POSITIVE_INFINITY };
            entries.set(header, entry);
          }
          const [idleError, idle] = results[2 * i] ?? [null, 0];
          if (k === header) entry.idle = idleError === null ? Number(idle) || 0 : 0;
          else entry.chunks.push(k);
          const [error, size] = results[2 * i + 1] ?? [null, 0];
          if (error === null && typeof size === "number") entry.bytes += size;
        }
      } while (cursor !== "0");
    }
    return [...entries.values()];
  }

  async #pruneTo(targetBytes: number, signal: AbortSignal | undefined): Promise<number> {
    const entries = await this.#scan(signal);
    let remaining = entries.reduce((n, e) => n + e.bytes, 0);
    // Recency: the header's idle time (a hit reads the header; Redis' LRU clock ticks every second). Fails
    // under an LFU maxmemory-policy: order is then arbitrary. Entries without a header go first.
    for (let i = 0; i < entries.length; i += SCAN_COUNT) {
      const batch = entries.slice(i, i + SCAN_COUNT);
      // The idle times were read by the scan, before anything touched the keys.
      const prefixes = await Promise.all(
        batch.map((entry) =>
          this.#call(
            () => this.#client.getrangeBuffer(entry.header, 0, REDIS_CACHE_HEADER_BYTES - 1),
            signal,
          ),
        ),
      );
      for (const [j, prefix] of prefixes.entries()) {
        const entry = batch[j]!;
        entry.prefix = prefix;
        if (prefix.byteLength === 0) entry.idle = Number.POSITIVE_INFINITY;
      }
    }
    entries.sort((a, b) => b.idle - a.idle);
    let freed = 0;
    for (const entry of entries) {
      const evict = remaining > targetBytes;
      if (!evict && !hasOrphans(entry)) continue;
      const bytes = Number(
        await this.#script(
          EVICT,
          [entry.header, ...entry.chunks],
          [entry.prefix, evict ? "all" : "orphans"],
          signal,
        ),
      );
      freed += bytes;
      remaining -= evict ? entry.bytes : bytes;
    }
    return freed;
  }

  /** Counts a write; with a byte budget, starts a background check every `pruneEvery` writes. */
  #afterWrite(): void {
    if (this.maxBytes === undefined || ++this.#writesSinceCheck < this.#pruneEvery || this.#pruning) return;
    this.#writesSinceCheck = 0;
    const maxBytes = this.maxBytes;
    this.#pruning = (async () => {
      try {
        const entries = await this.#scan(undefined);
        const total = entries.reduce((n, e) => n + e.bytes, 0);
        if (total > maxBytes && !this.#closed) await this.#pruneTo(this.#lowWaterBytes, undefined);
      } catch (error) {
        this.#fail("prune", undefined, error, undefined);
      } finally {
        this.#pruning = undefined;
      }
    })();
  }

  /** Marks a success (clears `degraded`) and passes `value` through. */
  #ok<T>(value: T): T {
    this.#degraded = false;
    return value;
  }

  /** The error to throw for a failed operation: `signal.reason` and BlobErrors as they are, anything else as `ERR_CACHE`. */
  #fail(op: string, key: string | undefined, cause: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted && cause === signal.reason) return cause;
    if (isBlobError(cause) && cause.code !== "ERR_CACHE") return cause;
    this.#degraded = true;
    const message = isBlobError(cause) ? cause.message : String((cause as Error | null)?.message ?? cause);
    const error = new BlobError("ERR_CACHE", `redis cache ${op} failed: ${message}`, {
      cause,
      ...(key === undefined ? {} : { subject: key }),
    });
    return this.#report(error);
  }

  #report(error: BlobError): BlobError {
    if (this.#onError !== undefined) {
      try {
        this.#onError(error);
      } catch {
        // A failing listener must not break the cache.
      }
    }
    return error;
  }
}
