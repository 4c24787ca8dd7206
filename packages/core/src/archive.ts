/**
 * The lazy archive reader: metadata comes from the (small, fully validated) index held in memory, file
 * content is fetched from a {@link ByteSource} one range per file, decompressed and SHA-256 verified before
 * anyone sees it.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { pipeline, Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { type Cache, cacheKeys } from "./cache.ts";
import { sha256HexAsync } from "./digest.ts";
import { BlobError, isBlobError, throwIfAborted } from "./errors.ts";
import { type ExtractOptions, type ExtractResult, extractArchive } from "./extract.ts";
import type { ArchiveIndex } from "./format/archive-index.ts";
import { decodeIndex } from "./format/index-codec.ts";
import type { Compression, IndexEntry } from "./format/types.ts";
import { type Limits, resolveLimits } from "./limits.ts";
import { comparePaths, normalizePath } from "./paths.ts";
import { SingleFlight } from "./single-flight.ts";
import type { ByteSource, ReadOptions } from "./source.ts";
import { streamSource } from "./sources.ts";
import { createZstdDecompressTransform, zstdDecompress } from "./zstd.ts";

/** Default of {@link ArchiveOpenOptions.maxCachedFileSize}: 64 MiB. @public */
export const DEFAULT_MAX_CACHED_FILE_SIZE: number = 64 * 1024 * 1024;

/** What a failing cache operation was doing, passed to {@link ArchiveOpenOptions.onCacheError}. @public */
export interface CacheErrorContext {
  /** The cache method that failed. */
  readonly operation: "get" | "set" | "delete";
  /** The key concerned. */
  readonly key: string;
}

/** Options of {@link Archive.open}. @public */
export interface ArchiveOpenOptions {
  /** The index blob (decoded and validated here) or an already decoded {@link ArchiveIndex}. */
  index: Uint8Array | ArchiveIndex;
  /** Where the data blob's bytes come from. */
  source: ByteSource;
  /**
   * Optional file-content cache (keys `cacheKeys.file(sha256)`, shared across archives). Entries are
   * verified on every hit; a failing cache degrades to the source and never fails a read.
   */
  cache?: Cache | undefined;
  /** Limits applied to the index and to every read. */
  limits?: Partial<Limits> | undefined;
  /** Aborts opening. */
  signal?: AbortSignal | undefined;
  /** When true, {@link Archive.close} also closes `source`. Default false. */
  ownsSource?: boolean | undefined;
  /** Files larger than this are never put in (or read from) the content cache. Default 64 MiB. */
  maxCachedFileSize?: number | undefined;
  /** Called (never awaited) when a cache operation failed and was treated as a miss. */
  onCacheError?: ((error: unknown, context: CacheErrorContext) => void) | undefined;
}

/** Metadata of a file or (synthesized) directory, as returned by {@link Archive.stat}. @public */
export interface FileStat {
  /** Normalized archive path; `"."` for the root. */
  readonly path: string;
  /** Last path segment; `"."` for the root. */
  readonly name: string;
  /** Archives hold regular files only; directories are synthesized from paths. */
  readonly type: "file" | "directory";
  /** Uncompressed size in bytes (0 for directories). */
  readonly size: number;
  /** Stored (possibly compressed) size in bytes (0 for directories). */
  readonly storedSize: number;
  /** Permission bits (directories: 0o755). */
  readonly mode: number;
  /** Modification time, millisecond precision (directories: the Unix epoch). */
  readonly mtime: Date;
  /** Modification time in nanoseconds since the Unix epoch (directories: 0). */
  readonly mtimeNs: bigint;
  /** SHA-256 of the content, lowercase hex (`undefined` for directories). */
  readonly sha256: string | undefined;
  /** How the content is stored (`undefined` for directories). */
  readonly compression: Compression | undefined;
}

/** One child listed by {@link Archive.readDir}. @public */
export interface DirEntry {
  /** Name of the child (one path segment). */
  readonly name: string;
  /** `"file"` or a synthesized `"directory"`. */
  readonly type: "file" | "directory";
}

