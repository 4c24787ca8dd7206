import { createHash, randomBytes } from "node:crypto";
import {
  close as closeCallback,
  closeSync,
  fstat as fstatCallback,
  fstatSync,
  futimes as futimesCallback,
  open as openCallback,
  openSync,
  read as readCallback,
  readSync,
  type Stats,
} from "node:fs";
import { type FileHandle, mkdir, open, readdir, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  BlobError,
  type Cache,
  type CacheOptions,
  type CacheSetOptions,
  throwIfAborted,
} from "@blobkit/core";

/** Bytes of the header in front of every entry's value (see the README for its layout). @public */
export const DISK_CACHE_HEADER_BYTES = 64;

/** "BKDC": blobkit disk cache. */
const MAGIC = Uint8Array.of(0x42, 0x4b, 0x44, 0x43);
const VERSION = 1;
const TEMP_PREFIX = ".tmp-";
const SHARD_NAME = /^[0-9a-f]{2}$/;
const ENTRY_NAME = /^[0-9a-f]{64}$/;
const LONE_SURROGATE = /\p{Surrogate}/u;
const STREAM_CHUNK = 256 * 1024;
/** Bytes read at once by `get`: entries up to this size take one read. */
const FIRST_READ = 64 * 1024;

/**
 * Descriptor-level file calls, synchronous or on the thread pool. A hit's open, read and close are each a
 * thread-pool round trip when asynchronous (tens of µs apiece on a busy machine) but a few µs when
 * synchronous and served from the page cache.
 */
interface EntryIo {
  open(path: string): number | Promise<number>;
  read(
    fd: number,
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
  ): number | Promise<number>;
  fstat(fd: number): Stats | Promise<Stats>;
  close(fd: number): void | Promise<void>;
}

const openAsync = promisify(openCallback);
const readAsync = promisify(readCallback);
const fstatAsync = promisify(fstatCallback);
const closeAsync = promisify(closeCallback);
const futimesAsync = promisify(futimesCallback);
const ASYNC_IO: EntryIo = {
  open: (path) => openAsync(path, "r"),
  read: async (fd, buffer, offset, length, position) =>
    (await readAsync(fd, buffer, offset, length, position)).bytesRead,
  fstat: (fd) => fstatAsync(fd),
  close: (fd) => closeAsync(fd),
};
const SYNC_IO: EntryIo = {
  open: (path) => openSync(path, "r"),
  read: (fd, buffer, offset, length, position) => readSync(fd, buffer, offset, length, position),
  fstat: (fd) => fstatSync(fd),
  close: (fd) => closeSync(fd),
};

/**
 * Reads a whole entry file (header + value): the first {@link FIRST_READ} bytes through `io`, the rest of a
 * larger entry on the thread pool. A file shorter than its size says comes back short (then damaged).
 */
async function readEntryFile(fd: number, io: EntryIo): Promise<{ bytes: Buffer; small: boolean }> {
  const first = Buffer.allocUnsafe(FIRST_READ);
  const head = await io.read(fd, first, 0, FIRST_READ, 0);
  if (head < FIRST_READ) return { bytes: first.subarray(0, head), small: true };
  const { size } = await io.fstat(fd);
  const bytes = Buffer.allocUnsafe(Math.max(size, head));
  first.copy(bytes, 0, 0, head);
  let at = head;
  while (at < bytes.byteLength) {
    const n = await ASYNC_IO.read(fd, bytes, at, bytes.byteLength - at, at);
    if (n === 0) break;
    at += n;
  }
  return { bytes: bytes.subarray(0, at), small: false };
}

/** The last recency stamp (ms) this process gave an entry; shared by every instance so stamps never tie. */
let lastStamp = 0;