/** Totals returned by {@link Archive.dirStats}. @public */
export interface DirStats {
  /** Number of files in the subtree (1 when the path names a file). */
  readonly fileCount: number;
  /** Sum of uncompressed sizes. */
  readonly totalSize: number;
  /** Sum of stored sizes. */
  readonly storedSize: number;
}

/** Options of {@link Archive.readFile}. @public */
export interface ReadFileOptions extends ReadOptions {
  /** Decode the verified bytes as UTF-8 and return a string. */
  encoding?: "utf8" | undefined;
}

/**
 * The parts of an open archive the extractor needs.
 *
 * @internal
 */
export interface ArchiveInternals {
  readonly index: ArchiveIndex;
  readonly source: ByteSource;
  readonly limits: Limits;
  assertOpen(): void;
}

const DIRECTORY_MODE = 0o755;
const EPOCH = new Date(0);
const GLOB_META = /[*?[\]{}\\!()+@]/;

function integrityError(path: string, reason: string, message: string): BlobError {
  return new BlobError("ERR_INTEGRITY", `${path}: ${message}`, { reason, subject: path });
}

/**
 * Checks that fully decoded content is exactly the entry's size and SHA-256.
 *
 * @internal
 */
export async function verifyContent(content: Uint8Array, entry: IndexEntry): Promise<void> {
  if (content.byteLength !== entry.size) {
    throw integrityError(
      entry.path,
      "size-mismatch",
      `content is ${content.byteLength} bytes, index says ${entry.size}`,
    );
  }
  if ((await sha256HexAsync(content)) !== entry.sha256) {
    throw integrityError(entry.path, "hash-mismatch", "SHA-256 of the content does not match the index");
  }
}

/**
 * Throws `ERR_LIMIT_EXCEEDED` when an entry is larger than `limits.maxFileSize`, before anything is fetched.
 *
 * @internal
 */
export function assertWithinFileLimit(entry: IndexEntry, limits: Limits): void {
  if (entry.size > limits.maxFileSize || entry.storedSize > limits.maxFileSize) {
    throw new BlobError(
      "ERR_LIMIT_EXCEEDED",
      `${entry.path}: ${Math.max(entry.size, entry.storedSize)} bytes exceeds maxFileSize ${limits.maxFileSize}`,
      { reason: "max-file-size", subject: entry.path },
    );
  }
}

/**
 * Decodes one entry's complete stored bytes and verifies the result. Stored bytes of a raw entry are
 * returned as is (no copy).
 *
 * @internal
 */
export async function decodeStored(
  stored: Uint8Array,
  entry: IndexEntry,
  limits: Limits,
): Promise<Uint8Array> {
  if (stored.byteLength !== entry.storedSize) {
    throw integrityError(
      entry.path,
      "short-read",
      `source returned ${stored.byteLength} stored bytes, expected ${entry.storedSize}`,
    );
  }
  const content =
    entry.compression === "zstd"
      ? await zstdDecompress(stored, entry.size, {
          maxDecoderMemory: limits.maxDecoderMemory,
          subject: entry.path,
        })
      : stored;
  await verifyContent(content, entry);
  return content;
}

function statOfEntry(entry: IndexEntry): FileStat {
  const slash = entry.path.lastIndexOf("/");
  return {
    path: entry.path,
    name: entry.path.slice(slash + 1),
    type: "file",
    size: entry.size,
    storedSize: entry.storedSize,
    mode: entry.mode,
    mtime: new Date(Number(entry.mtimeNs / 1_000_000n)),
    mtimeNs: entry.mtimeNs,
    sha256: entry.sha256,
    compression: entry.compression,
  };
}

function statOfDirectory(path: string): FileStat {
  const slash = path.lastIndexOf("/");
  return {
    path,
    name: path === "." ? "." : path.slice(slash + 1),
    type: "directory",
    size: 0,
    storedSize: 0,
    mode: DIRECTORY_MODE,
    mtime: EPOCH,
    mtimeNs: 0n,
    sha256: undefined,
    compression: undefined,
  };
}