/** Options of {@link DiskCache}. @public */
export interface DiskCacheOptions {
  /** The cache directory; created (mode 0700) when missing. Several caches/processes may share it. */
  dir: string;
  /**
   * Most bytes (entry files, header included) kept in `dir`; least-recently-used entries are evicted beyond
   * it. An entry larger than this is not stored. Default 1 GiB.
   */
  maxBytes?: number | undefined;
  /**
   * Pruning triggered by writes evicts down to this many bytes, so that a full cache is not rescanned on every
   * write. Default 90% of `maxBytes`; at most `maxBytes`.
   */
  lowWaterBytes?: number | undefined;
  /**
   * The cache rescans `dir` and prunes after this many writes by this process (and whenever
   * its own running estimate exceeds `maxBytes`), so writes by other processes are accounted for. Default 64.
   */
  pruneEvery?: number | undefined;
  /**
   * A hit refreshes the entry's recency (its mtime) unless this process did so (or wrote it) less than this
   * many ms ago: updating a file's times costs a journaled metadata write, which would dominate small hits.
   * LRU order is thus exact to within this interval. 0 refreshes on every hit. Default 1000.
   */
  touchIntervalMs?: number | undefined;
  /** Temp files older than this (ms) are leftovers of crashed writers and are removed on open and on prune. Default 60 000. */
  staleTempMs?: number | undefined;
  /** Clock in milliseconds used for TTLs (inject one in tests). Default `Date.now`. Recency (LRU) always uses the wall clock. */
  now?: (() => number) | undefined;
  /**
   * Read the first 64 KiB of an entry (all of a small one) with synchronous calls: from the page cache that
   * takes a few µs, where each thread-pool round trip costs tens. Set `false` when `dir` is on a slow or
   * network file system, where a synchronous read could stall the event loop. Default `true`.
   */
  syncReads?: boolean | undefined;
  /** Called with every backend failure (`ERR_CACHE`) and every damaged entry found (`ERR_INTEGRITY`). */
  onError?: ((error: BlobError) => void) | undefined;
}

interface Header {
  readonly length: number;
  /** Expiry on the cache's clock (ms), 0 for none. */
  readonly expiresAt: number;
  readonly digest: Buffer;
}

interface ScannedEntry {
  readonly path: string;
  readonly name: string;
  readonly size: number;
  readonly mtimeMs: number;
}

/** Wraps an error thrown by the caller's stream, so that it is rethrown as is and not as `ERR_CACHE`. */
class SourceFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function encodeHeader(length: number, expiresAt: number, digest: Uint8Array): Buffer {
  const header = Buffer.alloc(DISK_CACHE_HEADER_BYTES);
  header.set(MAGIC, 0);
  header[4] = VERSION;
  header.writeBigUInt64BE(BigInt(length), 8);
  header.writeDoubleBE(expiresAt, 16);
  header.set(digest, 24);
  createHash("sha256").update(header.subarray(0, 56)).digest().copy(header, 56, 0, 8);
  return header;
}

/** The header, or `undefined` when it is damaged. */
function decodeHeader(bytes: Uint8Array): Header | undefined {
  if (bytes.byteLength < DISK_CACHE_HEADER_BYTES) return undefined;
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, DISK_CACHE_HEADER_BYTES);
  for (let i = 0; i < MAGIC.length; i++) if (header[i] !== MAGIC[i]) return undefined;
  if (header[4] !== VERSION) return undefined;
  const check = createHash("sha256").update(header.subarray(0, 56)).digest();
  if (!check.subarray(0, 8).equals(header.subarray(56, 64))) return undefined;
  const length = header.readBigUInt64BE(8);
  const expiresAt = header.readDoubleBE(16);
  if (length > BigInt(Number.MAX_SAFE_INTEGER) || !Number.isFinite(expiresAt) || expiresAt < 0)
    return undefined;
  return { length: Number(length), expiresAt, digest: Buffer.from(header.subarray(24, 56)) };
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset, position + offset);
    if (bytesWritten <= 0) throw Object.assign(new Error("write made no progress"), { code: "EIO" });
    offset += bytesWritten;
  }
}

/**
 * A {@link Cache} on a local directory, safe to share between processes.
 *
 * - Layout: one file per key at `<dir>/<h[0:2]>/<h>`, h = hex SHA-256 of the key (UTF-8). Each file is a
 *   64-byte header (magic, version, value length, expiry, SHA-256 of the value, header checksum) then the
 *   value. A damaged or truncated entry reads as a miss and is deleted.
 * - Writes go to a uniquely named temp file in the entry's shard directory, are fsynced, then renamed over
 *   the entry: readers (in any process) see the old or the new value, never a mix. Temp files left by a
 *   crashed writer are removed on open (and on prune) once older than `staleTempMs`.
 * - LRU: a read sets the entry file's mtime to now (sub-millisecond, strictly increasing per process; skipped
 *   when this process did so less than `touchIntervalMs` ago);
 *   eviction deletes the oldest-mtime files first. Accounting rescans the directory (every `pruneEvery`
 *   writes, and whenever this process's estimate exceeds `maxBytes`; a total over `maxBytes` is then pruned
 *   down to `lowWaterBytes`), so it is right however many processes write: after each prune the directory
 *   held at most `maxBytes` as of its scan; between prunes other processes may add fewer than `pruneEvery`
 *   entries each (with `pruneEvery: 1`, at most the entry each writer has in flight).
 * - TTL: `supportsTtl` is true; an expired entry reads as a miss and is deleted.
 * - Failures (disk full, read-only or missing directory, permissions): `get`/`has`/`getStream` resolve to a
 *   miss, `set`/`setStream`/`delete`/`prune`/`sizeBytes` reject with `ERR_CACHE`; {@link DiskCache.degraded}
 *   turns true and `onError` is called.
 *
 * The constructor starts opening the directory in the background (operations wait for it); use
 * {@link DiskCache.open} to wait for it explicitly.
 *
 * @public
 */
export class DiskCache implements Cache {
  /** Always true: `ttlMs` is honoured. */
  readonly supportsTtl: boolean = true;
  /** The cache directory. */
  readonly dir: string;
  /** The byte budget (entry files, headers included). */
  readonly maxBytes: number;
  readonly #lowWaterBytes: number;
  readonly #pruneEvery: number;
  readonly #staleTempMs: number;
  readonly #touchIntervalMs: number;
  readonly #io: EntryIo;
  /** When this process last set each entry's mtime (wall-clock ms), by path; cleared when it grows large. */
  readonly #touched = new Map<string, number>();
  readonly #now: () => number;
  readonly #onError: ((error: BlobError) => void) | undefined;
  readonly #ready: Promise<void>;
  #closed = false;
  #degraded = false;
  /** This process's running estimate of the directory's size; corrected by every scan. */
  #estimate = 0;
  #writesSinceScan = 0;
  /** Renames committed by this process so far, and how many of them the latest finished scan had seen. */
  #writeSeq = 0;
  #scannedSeq = 0;
  #pruning: Promise<void> | undefined;
  /** Recency updates still in flight; scans and `close()` wait for them. */
  readonly #touches = new Set<Promise<void>>();
  /** Writes, deletes and prunes in flight (see {@link DiskCache.close}). */
  readonly #writes = new Set<Promise<void>>();