/**
 * A lazily read archive: an index in memory plus a {@link ByteSource} for the data blob.
 *
 * Everything it returns as file content is verified (exact size and SHA-256) first — except the chunks of
 * {@link Archive.createReadStream}, which are verified when the stream ends (see there). Directories are
 * synthesized from paths (the format stores regular files only).
 *
 * @example
 * ```ts
 * await using archive = await Archive.open({ index, source: new MemorySource(data) });
 * const text = await archive.readFile("config/app.json", { encoding: "utf8" });
 * ```
 *
 * @public
 */
export class Archive {
  /** The decoded, validated index. */
  readonly index: ArchiveIndex;
  /** The data source. */
  readonly source: ByteSource;
  /** Effective limits. */
  readonly limits: Limits;

  readonly #cache: Cache | undefined;
  readonly #ownsSource: boolean;
  readonly #maxCachedFileSize: number;
  readonly #onCacheError: ((error: unknown, context: CacheErrorContext) => void) | undefined;
  readonly #flights = new SingleFlight<string, Uint8Array>();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(index: ArchiveIndex, source: ByteSource, limits: Limits, options: ArchiveOpenOptions) {
    this.index = index;
    this.source = source;
    this.limits = limits;
    this.#cache = options.cache;
    this.#ownsSource = options.ownsSource === true;
    this.#maxCachedFileSize = options.maxCachedFileSize ?? DEFAULT_MAX_CACHED_FILE_SIZE;
    this.#onCacheError = options.onCacheError;
  }

  /**
   * Opens an archive. Index bytes are decoded and fully validated (`ERR_INVALID_INDEX`, `ERR_UNSUPPORTED`,
   * `ERR_LIMIT_EXCEEDED`). The source must hold at least `index.dataSize` bytes, otherwise `ERR_INTEGRITY`
   * with reason `"data-too-small"` (the data blob, not the index, is what is wrong); extra trailing bytes are
   * tolerated. If opening fails and `ownsSource` is set, the source is closed.
   */
  static async open(options: ArchiveOpenOptions): Promise<Archive> {
    const { source, signal } = options;
    try {
      throwIfAborted(signal);
      const limits = resolveLimits(options.limits);
      const index =
        options.index instanceof Uint8Array ? decodeIndex(options.index, { limits }) : options.index;
      const maxCached = options.maxCachedFileSize;
      if (maxCached !== undefined && (!Number.isSafeInteger(maxCached) || maxCached < 0)) {
        throw new BlobError("ERR_INVALID_ARGUMENT", "maxCachedFileSize must be a non-negative integer");
      }
      const size = await source.size({ signal });
      throwIfAborted(signal);
      if (size < index.dataSize) {
        throw new BlobError(
          "ERR_INTEGRITY",
          `data source holds ${size} bytes but the index describes ${index.dataSize}`,
          { reason: "data-too-small", subject: source.id },
        );
      }
      return new Archive(index, source, limits, options);
    } catch (error) {
      if (options.ownsSource === true) await source.close().catch(() => {});
      throw error;
    }
  }

  /** Number of files. */
  get fileCount(): number {
    return this.index.length;
  }

  /** Size of the data blob according to the index. */
  get dataSize(): number {
    return this.index.dataSize;
  }

  /** Digest (`sha256:<hex>`) of the index blob. */
  get digest(): string {
    return this.index.digest();
  }

  /** Whether {@link Archive.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  #assertOpen(): void {
    if (this.#closed) throw new BlobError("ERR_CLOSED", "archive is closed");
  }

  /** Normalizes a user path; root is `"."`. */
  #normalize(path: string): string {
    if (typeof path !== "string") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "path must be a string");
    }
    return normalizePath(path);
  }

  /** True when some file lives under `dir/` (or, for the root, when any file exists). */
  #isDirectory(path: string): boolean {
    if (path === ".") return true;
    const [start, end] = this.index.prefixRange(`${path}/`);
    return end > start;
  }

  /** The rank of the file at `path` or a typed error. */
  #fileRank(path: string): number {
    if (path === ".") {
      throw new BlobError("ERR_IS_DIRECTORY", "the archive root is a directory", {
        subject: path,
      });
    }
    const rank = this.index.find(path);
    if (rank >= 0) return rank;
    if (this.#isDirectory(path)) {
      throw new BlobError("ERR_IS_DIRECTORY", `${path} is a directory`, { subject: path });
    }
    throw new BlobError("ERR_NOT_FOUND", `no such file: ${path}`, { subject: path });
  }

  /**
   * Metadata of a file or synthesized directory. `""`, `"/"` and `"."` mean the root, which always exists.
   * Missing → `ERR_NOT_FOUND`; invalid path → `ERR_INVALID_PATH`.
   */
  async stat(path: string): Promise<FileStat> {
    this.#assertOpen();
    const normalized = this.#normalize(path);
    if (normalized === ".") return statOfDirectory(".");
    const rank = this.index.find(normalized);
    if (rank >= 0) return statOfEntry(this.index.entry(rank));
    if (this.#isDirectory(normalized)) return statOfDirectory(normalized);
    throw new BlobError("ERR_NOT_FOUND", `no such file or directory: ${normalized}`, {
      subject: normalized,
    });
  }

  /** Whether a file or directory exists at `path`. Invalid paths simply do not exist. */
  async exists(path: string): Promise<boolean> {
    this.#assertOpen();
    let normalized: string;
    try {
      normalized = this.#normalize(path);
    } catch (error) {
      if (isBlobError(error, "ERR_INVALID_PATH")) return false;
      throw error;
    }
    return this.index.find(normalized) >= 0 || this.#isDirectory(normalized);
  }

  /**
   * Reads a whole file and returns it only after its size and SHA-256 were verified (`ERR_INTEGRITY`
   * otherwise; a corrupt zstd frame is `ERR_DECOMPRESSION`). With a content cache, hits are verified too (a
   * corrupt entry is deleted and the file re-fetched) and concurrent reads of the same content share one
   * fetch. Directory → `ERR_IS_DIRECTORY`; missing → `ERR_NOT_FOUND`; larger than `limits.maxFileSize` →
   * `ERR_LIMIT_EXCEEDED` (nothing fetched).
   */
  readFile(path: string, options: ReadFileOptions & { encoding: "utf8" }): Promise<string>;
  readFile(path: string, options?: ReadFileOptions): Promise<Uint8Array>;
  async readFile(path: string, options: ReadFileOptions = {}): Promise<Uint8Array | string> {
    this.#assertOpen();
    const { signal, encoding } = options;
    if (encoding !== undefined && encoding !== "utf8") {
      throw new BlobError("ERR_INVALID_ARGUMENT", `unsupported encoding ${JSON.stringify(encoding)}`);
    }
    throwIfAborted(signal);
    const normalized = this.#normalize(path);
    const entry = this.index.entry(this.#fileRank(normalized));
    assertWithinFileLimit(entry, this.limits);
    // Keyed by hash and size: a hostile index may give two entries one hash but different sizes.
    const { value, shared } = await this.#flights.run(
      `${entry.sha256}:${entry.size}`,
      (flightSignal) => this.#loadFile(entry, flightSignal),
      signal,
    );
    // A shared result is copied so one caller mutating its bytes cannot affect another.
    const bytes = shared ? new Uint8Array(value) : value; // (Buffer#slice would not copy)
    if (options.encoding === "utf8") return new TextDecoder("utf-8").decode(bytes);
    return bytes;
  }

  #cacheable(entry: IndexEntry): boolean {
    return this.#cache !== undefined && entry.size <= this.#maxCachedFileSize;
  }

  /** Verified content of `entry`: from the cache when it holds a good copy, else from the source. */
  async #loadFile(entry: IndexEntry, signal: AbortSignal): Promise<Uint8Array> {
    const key = cacheKeys.file(entry.sha256);
    const cacheable = this.#cacheable(entry);
    if (cacheable) {
      const cached = await this.#verifiedCacheHit(entry, key, signal);
      if (cached !== undefined) return cached;
    }
    const stored =
      entry.storedSize === 0
        ? new Uint8Array(0)
        : await this.source.read(entry.offset, entry.storedSize, { signal });
    throwIfAborted(signal);
    const content = await decodeStored(stored, entry, this.limits);
    // Not awaited: a slow cache must not delay the read (cache failures are reported, never thrown).
    if (cacheable) void this.#cacheSet(key, content);
    return content;
  }

  /** A cache hit only if its size and SHA-256 match `entry`; a damaged entry is deleted. */
  async #verifiedCacheHit(
    entry: IndexEntry,
    key: string,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array | undefined> {
    const cached = await this.#cacheGet(key, signal);
    if (cached === undefined) return undefined;
    try {
      await verifyContent(cached, entry);
      return cached;
    } catch {
      await this.#cacheDelete(key);
      return undefined;
    }
  }

  #reportCacheError(error: unknown, operation: CacheErrorContext["operation"], key: string): void {
    try {
      this.#onCacheError?.(error, { operation, key });
    } catch {
      // A throwing observer must not turn a cache problem into a read failure.
    }
  }

  async #cacheGet(key: string, signal: AbortSignal | undefined): Promise<Uint8Array | undefined> {
    try {
      const value = await this.#cache?.get(key, { signal });
      return value instanceof Uint8Array ? value : undefined;
    } catch (error) {
      throwIfAborted(signal);
      this.#reportCacheError(error, "get", key);
      return undefined;
    }
  }

  async #cacheSet(key: string, value: Uint8Array): Promise<void> {
    try {
      await this.#cache?.set(key, value);
    } catch (error) {
      this.#reportCacheError(error, "set", key);
    }
  }

  async #cacheDelete(key: string): Promise<void> {
    try {
      await this.#cache?.delete(key);
    } catch (error) {
      this.#reportCacheError(error, "delete", key);
    }
  }

  /**
   * Streams a file without buffering it whole: stored bytes come from the source (`streamSource`), are
   * decompressed on the fly and hashed. The hash and length are checked when the data ends; a mismatch
   * errors the stream (`ERR_INTEGRITY` / `ERR_DECOMPRESSION`). The last chunk is held back until that
   * check passes, so a consumer never sees a complete bad file followed by a clean close.
   *
   * **Earlier chunks are unverified until the stream closes successfully**: do not act on them (execute,
   * install, trust) before the end. Use {@link Archive.readFile} when the file fits in memory.
   *
   * A good content-cache entry is served from the cache; a miss is not written to the cache unless the file
   * is at most `maxCachedFileSize` and the stream completes verified.
   *
   * Lookup errors (`ERR_NOT_FOUND`, `ERR_IS_DIRECTORY`, `ERR_INVALID_PATH`, `ERR_LIMIT_EXCEEDED`,
   * `ERR_CLOSED`) are thrown synchronously; everything else errors the stream.
   */
  createReadStream(path: string, options: ReadOptions = {}): ReadableStream<Uint8Array> {
    this.#assertOpen();
    const { signal } = options;
    const normalized = this.#normalize(path);
    const entry = this.index.entry(this.#fileRank(normalized));
    assertWithinFileLimit(entry, this.limits);
    let iterator: AsyncIterator<Uint8Array> | undefined;
    let held: Uint8Array | undefined;
    const hash = createHash("sha256");
    let produced = 0;
    const cacheable = this.#cacheable(entry);
    let collected: Uint8Array[] | undefined = cacheable ? [] : undefined;
    const key = cacheKeys.file(entry.sha256);

    const start = async (): Promise<AsyncIterator<Uint8Array>> => {
      throwIfAborted(signal);
      this.#assertOpen();
      if (cacheable) {
        const cached = await this.#verifiedCacheHit(entry, key, signal);
        if (cached !== undefined) {
          collected = undefined; // already cached
          return (async function* () {
            yield cached;
          })();
        }
      }
      return this.#storedContentChunks(entry, signal);
    };

    const pullVerified = async (controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> => {
      iterator ??= await start();
      for (;;) {
        const { value, done } = await iterator.next();
        if (done) {
          throwIfAborted(signal);
          if (produced !== entry.size) {
            throw integrityError(
              normalized,
              "size-mismatch",
              `content is ${produced} bytes, index says ${entry.size}`,
            );
          }
          if (hash.digest("hex") !== entry.sha256) {
            throw integrityError(
              normalized,
              "hash-mismatch",
              "SHA-256 of the content does not match the index",
            );
          }
          if (held !== undefined) controller.enqueue(held);
          controller.close();
          if (collected !== undefined && entry.size > 0) {
            const whole = Buffer.concat(collected);
            collected.length = 0;
            void this.#cacheSet(key, new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength));
          }
          return;
        }
        if (value.byteLength === 0) continue;
        produced += value.byteLength;
        if (produced > entry.size) {
          throw integrityError(normalized, "size-mismatch", `content is longer than ${entry.size} bytes`);
        }
        hash.update(value);
        // A copy: the consumer owns `value` once enqueued and may change or transfer it.
        collected?.push(value.slice());
        const previous = held;
        held = value;
        if (previous !== undefined) {
          controller.enqueue(previous);
          return;
        }
      }
    };

    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            await pullVerified(controller);
          } catch (error) {
            // Release the underlying source stream / decoder before erroring the consumer's stream.
            await iterator?.return?.().catch(() => {});
            throw error;
          }
        },
        cancel: async () => {
          await iterator?.return?.();
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** Decoded (not yet verified) content of `entry`, streamed from the source. */
  async *#storedContentChunks(
    entry: IndexEntry,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    if (entry.storedSize === 0 && entry.compression === "none") return;
    const stored = Readable.fromWeb(
      streamSource(this.source, entry.offset, entry.storedSize, {
        signal,
      }) as NodeReadableStream<Uint8Array>,
    );
    let output: Readable = stored;
    if (entry.compression === "zstd") {
      const transform = createZstdDecompressTransform(entry.size, {
        maxDecoderMemory: this.limits.maxDecoderMemory,
        subject: entry.path,
      });
      output = pipeline(stored, transform, () => {});
    }
    try {
      for await (const chunk of output) {
        const buffer = chunk as Buffer;
        yield new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      }
    } finally {
      output.destroy();
      stored.destroy();
    }
  }

  /**
   * Immediate children of a directory, sorted by name in UTF-8 byte order, with subdirectories synthesized.
   * Cost is O(children · log n): each subdirectory is skipped with one range lookup.
   * A file → `ERR_NOT_DIRECTORY`; missing → `ERR_NOT_FOUND`; the root of an empty archive → `[]`.
   */
  async readDir(path: string): Promise<DirEntry[]> {
    this.#assertOpen();
    const normalized = this.#normalize(path);
    const prefix = normalized === "." ? "" : `${normalized}/`;
    const [start, end] = this.index.prefixRange(prefix);
    if (start >= end && normalized !== ".") {
      if (this.index.find(normalized) >= 0) {
        throw new BlobError("ERR_NOT_DIRECTORY", `${normalized} is a file`, { subject: normalized });
      }
      throw new BlobError("ERR_NOT_FOUND", `no such directory: ${normalized}`, { subject: normalized });
    }
    const children: DirEntry[] = [];
    let rank = start;
    while (rank < end) {
      const path = this.index.path(rank);
      const slash = path.indexOf("/", prefix.length);
      if (slash < 0) {
        children.push({ name: path.slice(prefix.length), type: "file" });
        rank++;
      } else {
        const name = path.slice(prefix.length, slash);
        children.push({ name, type: "directory" });
        // The subtree is contiguous in byte order: jump past it.
        const [, subtreeEnd] = this.index.prefixRange(path.slice(0, slash + 1));
        rank = Math.max(subtreeEnd, rank + 1);
      }
    }
    children.sort(
      (a, b) => comparePaths(a.name, b.name) || (a.type === b.type ? 0 : a.type === "file" ? -1 : 1),
    );
    return children;
  }

  /**
   * Every file under `prefix` (default: the whole archive) in UTF-8 byte order of path. A prefix naming a
   * file yields that file; a missing prefix → `ERR_NOT_FOUND`.
   */
  async *walk(prefix = "."): AsyncGenerator<FileStat> {
    this.#assertOpen();
    const normalized = this.#normalize(prefix);
    for (const rank of this.#subtreeRanks(normalized)) {
      this.#assertOpen();
      yield statOfEntry(this.index.entry(rank));
    }
  }

  /** Ranks of the file `path` and every file under `path/` in byte order; `ERR_NOT_FOUND` when none. */
  *#subtreeRanks(path: string): Generator<number> {
    if (path === ".") {
      for (let rank = 0; rank < this.index.length; rank++) yield rank;
      return;
    }
    const exact = this.index.find(path);
    const [start, end] = this.index.prefixRange(`${path}/`);
    if (exact < 0 && start >= end) {
      throw new BlobError("ERR_NOT_FOUND", `no such file or directory: ${path}`, { subject: path });
    }
    if (exact >= 0) yield exact;
    for (let rank = start; rank < end; rank++) yield rank;
  }

  /**
   * Paths of the files matching a glob pattern (`*`, `**`, `?`, `[abc]`, `{a,b}`; Node's
   * `path.posix.matchesGlob` semantics, matched against whole archive paths), in UTF-8 byte order. As in
   * shells, `*` and `**` do not match names starting with `.` (write a pattern segment starting with `.` for those). A literal
   * leading directory part of the pattern narrows the scan to that subtree.
   */
  async glob(pattern: string): Promise<string[]> {
    this.#assertOpen();
    if (typeof pattern !== "string" || pattern.length === 0) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "glob pattern must be a non-empty string");
    }
    const segments = pattern.split("/");
    const literal: string[] = [];
    for (let i = 0; i < segments.length - 1; i++) {
      const segment = segments[i]!;
      if (GLOB_META.test(segment) || segment === "" || segment === "." || segment === "..") break;
      literal.push(segment);
    }
    const prefix = literal.length > 0 ? `${literal.join("/")}/` : "";
    const [start, end] = this.index.prefixRange(prefix);
    const matches: string[] = [];
    for (let rank = start; rank < end; rank++) {
      const path = this.index.path(rank);
      if (posix.matchesGlob(path, pattern)) matches.push(path);
    }
    return matches;
  }

  /**
   * File count and total sizes of a subtree (a file path counts as one file; `"."` is everything).
   * Missing → `ERR_NOT_FOUND`.
   */
  async dirStats(path = "."): Promise<DirStats> {
    this.#assertOpen();
    const normalized = this.#normalize(path);
    if (normalized === ".") {
      return {
        fileCount: this.index.length,
        totalSize: this.index.totalSize(),
        storedSize: this.index.totalStoredSize(),
      };
    }
    let fileCount = 0;
    let totalSize = 0;
    let storedSize = 0;
    for (const rank of this.#subtreeRanks(normalized)) {
      fileCount++;
      totalSize += this.index.size(rank);
      storedSize += this.index.storedSize(rank);
    }
    return { fileCount, totalSize, storedSize };
  }

  /** Every index entry in UTF-8 byte order of path (metadata only; no I/O). */
  entries(): Iterable<IndexEntry> {
    this.#assertOpen();
    return this.index;
  }

  /**
   * Extracts files into `dest` (see {@link ExtractOptions}); every target stays inside `dest`.
   */
  async extract(dest: string, options: ExtractOptions = {}): Promise<ExtractResult> {
    this.#assertOpen();
    return extractArchive(this.#internals(), dest, options);
  }

  #internals(): ArchiveInternals {
    return {
      index: this.index,
      source: this.source,
      limits: this.limits,
      assertOpen: () => this.#assertOpen(),
    };
  }

  /**
   * Closes the archive (idempotent): in-flight shared reads are aborted, later operations reject with
   * `ERR_CLOSED`, and the source is closed when the archive owns it.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#flights.abortAll(new BlobError("ERR_CLOSED", "archive is closed"));
      this.#closing = this.#ownsSource ? this.source.close() : Promise.resolve();
    }
    return this.#closing;
  }

  /** `await using` support: same as {@link Archive.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