  /** Opens (creating if needed) a cache on `options.dir`; see {@link DiskCacheOptions}. */
  constructor(options: DiskCacheOptions) {
    const {
      dir,
      maxBytes = 1024 * 1024 * 1024,
      pruneEvery = 64,
      staleTempMs = 60_000,
      now = Date.now,
    } = options;
    if (typeof dir !== "string" || dir === "") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "dir must be a non-empty string");
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `maxBytes must be a non-negative integer, got ${maxBytes}`);
    }
    const { lowWaterBytes = Math.floor(maxBytes * 0.9) } = options;
    if (!Number.isSafeInteger(lowWaterBytes) || lowWaterBytes < 0 || lowWaterBytes > maxBytes) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `lowWaterBytes must be an integer between 0 and maxBytes, got ${lowWaterBytes}`,
      );
    }
    if (!Number.isSafeInteger(pruneEvery) || pruneEvery < 1) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `pruneEvery must be a positive integer, got ${pruneEvery}`);
    }
    if (typeof staleTempMs !== "number" || !(staleTempMs >= 0)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `staleTempMs must be a non-negative number`);
    }
    const { touchIntervalMs = 1000 } = options;
    if (typeof touchIntervalMs !== "number" || !(touchIntervalMs >= 0)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "touchIntervalMs must be a non-negative number");
    }
    if (typeof now !== "function") throw new BlobError("ERR_INVALID_ARGUMENT", "now must be a function");
    if (options.onError !== undefined && typeof options.onError !== "function") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "onError must be a function");
    }
    this.dir = dir;
    this.maxBytes = maxBytes;
    this.#lowWaterBytes = lowWaterBytes;
    this.#pruneEvery = pruneEvery;
    this.#staleTempMs = staleTempMs;
    this.#touchIntervalMs = touchIntervalMs;
    if (options.syncReads !== undefined && typeof options.syncReads !== "boolean") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "syncReads must be a boolean");
    }
    this.#io = options.syncReads === false ? ASYNC_IO : SYNC_IO;
    this.#now = now;
    this.#onError = options.onError;
    this.#ready = this.#init();
  }

  /**
   * Creates a cache and waits until its directory is open (created, stale temp files removed, size scanned).
   * Never rejects for I/O failures: check {@link DiskCache.degraded}.
   */
  static async open(options: DiskCacheOptions): Promise<DiskCache> {
    const cache = new DiskCache(options);
    await cache.#ready;
    return cache;
  }

  /** True after a backend failure, until the next successful write. */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** The path of the file that holds (or would hold) `key`'s entry. */
  entryPath(key: string): string {
    if (typeof key !== "string") throw new BlobError("ERR_INVALID_ARGUMENT", "cache keys must be strings");
    const hash = createHash("sha256").update(key, "utf8").digest("hex");
    return join(this.dir, hash.slice(0, 2), hash);
  }

  /** Returns the value, or `undefined` on a miss (absent, expired, damaged or unreadable). A hit refreshes recency. */
  async get(key: string, options: CacheOptions = {}): Promise<Uint8Array | undefined> {
    const path = await this.#enter(key, options.signal);
    const io = this.#io;
    let fd: number | undefined;
    let value: Uint8Array | undefined;
    try {
      fd = await io.open(path);
      const { bytes, small } = await readEntryFile(fd, io);
      const header = decodeHeader(bytes);
      const body = bytes.subarray(DISK_CACHE_HEADER_BYTES);
      if (
        header === undefined ||
        body.byteLength !== header.length ||
        !createHash("sha256").update(body).digest().equals(header.digest)
      ) {
        const stats = await io.fstat(fd);
        await io.close(fd);
        fd = undefined;
        await this.#discardDamaged(key, path, stats);
      } else if (this.#expired(header)) {
        const stats = await io.fstat(fd);
        await io.close(fd);
        fd = undefined;
        await this.#discard(path, stats);
      } else {
        value = small
          ? new Uint8Array(body) // a copy: do not pin the 64 KiB read buffer
          : new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
        // Recency for LRU: the read entry's mtime becomes now (the inode read, even if replaced meanwhile).
        // A time update is a journaled metadata write: it runs in the background (scans wait for it).
        const stamp = this.#touchStamp(path);
        const opened = fd;
        fd = undefined;
        if (stamp === undefined && io === SYNC_IO) {
          try {
            closeSync(opened);
          } catch {
            // The value was read and verified; a failing close does not turn the hit into a miss.
          }
        } else {
          this.#inBackground(
            (stamp === undefined ? Promise.resolve() : futimesAsync(opened, stamp, stamp))
              .catch(() => undefined)
              .then(() => ASYNC_IO.close(opened)),
          );
        }
      }
    } catch (error) {
      if (fd !== undefined) {
        try {
          await io.close(fd); // synchronous calls throw here rather than reject
        } catch {
          // already failing
        }
      }
      if (errnoCode(error) !== "ENOENT") this.#report(this.#error("get", key, error));
      value = undefined;
    }
    throwIfAborted(options.signal);
    return value;
  }

  /** Stores `value` under `key` atomically, replacing any previous value and TTL. */
  set(key: string, value: Uint8Array, options: CacheSetOptions = {}): Promise<void> {
    return this.#track(this.#set(key, value, options));
  }

  async #set(key: string, value: Uint8Array, options: CacheSetOptions): Promise<void> {
    const path = await this.#enter(key, options.signal);
    if (!(value instanceof Uint8Array)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "cache values must be Uint8Arrays", { subject: key });
    }
    const expiresAt = this.#expiry(key, options.ttlMs);
    if (DISK_CACHE_HEADER_BYTES + value.byteLength > this.maxBytes) {
      await this.#remove(key, path, "set");
      return;
    }
    const header = encodeHeader(value.byteLength, expiresAt, createHash("sha256").update(value).digest());
    await this.#commit(key, path, options.signal, async (handle) => {
      await writeAll(handle, header, 0);
      await writeAll(handle, value, DISK_CACHE_HEADER_BYTES);
      return true;
    });
  }

  /**
   * Stores a streamed value (larger than memory if need be): it is written to a temp file while hashed, and
   * becomes visible under `key` only once the stream has completed. A stream that errors rejects with its
   * error and stores nothing; a value growing beyond `maxBytes` is not stored (the stream is cancelled).
   */
  setStream(key: string, value: ReadableStream<Uint8Array>, options: CacheSetOptions = {}): Promise<void> {
    return this.#track(this.#setStream(key, value, options));
  }

  async #setStream(key: string, value: ReadableStream<Uint8Array>, options: CacheSetOptions): Promise<void> {
    const path = await this.#enter(key, options.signal);
    if (value === null || typeof value !== "object" || typeof value.getReader !== "function") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "setStream needs a ReadableStream", { subject: key });
    }
    const expiresAt = this.#expiry(key, options.ttlMs);
    const limit = this.maxBytes - DISK_CACHE_HEADER_BYTES;
    const reader = value.getReader();
    let finished = false;
    let tooLarge = false;
    try {
      await this.#commit(key, path, options.signal, async (handle) => {
        const hash = createHash("sha256");
        let length = 0;
        for (;;) {
          throwIfAborted(options.signal);
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await reader.read();
          } catch (error) {
            throw new SourceFailure(error);
          }
          if (chunk.done) break;
          if (!(chunk.value instanceof Uint8Array)) {
            throw new SourceFailure(
              new BlobError("ERR_INVALID_ARGUMENT", "stream chunks must be Uint8Arrays"),
            );
          }
          if (length + chunk.value.byteLength > limit) {
            tooLarge = true;
            return false;
          }
          hash.update(chunk.value);
          await writeAll(handle, chunk.value, DISK_CACHE_HEADER_BYTES + length);
          length += chunk.value.byteLength;
        }
        finished = true;
        await writeAll(handle, encodeHeader(length, expiresAt, hash.digest()), 0);
        return true;
      });
    } finally {
      if (!finished) await reader.cancel().catch(() => undefined);
      reader.releaseLock();
    }
    if (tooLarge) await this.#remove(key, path, "set");
  }

  /**
   * Streams a value; `undefined` on a miss. The value's hash is checked as it is read: if it does not match,
   * the stream errors with `ERR_INTEGRITY` before delivering the last chunk, and the entry is deleted. Read
   * the stream to its end or cancel it, so its file is closed.
   */
  async getStream(key: string, options: CacheOptions = {}): Promise<ReadableStream<Uint8Array> | undefined> {
    const path = await this.#enter(key, options.signal);
    let handle: FileHandle | undefined;
    let stats: Stats;
    let header: Header | undefined;
    try {
      handle = await open(path, "r");
      stats = await handle.stat();
      const head = new Uint8Array(DISK_CACHE_HEADER_BYTES);
      const { bytesRead } = await handle.read(head, 0, DISK_CACHE_HEADER_BYTES, 0);
      header = bytesRead === DISK_CACHE_HEADER_BYTES ? decodeHeader(head) : undefined;
      if (header === undefined || stats.size !== DISK_CACHE_HEADER_BYTES + header.length) {
        await handle.close();
        await this.#discardDamaged(key, path, stats);
        return undefined;
      }
      if (this.#expired(header)) {
        await handle.close();
        await this.#discard(path, stats);
        return undefined;
      }
      throwIfAborted(options.signal);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      if (options.signal?.aborted && error === options.signal.reason) throw error;
      if (errnoCode(error) !== "ENOENT") this.#report(this.#error("get", key, error));
      return undefined;
    }
    const stamp = this.#touchStamp(path);
    if (stamp !== undefined) await handle.utimes(stamp, stamp).catch(() => undefined);
    const file = handle;
    const expected = header;
    const end = DISK_CACHE_HEADER_BYTES + expected.length;
    const hash = createHash("sha256");
    let position = DISK_CACHE_HEADER_BYTES;
    let closed = false;
    const closeFile = async () => {
      if (closed) return;
      closed = true;
      await file.close().catch(() => undefined);
    };
    const signal = options.signal;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          throwIfAborted(signal);
          const chunk = new Uint8Array(Math.min(STREAM_CHUNK, end - position));
          let filled = 0;
          while (filled < chunk.byteLength) {
            const { bytesRead } = await file.read(
              chunk,
              filled,
              chunk.byteLength - filled,
              position + filled,
            );
            if (bytesRead === 0) break;
            filled += bytesRead;
          }
          position += filled;
          hash.update(chunk.subarray(0, filled));
          const last = position >= end || filled < chunk.byteLength;
          if (last) {
            await closeFile();
            if (position !== end || !hash.digest().equals(expected.digest)) {
              await this.#discardDamaged(key, path, stats);
              throw new BlobError("ERR_INTEGRITY", "disk cache entry is damaged", { subject: key });
            }
          }
          if (filled > 0) controller.enqueue(chunk.subarray(0, filled));
          if (last) controller.close();
        } catch (error) {
          await closeFile();
          controller.error(error);
        }
      },
      cancel: closeFile,
    });
  }

  /** Removes `key`; no error when it is absent. */
  delete(key: string, options: CacheOptions = {}): Promise<void> {
    return this.#track(
      (async () => {
        const path = await this.#enter(key, options.signal);
        await this.#remove(key, path, "delete");
      })(),
    );
  }

  /** Whether a live entry exists under `key` (checks its header and length, not its hash; not a use for LRU). */
  async has(key: string, options: CacheOptions = {}): Promise<boolean> {
    const path = await this.#enter(key, options.signal);
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, "r");
      const stats = await handle.stat();
      const head = new Uint8Array(DISK_CACHE_HEADER_BYTES);
      const { bytesRead } = await handle.read(head, 0, DISK_CACHE_HEADER_BYTES, 0);
      await handle.close();
      handle = undefined;
      const header = bytesRead === DISK_CACHE_HEADER_BYTES ? decodeHeader(head) : undefined;
      if (header === undefined || stats.size !== DISK_CACHE_HEADER_BYTES + header.length) {
        await this.#discardDamaged(key, path, stats);
        return false;
      }
      if (this.#expired(header)) {
        await this.#discard(path, stats);
        return false;
      }
      return true;
    } catch (error) {
      await handle?.close().catch(() => undefined);
      if (errnoCode(error) !== "ENOENT") this.#report(this.#error("has", key, error));
      return false;
    } finally {
      throwIfAborted(options.signal);
    }
  }

  /** Bytes of all entry files in `dir` (headers included), counted by scanning the directory. */
  async sizeBytes(options: CacheOptions = {}): Promise<number> {
    await this.#enterAny(options.signal);
    try {
      const { total } = await this.#scan(options.signal);
      this.#estimate = total;
      return total;
    } catch (error) {
      if (options.signal?.aborted && error === options.signal.reason) throw error;
      throw this.#report(this.#error("sizeBytes", undefined, error));
    }
  }

  /**
   * Rescans `dir` and deletes least-recently-used entries (oldest mtime first) until at most `targetBytes`
   * remain; resolves to the bytes this call deleted. Also removes stale temp files.
   */
  prune(targetBytes: number, options: CacheOptions = {}): Promise<number> {
    return this.#track(this.#prune(targetBytes, options));
  }

  async #prune(targetBytes: number, options: CacheOptions): Promise<number> {
    await this.#enterAny(options.signal);
    if (typeof targetBytes !== "number" || !Number.isSafeInteger(targetBytes) || targetBytes < 0) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `targetBytes must be a non-negative integer, got ${targetBytes}`,
      );
    }
    try {
      return await this.#pruneTo(targetBytes, options.signal);
    } catch (error) {
      if (options.signal?.aborted && error === options.signal.reason) throw error;
      throw this.#report(this.#error("prune", undefined, error));
    }
  }

  /**
   * Closes the cache: new operations reject with `ERR_CLOSED`, and it resolves only once the writes, deletes
   * and prunes under way have settled — a write that had not committed yet rejects with `ERR_CLOSED` and
   * leaves neither an entry nor a temp file. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#ready;
    await Promise.allSettled(this.#writes);
    await Promise.all(this.#touches);
  }

  /** Keeps `operation` in the set {@link DiskCache.close} waits for. */
  #track<T>(operation: Promise<T>): Promise<T> {
    const settled = operation.then(
      () => undefined,
      () => undefined,
    );
    this.#writes.add(settled);
    void settled.then(() => this.#writes.delete(settled));
    return operation;
  }

  /** Same as {@link DiskCache.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #init(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const scan = await this.#scan(undefined);
      this.#estimate = scan.total;
      if (scan.total > this.maxBytes) {
        await this.#evict(scan.entries, scan.total, this.#lowWaterBytes, undefined);
      }
    } catch (error) {
      this.#report(this.#error("open", undefined, error));
    }
  }

  async #enterAny(signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal);
    if (this.#closed) throw new BlobError("ERR_CLOSED", "cache is closed");
    await this.#ready;
    throwIfAborted(signal);
    if (this.#closed) throw new BlobError("ERR_CLOSED", "cache is closed");
  }

  /** Checks the state and the key; resolves to the key's entry path once the cache is open. */
  async #enter(key: string, signal: AbortSignal | undefined): Promise<string> {
    throwIfAborted(signal);
    if (this.#closed) throw new BlobError("ERR_CLOSED", "cache is closed");
    if (typeof key !== "string") throw new BlobError("ERR_INVALID_ARGUMENT", "cache keys must be strings");
    if (LONE_SURROGATE.test(key)) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        "cache keys must be well-formed Unicode (no lone surrogates)",
      );
    }
    await this.#enterAny(signal);
    return this.entryPath(key);
  }

  #expiry(key: string, ttlMs: number | undefined): number {
    if (ttlMs === undefined) return 0;
    if (typeof ttlMs !== "number" || !(ttlMs > 0) || !Number.isFinite(ttlMs)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `ttlMs must be a positive number, got ${String(ttlMs)}`, {
        subject: key,
      });
    }
    return Math.max(this.#now() + ttlMs, Number.MIN_VALUE);
  }

  #expired(header: Header): boolean {
    return header.expiresAt !== 0 && this.#now() >= header.expiresAt;
  }

  /** A wall-clock time in seconds for `utimes`, strictly increasing within this process (LRU order). */
  #stamp(): number {
    const ms = Math.max(performance.timeOrigin + performance.now(), lastStamp + 0.01);
    lastStamp = ms;
    return ms / 1000;
  }

  /** The stamp to set on a hit entry, or `undefined` when this process refreshed it recently enough. */
  #touchStamp(path: string): number | undefined {
    const stamp = this.#stamp();
    const last = this.#touched.get(path);
    if (last !== undefined && stamp * 1000 - last < this.#touchIntervalMs) return undefined;
    this.#remember(path, stamp);
    return stamp;
  }

  #remember(path: string, stamp: number): void {
    if (this.#touched.size >= 10_000) this.#touched.clear();
    this.#touched.set(path, stamp * 1000);
  }

  /** Tracks background recency work (scans and `close()` wait for it); its failures are ignored. */
  #inBackground(work: Promise<void>): void {
    const done: Promise<void> = work.catch(() => undefined).finally(() => this.#touches.delete(done));
    this.#touches.add(done);
  }

  /** Writes a temp file with `write`, fsyncs it and renames it over the entry, unless `write` returns false. */
  async #commit(
    key: string,
    path: string,
    signal: AbortSignal | undefined,
    write: (handle: FileHandle) => Promise<boolean>,
  ): Promise<void> {
    const shard = join(path, "..");
    const temp = join(shard, `${TEMP_PREFIX}${process.pid}-${randomBytes(8).toString("hex")}`);
    let handle: FileHandle | undefined;
    let renamed = false;
    let seq = 0;
    try {
      try {
        handle = await open(temp, "wx", 0o600);
      } catch (error) {
        if (errnoCode(error) !== "ENOENT") throw error;
        await mkdir(shard, { recursive: true, mode: 0o700 });
        handle = await open(temp, "wx", 0o600);
      }
      if (!(await write(handle))) return;
      const stamp = this.#stamp();
      await handle.utimes(stamp, stamp);
      await handle.sync();
      const { size } = await handle.stat();
      await handle.close();
      handle = undefined;
      throwIfAborted(signal);
      if (this.#closed) throw new BlobError("ERR_CLOSED", "cache is closed");
      const previous = await stat(path).catch(() => undefined);
      await rename(temp, path);
      renamed = true;
      this.#remember(path, stamp);
      this.#degraded = false;
      this.#estimate += size - (previous?.isFile() ? previous.size : 0);
      this.#writesSinceScan++;
      seq = ++this.#writeSeq;
    } catch (error) {
      if (error instanceof SourceFailure) throw error.error;
      if (signal?.aborted && error === signal.reason) throw error;
      if (error instanceof BlobError) throw error;
      throw this.#report(this.#error("set", key, error));
    } finally {
      await handle?.close().catch(() => undefined);
      if (!renamed) await unlink(temp).catch(() => undefined);
    }
    if (this.#estimate > this.maxBytes || this.#writesSinceScan >= this.#pruneEvery)
      await this.#autoPrune(seq);
  }

  /**
   * Prunes to `lowWaterBytes` with a scan that started after write number `seq` was renamed into place (so the
   * scan sees it). One prune at a time per process; failures are reported, not thrown.
   */
  async #autoPrune(seq: number): Promise<void> {
    while (this.#scannedSeq < seq) {
      if (this.#pruning === undefined) {
        this.#pruning = this.#pruneTo(this.#lowWaterBytes, undefined, this.maxBytes)
          .then(
            () => undefined,
            (error: unknown) => {
              this.#report(this.#error("prune", undefined, error));
            },
          )
          .finally(() => {
            this.#pruning = undefined;
          });
      }
      await this.#pruning;
    }
  }

  /** Rescans; evicts down to `targetBytes` if the total exceeds `threshold` (default: `targetBytes`). */
  async #pruneTo(
    targetBytes: number,
    signal: AbortSignal | undefined,
    threshold = targetBytes,
  ): Promise<number> {
    const seq = this.#writeSeq;
    try {
      const { entries, total } = await this.#scan(signal);
      return await this.#evict(entries, total, total > threshold ? targetBytes : total, signal);
    } finally {
      this.#scannedSeq = Math.max(this.#scannedSeq, seq);
    }
  }

  async #evict(
    entries: ScannedEntry[],
    total: number,
    targetBytes: number,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    entries.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let remaining = total;
    let freed = 0;
    for (const entry of entries) {
      if (remaining <= targetBytes) break;
      throwIfAborted(signal);
      try {
        await unlink(entry.path);
        freed += entry.size;
      } catch (error) {
        if (errnoCode(error) !== "ENOENT") throw error;
      }
      remaining -= entry.size;
    }
    this.#estimate = remaining;
    this.#writesSinceScan = 0;
    return freed;
  }

  /** Lists entry files with their sizes and recency; removes stale temp files on the way. */
  async #scan(signal: AbortSignal | undefined): Promise<{ entries: ScannedEntry[]; total: number }> {
    await Promise.all(this.#touches);
    const entries: ScannedEntry[] = [];
    let total = 0;
    let shards: string[];
    try {
      shards = await readdir(this.dir);
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return { entries, total };
      throw error;
    }
    const staleBefore = Date.now() - this.#staleTempMs;
    for (const shard of shards) {
      if (!SHARD_NAME.test(shard)) continue;
      throwIfAborted(signal);
      const shardDir = join(this.dir, shard);
      let names: string[];
      try {
        names = await readdir(shardDir);
      } catch (error) {
        const code = errnoCode(error);
        if (code === "ENOENT" || code === "ENOTDIR") continue;
        throw error;
      }
      await Promise.all(
        names.map(async (name) => {
          const isEntry = ENTRY_NAME.test(name);
          if (!isEntry && !name.startsWith(TEMP_PREFIX)) return;
          const path = join(shardDir, name);
          let stats: Stats;
          try {
            stats = await stat(path);
          } catch (error) {
            if (errnoCode(error) === "ENOENT") return;
            throw error;
          }
          if (!stats.isFile()) return;
          if (isEntry) {
            entries.push({ path, name, size: stats.size, mtimeMs: stats.mtimeMs });
            total += stats.size;
          } else if (stats.mtimeMs < staleBefore) {
            await unlink(path).catch(() => undefined);
          }
        }),
      );
    }
    return { entries, total };
  }

  /** Deletes `key`'s entry; failures other than absence reject with `ERR_CACHE`. */
  async #remove(key: string, path: string, op: string): Promise<void> {
    try {
      const stats = await stat(path);
      await unlink(path);
      this.#estimate = Math.max(0, this.#estimate - stats.size);
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return;
      throw this.#report(this.#error(op, key, error));
    }
  }

  async #discardDamaged(key: string, path: string, seen: Stats): Promise<void> {
    this.#report(new BlobError("ERR_INTEGRITY", "disk cache entry is damaged; deleted", { subject: key }));
    await this.#discard(path, seen);
  }

  /** Deletes the entry file read earlier, unless another writer has replaced it since. */
  async #discard(path: string, seen: Stats): Promise<void> {
    try {
      const current = await stat(path);
      if (current.ino === seen.ino && current.dev === seen.dev) await unlink(path);
    } catch {
      // Already gone, or unreachable: nothing to do.
    }
  }

  /** Marks the cache degraded and wraps a backend failure as `ERR_CACHE`. */
  #error(op: string, key: string | undefined, cause: unknown): BlobError {
    this.#degraded = true;
    const code = errnoCode(cause);
    return new BlobError("ERR_CACHE", `disk cache ${op} failed${code === undefined ? "" : ` (${code})`}`, {
      cause,
      ...(key === undefined ? {} : { subject: key }),
    });
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
