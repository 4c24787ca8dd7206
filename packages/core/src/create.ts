/**
 * Archive creation: walks a directory (or takes a programmatic list of files), streams the data blob to a
 * writable stream while hashing it, and returns the encoded index.
 *
 * Design (why it looks like this):
 * - Entries are written in unsigned UTF-8 byte order of their paths, the order every reader binary-searches
 *   (the Go tool writes walk order, which breaks its own lookups — spec §1.3). A directory is therefore
 *   scanned first (metadata only: memory is bounded by the index), sorted, then read in that order.
 * - Up to `concurrency` files are read, hashed and compressed at once (zlib/zstd and large SHA-256 digests
 *   run on libuv's thread pool), but their stored bytes reach the data stream strictly in sorted order.
 *   Bytes produced ahead of the stream's position count against an in-flight budget, so memory stays
 *   bounded by `IN_FLIGHT_BUDGET` + one buffered file per worker, never by the data blob.
 * - A directory with many small files hands them, in batches of consecutive paths, to worker threads that
 *   read, hash and compress them (`create-pool.ts`): per-file zstd and SHA-256 calls are too short for the
 *   thread pool to pay, so on the calling thread they kept one core busy and the others idle.
 * - Files up to `BUFFER_THRESHOLD` are read whole and compressed in one shot, so a zstd result that is not
 *   smaller than the input can be dropped in favour of the raw bytes. Larger files are streamed through one
 *   zstd encoder session (one valid zstd stream per entry); their frame is kept even if it did not shrink.
 */
import { createHash } from "node:crypto";
import type { BigIntStats, Dirent } from "node:fs";
import { promises as fsp, lstatSync, readdirSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type * as zlib from "node:zlib";
import { SmallFilePool, WORKER_FAILED } from "./create-pool.ts";
import {
  assertScannedFile,
  assertUnchanged,
  fileChanged,
  ioError,
  OPEN_FLAGS,
  openError,
  readSmallFileSync,
  releaseBuffer,
  type SmallFileResult,
  type SmallFileTask,
  storeSmallFileSync,
} from "./create-small.ts";
import { bytesToHex, sha256Async, sha256Digest } from "./digest.ts";
import { BlobError, isBlobError, throwIfAborted } from "./errors.ts";
import { encodeIndex } from "./format/index-codec.ts";
import type { Compression, IndexEntryInput } from "./format/types.ts";
import { type Limits, resolveLimits } from "./limits.ts";
import { bufferSweeper } from "./memory.ts";
import { assertArchivePath, comparePaths, utf8 } from "./paths.ts";
import {
  assertZstdLevel,
  createZstdCompressStream,
  DEFAULT_ZSTD_LEVEL,
  looksIncompressible,
  zstdCompress,
} from "./zstd.ts";

/**
 * The file extensions the Go tool's `DefaultSkipCompression` stores raw (already-compressed formats),
 * matched case-insensitively against the last path element.
 *
 * @public
 */
export const DEFAULT_SKIP_COMPRESSION_EXTENSIONS: readonly string[] = Object.freeze([
  ".7z",
  ".aac",
  ".avif",
  ".br",
  ".bz2",
  ".flac",
  ".gif",
  ".gz",
  ".heic",
  ".ico",
  ".jpeg",
  ".jpg",
  ".m4v",
  ".mkv",
  ".mov",
  ".mp3",
  ".mp4",
  ".ogg",
  ".opus",
  ".pdf",
  ".png",
  ".rar",
  ".tgz",
  ".wav",
  ".webm",
  ".webp",
  ".woff",
  ".woff2",
  ".xz",
  ".zip",
  ".zst",
]);

/** Files strictly smaller than this many bytes are stored raw by default (as `blob push` does). @public */
export const DEFAULT_SKIP_COMPRESSION_MIN_SIZE = 1024;

/**
 * Files up to this size are read into memory whole (and stored raw when zstd does not shrink them); larger
 * files are streamed through a zstd encoder.
 *
 * @public
 */
export const CREATE_BUFFER_THRESHOLD: number = 4 * 1024 * 1024;

/** Most stored bytes held in memory ahead of the data stream's write position. */
const IN_FLIGHT_BUDGET = 16 * 1024 * 1024;
/** Read size for streamed (large) files. */
const STREAM_CHUNK = 1024 * 1024;
/** Most files a worker may run ahead of the write position, whatever their size (empty files cost nothing). */
const MAX_AHEAD = 4096;
/** Directory entries the scan handles between two yields to the event loop. */
const SCAN_YIELD_EVERY = 2048;
/** Files up to this size are stored by the small-file worker pool, in batches (see `create-pool.ts`). */
const POOL_FILE_MAX = 128 * 1024;
/** Fewest such files that make starting worker threads (a few tens of milliseconds) worth it. */
const POOL_MIN_FILES = 256;
/** Most worker threads, whatever the core count: each holds its own V8 heap. */
const POOL_MAX_THREADS = 8;
/** A batch for the pool: at most this many files and bytes (a batch is one message each way). */
const BATCH_FILES = 64;
const BATCH_BYTES = 1024 * 1024;

/** Why an item of the source tree was left out of the archive. @public */
export type SkippedKind = "symlink" | "socket" | "fifo" | "device" | "other" | "non-utf8-name";

/**
 * An item of the source directory that is not in the archive. Symlinks are never followed. For
 * `"non-utf8-name"` the path is shown with U+FFFD replacement characters (the raw name has no string form).
 *
 * @public
 */
export interface SkippedFile {
  /** Relative `/`-separated path of the item. */
  path: string;
  /** What the item is. */
  kind: SkippedKind;
}

/**
 * A progress event of {@link createArchive}. `filesTotal` and `bytesTotal` are known once the scan ends
 * (the `"scanning"` event that carries them is emitted before any file is read); `bytesDone`/`bytesTotal`
 * count uncompressed bytes. Inputs of unknown size grow `bytesTotal` when they are read, so both counters
 * only ever increase and the `"done"` event has `filesDone === filesTotal` and `bytesDone === bytesTotal`.
 *
 * @public
 */
export interface CreateProgress {
  /** `"scanning"` (start and end of the scan), `"writing"` (after each file), `"done"` (once). */
  stage: "scanning" | "writing" | "done";
  /** Files written so far. */
  filesDone: number;
  /** Files the archive will hold. */
  filesTotal: number;
  /** Uncompressed bytes written so far. */
  bytesDone: number;
  /** Uncompressed bytes the archive will hold. */
  bytesTotal: number;
  /** The file just written (`"writing"` events). */
  path?: string;
}

/**
 * When to store a file raw although `compression` is `"zstd"`.
 *
 * @public
 */
export interface SkipCompressionOptions {
  /** Files strictly smaller than this are stored raw; 0 disables the rule. Default 1024. */
  minSize?: number;
  /**
   * Extensions (with or without the leading dot, case-insensitive, matched on the last path element) stored
   * raw; `false` disables the rule. Default {@link DEFAULT_SKIP_COMPRESSION_EXTENSIONS}.
   */
  extensions?: readonly string[] | false;
  /**
   * Files of at least 256 KiB are probed first: when three 16 KiB samples (start, middle, end) do not shrink
   * by 3 % under zstd, the file is stored raw without compressing it whole — media, archives and encrypted
   * data cost neither the CPU nor the memory of a compression that would be thrown away. Default `true`.
   */
  probe?: boolean;
}

/**
 * Reproducible output: a fixed mtime and owner for every entry (permission bits are still captured).
 *
 * @public
 */
export interface DeterministicOptions {
  /** mtime of every entry. Default: `SOURCE_DATE_EPOCH` (seconds) from the environment, else the epoch. */
  mtime?: Date | bigint;
  /** uid of every entry. Default 0. */
  uid?: number;
  /** gid of every entry. Default 0. */
  gid?: number;
}

/**
 * Options of {@link createArchive}.
 *
 * @public
 */
export interface CreateOptions {
  /** `"zstd"` (default) compresses each file as its own zstd stream; `"none"` stores every file raw. */
  compression?: "none" | "zstd";
  /** zstd level (-7..-1, 1..22). Default 3, the Go tool's level. */
  level?: number;
  /** Which files stay raw under zstd; `false` compresses everything. Default: < 1 KiB and Go's 31 extensions. */
  skipCompression?: SkipCompressionOptions | false;
  /**
   * `"none"` (default): a file that has fewer bytes than its scanned size when read, or that is not the
   * scanned file any more (device/inode — a parent directory swapped for a symlink could otherwise pull in
   * files from outside the tree), fails with `ERR_FILE_CHANGED` (growth is not detected; the file is read
   * up to its scanned size). `"strict"`: also fails when its size, mtime or mode changed by the end of the
   * read.
   */
  changeDetection?: "none" | "strict";
  /** Most files the archive may hold (`Infinity` for no limit). Default `limits.maxFiles`. */
  maxFiles?: number;
  /**
   * `true`: every entry gets mtime `SOURCE_DATE_EPOCH` (or 0) and uid/gid 0, so the same tree gives the
   * same index and data digests. An object overrides those values.
   */
  deterministic?: boolean | DeterministicOptions;
  /**
   * Files processed in parallel. Default twice `os.availableParallelism()` (at least 4): each file waits on
   * I/O between its compression steps, so more files than cores keep every core compressing. Output does
   * not depend on it.
   */
  concurrency?: number;
  /**
   * Store identical file contents once: later files with the same SHA-256 and size point at the earlier
   * file's stored bytes (the Go reader accepts shared ranges). Applies to files up to 4 MiB (larger ones are
   * streamed before their hash is known). Default `false`.
   */
  dedupe?: boolean;
  /** Progress callback; an exception thrown from it aborts the creation with that error. */
  onProgress?: (event: CreateProgress) => void;
  /** Aborts the creation: the promise rejects with `signal.reason` and every file handle is closed. */
  signal?: AbortSignal;
  /** Limits (path length, file size, file count, index size) the result must respect. */
  limits?: Partial<Limits>;
}

/**
 * One file of a programmatic archive. `content` is bytes, a string (stored as UTF-8) or a function returning
 * a fresh stream of the bytes (called once, when the file is written). Byte and string content is held in
 * memory until written: entries are sorted before writing, so every provider is collected first — pass a
 * function for large contents.
 *
 * @public
 */
export interface ArchiveInput {
  /** Valid archive path (relative, `/`-separated, no `.`/`..`/empty segments). */
  path: string;
  /** The file's bytes, or a function returning them as a stream. */
  content: Uint8Array | string | (() => ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>);
  /** Declared size; the content must have exactly this many bytes, else `ERR_FILE_CHANGED`. */
  size?: number;
  /** Permission bits (only `mode & 0o777` is stored). Default 0o644. */
  mode?: number;
  /** Modification time. Default: the time `createArchive` was called. */
  mtime?: Date | bigint;
  /** Owner user id. Default 0. */
  uid?: number;
  /** Owner group id. Default 0. */
  gid?: number;
}

/**
 * What {@link createArchive} produced.
 *
 * @public
 */
export interface CreateResult {
  /** The encoded index blob. */
  index: Uint8Array;
  /** `sha256:<hex>` of the index blob. */
  indexDigest: string;
  /** `sha256:<hex>` of the data blob written to the stream. */
  dataDigest: string;
  /** Length of the data blob in bytes. */
  dataSize: number;
  /** Number of files in the archive. */
  fileCount: number;
  /** Sum of the files' uncompressed sizes. */
  totalSize: number;
  /** Sum of the files' stored sizes (equals `dataSize` unless `dedupe` shared some bytes). */
  storedSize: number;
  /** Items of the source directory that were left out (never silently). */
  skipped: SkippedFile[];
}

/** Internal knobs used by `createLocalArchive`. @internal */
export interface InternalCreateOptions {
  /** Relative `/`-separated paths (files or directories) of the source directory to leave out, silently. */
  exclude?: readonly string[];
  /**
   * Worker threads for small files; 0 keeps everything on the calling thread. Default: one per core (up to
   * 8) when the tree has at least 256 small files, else none. Tests set it to exercise both paths.
   */
  smallFileThreads?: number;
  /** Replaces the small-file worker script (tests of a worker that cannot start). */
  smallFileWorker?: URL;
}

// ---------------------------------------------------------------------------------------------------------
// Options

interface Resolved {
  compress: boolean;
  level: number;
  minSize: number;
  extensions: Set<string> | undefined;
  probe: boolean;
  strict: boolean;
  maxFiles: number;
  fixed: { mtimeNs: bigint; uid: number; gid: number } | undefined;
  defaultMtimeNs: bigint;
  concurrency: number;
  dedupe: boolean;
  onProgress: ((event: CreateProgress) => void) | undefined;
  signal: AbortSignal | undefined;
  limits: Limits;
}

function argError(message: string, reason?: string, subject?: string): BlobError {
  return new BlobError("ERR_INVALID_ARGUMENT", message, { reason, subject });
}

function mtimeToNs(value: Date | bigint, what: string): bigint {
  if (typeof value === "bigint") {
    // The index stores int64 nanoseconds.
    if (value < -(2n ** 63n) || value >= 2n ** 63n)
      throw argError(`${what} does not fit in int64 nanoseconds`);
    return value;
  }
  if (value instanceof Date && Number.isFinite(value.getTime())) return BigInt(value.getTime()) * 1_000_000n;
  throw argError(`${what} must be a valid Date or a bigint of nanoseconds`);
}

function sourceDateEpochNs(): bigint {
  const raw = process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return 0n;
  if (!/^\d+$/.test(raw))
    throw argError(`SOURCE_DATE_EPOCH must be an integer number of seconds, got ${raw}`);
  return BigInt(raw) * 1_000_000_000n;
}

function checkId(value: unknown, what: string): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0xffff_ffff) {
    throw argError(`${what} must be an integer in 0..2^32-1`);
  }
  return value as number;
}

function resolveOptions(options: CreateOptions): Resolved {
  const limits = resolveLimits(options.limits);
  const compression = options.compression ?? "zstd";
  if (compression !== "zstd" && compression !== "none") {
    throw argError(`compression must be "none" or "zstd", got ${String(compression)}`);
  }
  const level = options.level ?? DEFAULT_ZSTD_LEVEL;
  assertZstdLevel(level);
  let minSize = 0;
  let extensions: Set<string> | undefined;
  let probe = false;
  const skip = options.skipCompression ?? {};
  if (skip !== false) {
    probe = skip.probe ?? true;
    if (typeof probe !== "boolean") throw argError("skipCompression.probe must be a boolean");
    minSize = skip.minSize ?? DEFAULT_SKIP_COMPRESSION_MIN_SIZE;
    if (!Number.isSafeInteger(minSize) || minSize < 0) throw argError("skipCompression.minSize must be ≥ 0");
    const list = skip.extensions ?? DEFAULT_SKIP_COMPRESSION_EXTENSIONS;
    if (list !== false) {
      extensions = new Set();
      for (const ext of list) {
        if (typeof ext !== "string" || ext === "" || ext === ".")
          throw argError(`bad extension ${String(ext)}`);
        extensions.add((ext.startsWith(".") ? ext : `.${ext}`).toLowerCase());
      }
    }
  }
  const changeDetection = options.changeDetection ?? "none";
  if (changeDetection !== "none" && changeDetection !== "strict") {
    throw argError(`changeDetection must be "none" or "strict", got ${String(changeDetection)}`);
  }
  const maxFiles = options.maxFiles ?? limits.maxFiles;
  if (!(maxFiles === Number.POSITIVE_INFINITY || (Number.isSafeInteger(maxFiles) && maxFiles > 0))) {
    throw argError(`maxFiles must be a positive integer or Infinity, got ${String(maxFiles)}`);
  }
  let fixed: Resolved["fixed"];
  const det = options.deterministic;
  if (det !== undefined && det !== false) {
    const o: DeterministicOptions = det === true ? {} : det;
    fixed = {
      mtimeNs: o.mtime === undefined ? sourceDateEpochNs() : mtimeToNs(o.mtime, "deterministic.mtime"),
      uid: checkId(o.uid ?? 0, "deterministic.uid"),
      gid: checkId(o.gid ?? 0, "deterministic.gid"),
    };
  }
  const concurrency = options.concurrency ?? Math.max(4, 2 * availableParallelism());
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw argError(`concurrency must be a positive integer, got ${String(concurrency)}`);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== "function") {
    throw argError("onProgress must be a function");
  }
  return {
    compress: compression === "zstd",
    level,
    minSize,
    extensions,
    probe,
    strict: changeDetection === "strict",
    maxFiles,
    fixed,
    defaultMtimeNs: BigInt(Date.now()) * 1_000_000n,
    concurrency,
    dedupe: options.dedupe === true,
    onProgress: options.onProgress,
    signal: options.signal,
    limits,
  };
}

/** Whether a file of `size` bytes at `path` is compressed under the resolved options. */
function shouldCompress(opts: Resolved, path: string, size: number): boolean {
  if (!opts.compress || size === 0) return false;
  if (opts.minSize > 0 && size < opts.minSize) return false;
  if (opts.extensions !== undefined) {
    const name = path.slice(path.lastIndexOf("/") + 1);
    const dot = name.lastIndexOf(".");
    if (dot >= 0 && opts.extensions.has(name.slice(dot).toLowerCase())) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Scan: what will be archived (metadata and content providers only)

type ItemSource =
  | { kind: "file"; abs: string; dev: bigint; ino: bigint; mtimeNs: bigint; rawMode: number }
  | { kind: "bytes"; bytes: Uint8Array }
  | { kind: "string"; text: string }
  | { kind: "stream"; open: () => ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> };

type FileSource = Extract<ItemSource, { kind: "file" }>;

interface Item {
  path: string;
  /** Exact size when known (files, bytes, strings, declared streams). */
  size: number | undefined;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  source: ItemSource;
}

function tooManyFiles(max: number): BlobError {
  return new BlobError("ERR_LIMIT_EXCEEDED", `more than ${max} files`, { reason: "too-many-files" });
}

function fileTooLarge(path: string, size: number, max: number): BlobError {
  return new BlobError("ERR_LIMIT_EXCEEDED", `${JSON.stringify(path)} is ${size} bytes, limit ${max}`, {
    reason: "file-too-large",
    subject: path,
  });
}

function kindOf(st: {
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isBlockDevice(): boolean;
  isCharacterDevice(): boolean;
}): SkippedKind {
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isBlockDevice() || st.isCharacterDevice()) return "device";
  return "other";
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const lossyUtf8 = new TextDecoder("utf-8");

/**
 * Lists the regular files under `root` (metadata only). `smallFiles` is told once, when the scan has found
 * `smallFiles.after` files small enough for the worker pool, so the pool starts while the scan goes on.
 */
async function scanDirectory(
  root: string,
  opts: Resolved,
  skipped: SkippedFile[],
  internal: InternalCreateOptions,
  smallFiles: { after: number; found: () => void },
): Promise<Item[]> {
  let small = 0;
  let rootStat: BigIntStats;
  try {
    rootStat = await fsp.stat(root, { bigint: true });
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") {
      throw new BlobError("ERR_NOT_FOUND", `source directory ${root} does not exist`, {
        cause,
        subject: root,
      });
    }
    throw ioError(`cannot stat ${root}`, cause, root);
  }
  if (!rootStat.isDirectory()) {
    throw new BlobError("ERR_NOT_DIRECTORY", `${root} is not a directory`, { subject: root });
  }
  const exclude = new Set(internal.exclude ?? []);
  const items: Item[] = [];
  const stack: { abs: string; rel: string }[] = [{ abs: root, rel: "" }];
  // Synchronous readdir and lstat: a few microseconds each, where a thread-pool round trip per call made
  // the scan of a tree of many small files take as long as compressing it. The loop yields to the event loop
  // every few thousand entries so an abort is still seen promptly.
  let sinceYield = 0;
  while (stack.length > 0) {
    if (sinceYield >= SCAN_YIELD_EVERY) {
      sinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    throwIfAborted(opts.signal);
    const dir = stack.pop()!;
    let dirents: Dirent<Buffer>[];
    try {
      dirents = readdirSync(dir.abs, { withFileTypes: true, encoding: "buffer" }) as Dirent<Buffer>[];
      sinceYield += dirents.length + 1;
    } catch (cause) {
      throw ioError(`cannot read directory ${dir.rel || "."}`, cause, dir.rel || ".");
    }
    const files: { abs: string; rel: string }[] = [];
    for (const dirent of dirents) {
      let name: string;
      try {
        name = strictUtf8.decode(dirent.name);
      } catch {
        skipped.push({ path: dir.rel + lossyUtf8.decode(dirent.name), kind: "non-utf8-name" });
        continue;
      }
      const rel = dir.rel + name;
      const abs = join(dir.abs, name);
      if (exclude.has(rel)) continue;
      if (dirent.isDirectory()) {
        stack.push({ abs, rel: `${rel}/` });
      } else if (dirent.isFile()) {
        files.push({ abs, rel });
      } else if (
        dirent.isSymbolicLink() ||
        dirent.isFIFO() ||
        dirent.isSocket() ||
        dirent.isBlockDevice() ||
        dirent.isCharacterDevice()
      ) {
        skipped.push({ path: rel, kind: kindOf(dirent) });
      } else {
        // Unknown d_type (some file systems): lstat decides below.
        files.push({ abs, rel });
      }
    }
    for (const f of files) {
      let st: BigIntStats | undefined;
      try {
        st = lstatSync(f.abs, { bigint: true, throwIfNoEntry: false });
      } catch (cause) {
        throw ioError(`cannot stat ${f.rel}`, cause, f.rel);
      }
      // Vanished between readdir and lstat: it was never part of a consistent snapshot.
      if (st === undefined) continue;
      if (st.isDirectory()) {
        stack.push({ abs: f.abs, rel: `${f.rel}/` });
        continue;
      }
      if (!st.isFile()) {
        skipped.push({ path: f.rel, kind: kindOf(st) });
        continue;
      }
      assertArchivePath(f.rel, opts.limits.maxPathLength);
      const size = Number(st.size);
      if (size > opts.limits.maxFileSize) throw fileTooLarge(f.rel, size, opts.limits.maxFileSize);
      if (items.length >= opts.maxFiles) throw tooManyFiles(opts.maxFiles);
      if (size <= POOL_FILE_MAX && ++small === smallFiles.after) smallFiles.found();
      items.push({
        path: f.rel,
        size,
        mode: Number(st.mode & 0o777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeNs: st.mtimeNs,
        source: {
          kind: "file",
          abs: f.abs,
          dev: st.dev,
          ino: st.ino,
          mtimeNs: st.mtimeNs,
          rawMode: Number(st.mode),
        },
      });
    }
  }
  return items;
}

function inputToItem(input: ArchiveInput, opts: Resolved): Item {
  if (typeof input !== "object" || input === null) throw argError("archive input must be an object");
  const path = input.path;
  if (typeof path !== "string") throw argError("archive input path must be a string");
  assertArchivePath(path, opts.limits.maxPathLength);
  let declared: number | undefined;
  if (input.size !== undefined) {
    if (!Number.isSafeInteger(input.size) || input.size < 0) {
      throw argError(`size of ${JSON.stringify(path)} must be a safe integer ≥ 0`, undefined, path);
    }
    declared = input.size;
  }
  const mode = input.mode ?? 0o644;
  if (!Number.isInteger(mode) || mode < 0)
    throw argError(`mode of ${JSON.stringify(path)} must be an integer ≥ 0`);
  const mtimeNs =
    input.mtime === undefined ? opts.defaultMtimeNs : mtimeToNs(input.mtime, `mtime of ${path}`);
  const uid = checkId(input.uid ?? 0, `uid of ${path}`);
  const gid = checkId(input.gid ?? 0, `gid of ${path}`);
  const content = input.content;
  let source: ItemSource;
  let size: number | undefined;
  if (content instanceof Uint8Array) {
    source = { kind: "bytes", bytes: content };
    size = content.byteLength;
  } else if (typeof content === "string") {
    source = { kind: "string", text: content };
    size = Buffer.byteLength(content, "utf8");
  } else if (typeof content === "function") {
    source = { kind: "stream", open: content };
    size = declared;
  } else {
    throw argError(
      `content of ${JSON.stringify(path)} must be bytes, a string or a function`,
      undefined,
      path,
    );
  }
  if (declared !== undefined && declared !== size) {
    throw new BlobError(
      "ERR_FILE_CHANGED",
      `${JSON.stringify(path)} has ${size} bytes, declared ${declared}`,
      {
        reason: "size-mismatch",
        subject: path,
      },
    );
  }
  if (size !== undefined && size > opts.limits.maxFileSize)
    throw fileTooLarge(path, size, opts.limits.maxFileSize);
  return { path, size, mode: mode & 0o777, uid, gid, mtimeNs, source };
}

async function collectInputs(
  input: Iterable<ArchiveInput> | AsyncIterable<ArchiveInput>,
  opts: Resolved,
): Promise<Item[]> {
  const items: Item[] = [];
  const add = (entry: ArchiveInput): void => {
    if (items.length >= opts.maxFiles) throw tooManyFiles(opts.maxFiles);
    items.push(inputToItem(entry, opts));
  };
  if (Symbol.asyncIterator in input) {
    for await (const entry of input as AsyncIterable<ArchiveInput>) {
      throwIfAborted(opts.signal);
      add(entry);
    }
  } else if (Symbol.iterator in input) {
    for (const entry of input as Iterable<ArchiveInput>) add(entry);
  } else {
    throw argError("input must be a directory path or an (async) iterable of ArchiveInput");
  }
  return items;
}

/** Sorts by UTF-8 byte order and rejects duplicates and paths below a file (`a` and `a/b`). */
function sortItems(items: Item[]): void {
  items.sort((a, b) => comparePaths(a.path, b.path));
  // A file that is a prefix directory of a later path must be followed by it within its "subtree" run;
  // a stack of ancestors-that-are-files catches `a` + `a/b` even with `a.txt` sorted in between.
  const stack: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const path = items[i]!.path;
    if (i > 0 && items[i - 1]!.path === path) {
      throw argError(`duplicate path ${JSON.stringify(path)}`, "duplicate-path", path);
    }
    while (stack.length > 0 && !path.startsWith(stack[stack.length - 1]!)) stack.pop();
    const top = stack[stack.length - 1];
    if (top !== undefined && path.charCodeAt(top.length) === 0x2f) {
      throw argError(
        `${JSON.stringify(path)} lies below the file ${JSON.stringify(top)}`,
        "file-directory-conflict",
        path,
      );
    }
    stack.push(path);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Coordination between the workers, the ordered writer and failure/abort

class Coordinator {
  failed = false;
  error: unknown = undefined;
  readonly cleanups: Set<() => void> = new Set();
  private waiters: (() => void)[] = [];
  /** Rejecters of pending {@link Coordinator.race} calls; each removes itself when its promise settles. */
  private racers: Set<(error: unknown) => void> = new Set();

  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.error = error;
    for (const reject of this.racers) reject(error);
    this.racers.clear();
    for (const cleanup of this.cleanups) {
      try {
        cleanup();
      } catch {
        // Best effort: cleanup must not mask the original error.
      }
    }
    this.notify();
  }

  check(): void {
    if (this.failed) throw this.error;
  }

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  async waitUntil(condition: () => boolean): Promise<void> {
    for (;;) {
      this.check();
      if (condition()) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /**
   * `promise`, or the failure if one happens first. (Not `Promise.race` with a long-lived failure promise:
   * every race would leave a reaction on it, ~300 bytes each, for the whole run.)
   */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.failed) {
      promise.catch(() => {}); // nobody else will observe it
      return Promise.reject(this.error);
    }
    return new Promise<T>((resolve, reject) => {
      this.racers.add(reject);
      promise.then(resolve, reject).finally(() => this.racers.delete(reject));
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Output: web WritableStream or Node writable, with backpressure

interface Output {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason: unknown): void;
}

function isWebWritable(value: unknown): value is WritableStream<Uint8Array> {
  return typeof (value as WritableStream | undefined)?.getWriter === "function";
}

function openOutput(data: WritableStream<Uint8Array> | NodeJS.WritableStream, co: Coordinator): Output {
  if (isWebWritable(data)) {
    let writer: WritableStreamDefaultWriter<Uint8Array>;
    try {
      writer = data.getWriter();
    } catch (cause) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "the data stream is locked or closed", { cause });
    }
    const streamFailed = (cause: unknown): never => {
      throw ioError("writing the data stream failed", cause);
    };
    return {
      async write(chunk) {
        await co.race(writer.ready.catch(streamFailed));
        writer.write(chunk).catch((cause) => co.fail(ioError("writing the data stream failed", cause)));
      },
      async close() {
        await co.race(writer.close().catch(streamFailed));
        writer.releaseLock();
      },
      abort(reason) {
        writer.abort(reason).catch(() => {});
        writer.releaseLock();
      },
    };
  }
  const stream = data as NodeJS.WritableStream;
  if (typeof stream?.write !== "function" || typeof stream.on !== "function") {
    throw argError("data must be a WritableStream or a Node writable stream");
  }
  let streamError: unknown;
  const onError = (cause: unknown): void => {
    streamError = cause;
    co.fail(ioError("writing the data stream failed", cause));
  };
  stream.on("error", onError);
  const waitFor = (event: "drain" | "finish"): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const done = (): void => {
        stream.off(event, done);
        stream.off("close", closed);
        resolve();
      };
      const closed = (): void => {
        stream.off(event, done);
        stream.off("close", closed);
        reject(ioError("the data stream closed early", streamError ?? new Error("premature close")));
      };
      stream.on(event, done);
      stream.on("close", closed);
    });
  return {
    async write(chunk) {
      co.check();
      if (!stream.write(chunk)) await co.race(waitFor("drain"));
    },
    async close() {
      const finished = waitFor("finish");
      stream.end();
      await co.race(finished);
      stream.off("error", onError);
    },
    abort() {
      // Without an error argument: a user stream without an 'error' listener must not crash the process.
      const destroyable = stream as NodeJS.WritableStream & { destroy?: () => void };
      destroyable.destroy?.();
      // Keep swallowing late errors of the destroyed stream.
      stream.on("error", () => {});
      stream.off("error", onError);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Content readers

interface ContentReader {
  /** Returns up to `max` bytes, `null` at the end. Throws `ERR_FILE_CHANGED` on a short file. */
  read(max: number): Promise<Uint8Array | null>;
  /** Called after the last read: final consistency checks. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Files up to this size are read with synchronous calls on the calling thread: open, fstat, read and close
 * of a small file cost a few microseconds each, while four thread-pool round trips (plus their promises)
 * dominated the creation of trees of many small files.
 */
const SYNC_READ_MAX = 64 * 1024;

/** What the small-file step needs to know about `item`. */
function smallFileTask(item: Item, source: FileSource, opts: Resolved): SmallFileTask {
  const size = item.size ?? 0;
  return {
    path: item.path,
    abs: source.abs,
    size,
    dev: source.dev,
    ino: source.ino,
    mtimeNs: source.mtimeNs,
    rawMode: source.rawMode,
    compress: shouldCompress(opts, item.path, size),
  };
}

async function openFile(
  item: Item,
  source: FileSource,
  opts: Resolved,
  co: Coordinator,
): Promise<ContentReader> {
  const path = item.path;
  const expected = item.size ?? 0;
  if (expected <= SYNC_READ_MAX) {
    co.check();
    return openBytes(readSmallFileSync(smallFileTask(item, source, opts), opts.strict));
  }
  let fh: FileHandle;
  try {
    fh = await fsp.open(source.abs, OPEN_FLAGS);
  } catch (cause) {
    throw openError(path, cause);
  }
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    co.cleanups.delete(cleanup);
    await fh.close().catch(() => {});
  };
  const cleanup = (): void => void close();
  co.cleanups.add(cleanup);
  try {
    assertScannedFile(path, await fh.stat({ bigint: true }), source);
  } catch (error) {
    await close();
    throw error;
  }
  let position = 0;
  return {
    async read(max) {
      const remaining = expected - position;
      if (remaining === 0) return null;
      const buffer = Buffer.allocUnsafe(Math.min(max, remaining));
      let filled = 0;
      while (filled < buffer.length) {
        co.check();
        const { bytesRead } = await fh.read(buffer, filled, buffer.length - filled, position + filled);
        if (bytesRead === 0) {
          throw fileChanged(path, `read ${position + filled} bytes, expected ${expected}`, "size-changed");
        }
        filled += bytesRead;
      }
      position += filled;
      return buffer;
    },
    async finish() {
      if (opts.strict) assertUnchanged(path, await fh.stat({ bigint: true }), expected, source);
    },
    close,
  };
}

function openBytes(bytes: Uint8Array): ContentReader {
  let position = 0;
  return {
    async read(max) {
      if (position >= bytes.byteLength) return null;
      const chunk = bytes.subarray(position, position + max);
      position += chunk.byteLength;
      return chunk;
    },
    async finish() {},
    async close() {},
  };
}

function openStream(
  item: Item,
  source: Extract<ItemSource, { kind: "stream" }>,
  co: Coordinator,
): ContentReader {
  const path = item.path;
  let produced: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;
  try {
    produced = source.open();
  } catch (cause) {
    throw new BlobError("ERR_IO", `content of ${JSON.stringify(path)} failed: ${(cause as Error)?.message}`, {
      cause,
      subject: path,
    });
  }
  let next: () => Promise<IteratorResult<Uint8Array>>;
  let stop: () => Promise<void>;
  if (typeof (produced as ReadableStream<Uint8Array>)?.getReader === "function") {
    const reader = (produced as ReadableStream<Uint8Array>).getReader();
    next = async () => {
      const r = await reader.read();
      return r.done ? { done: true, value: undefined } : { done: false, value: r.value };
    };
    stop = async () => {
      await reader.cancel().catch(() => {});
    };
  } else if (produced !== null && typeof produced === "object" && Symbol.asyncIterator in produced) {
    const iterator = produced[Symbol.asyncIterator]();
    next = () => iterator.next();
    stop = async () => {
      await iterator.return?.()?.catch?.(() => {});
    };
  } else {
    throw argError(
      `content() of ${JSON.stringify(path)} must return a ReadableStream or an AsyncIterable`,
      undefined,
      path,
    );
  }
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    co.cleanups.delete(cleanup);
    await stop();
  };
  const cleanup = (): void => void close();
  co.cleanups.add(cleanup);
  let pending: Uint8Array | undefined;
  let total = 0;
  let ended = false;
  return {
    async read(max) {
      for (;;) {
        if (pending !== undefined) {
          const chunk = pending.subarray(0, max);
          pending = chunk.byteLength < pending.byteLength ? pending.subarray(chunk.byteLength) : undefined;
          return chunk;
        }
        if (ended) return null;
        co.check();
        let r: IteratorResult<Uint8Array>;
        try {
          r = await co.race(next());
        } catch (cause) {
          if (co.failed) throw co.error;
          throw new BlobError(
            "ERR_IO",
            `content of ${JSON.stringify(path)} failed: ${(cause as Error)?.message}`,
            { cause, subject: path },
          );
        }
        if (r.done) {
          ended = true;
          if (item.size !== undefined && total !== item.size) {
            throw fileChanged(path, `produced ${total} bytes, declared ${item.size}`, "size-changed");
          }
          continue;
        }
        const value: unknown = r.value;
        if (!(value instanceof Uint8Array)) {
          throw argError(
            `content of ${JSON.stringify(path)} produced a non-Uint8Array chunk`,
            undefined,
            path,
          );
        }
        if (value.byteLength === 0) continue;
        total += value.byteLength;
        if (item.size !== undefined && total > item.size) {
          throw fileChanged(path, `produced more than the declared ${item.size} bytes`, "size-changed");
        }
        pending = value;
      }
    },
    async finish() {},
    close,
  };
}

async function openContent(item: Item, opts: Resolved, co: Coordinator): Promise<ContentReader> {
  const source = item.source;
  switch (source.kind) {
    case "file":
      return openFile(item, source, opts, co);
    case "bytes":
      return openBytes(source.bytes);
    case "string":
      return openBytes(utf8(source.text));
    case "stream":
      return openStream(item, source, co);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Per-file processing and the ordered writer

interface Job {
  /** Stored bytes not yet written, in order. */
  chunks: Uint8Array[];
  done: boolean;
  /** Read whole and stored as one chunk at completion (so it can be deduplicated before any byte is written). */
  buffered: boolean;
  size: number;
  storedSize: number;
  sha256: Uint8Array;
  compression: Compression;
}

async function readWhole(reader: ContentReader, size: number): Promise<Uint8Array> {
  const first = await reader.read(size);
  if (first === null) {
    if (size !== 0) throw new BlobError("ERR_IO", "unexpected end of content");
    return new Uint8Array(0);
  }
  if (first.byteLength === size) {
    if ((await reader.read(1)) !== null) throw new BlobError("ERR_IO", "content longer than its size");
    return first;
  }
  const out = Buffer.allocUnsafe(size);
  out.set(first, 0);
  let filled = first.byteLength;
  while (filled < size) {
    const chunk = await reader.read(size - filled);
    if (chunk === null) break;
    out.set(chunk, filled);
    filled += chunk.byteLength;
  }
  return out;
}

interface Pipeline {
  co: Coordinator;
  opts: Resolved;
  acquire(bytes: number, index: number): Promise<void>;
  release(bytes: number): void;
}

async function storeBuffered(
  p: Pipeline,
  item: Item,
  job: Job,
  bytes: Uint8Array,
  reserved: number,
): Promise<void> {
  const [sha256, compressed] = await Promise.all([
    sha256Async(bytes),
    shouldCompress(p.opts, item.path, bytes.byteLength) &&
    !(p.opts.probe && looksIncompressible(bytes, p.opts.level))
      ? zstdCompress(bytes, p.opts.level)
      : undefined,
  ]);
  const size = bytes.byteLength;
  let stored = bytes;
  let compression: Compression = "none";
  // A zstd result that does not shrink the file is dropped: raw bytes are smaller and cheaper to read.
  if (compressed !== undefined && compressed.byteLength < bytes.byteLength) {
    // zstd's output sits in a buffer sized for the input: keep an exact copy, free both buffers now.
    stored = new Uint8Array(compressed);
    releaseBuffer(compressed);
    if (item.source.kind === "file") releaseBuffer(bytes); // read by us; content given by a caller is theirs
    compression = "zstd";
  }
  p.release(reserved - stored.byteLength);
  if (stored.byteLength > 0) job.chunks.push(stored);
  job.size = size;
  job.storedSize = stored.byteLength;
  job.sha256 = sha256;
  job.compression = compression;
  job.buffered = true;
  job.done = true;
  p.co.notify();
}

function waitDrain(stream: zlib.ZstdCompress): Promise<void> {
  // A destroyed encoder has already emitted "close" and will never drain.
  if (stream.destroyed) return Promise.reject(new BlobError("ERR_IO", "zstd encoder closed"));
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.off("drain", onDrain);
      stream.off("close", onClose);
      stream.off("error", onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new BlobError("ERR_IO", "zstd encoder closed"));
    };
    stream.on("drain", onDrain);
    stream.on("close", onClose);
    stream.on("error", onClose);
  });
}

async function storeStreamed(
  p: Pipeline,
  item: Item,
  job: Job,
  index: number,
  reader: ContentReader,
  prefix: Uint8Array[],
): Promise<void> {
  const { co, opts } = p;
  const hash = createHash("sha256");
  let size = 0;
  let storedSize = 0;
  const push = async (chunk: Uint8Array): Promise<void> => {
    await p.acquire(chunk.byteLength, index);
    job.chunks.push(chunk);
    storedSize += chunk.byteLength;
    co.notify();
  };
  const nextInput = async (): Promise<Uint8Array | null> => {
    const chunk = prefix.length > 0 ? prefix.shift()! : await reader.read(STREAM_CHUNK);
    if (chunk === null) return null;
    hash.update(chunk);
    size += chunk.byteLength;
    if (size > opts.limits.maxFileSize) throw fileTooLarge(item.path, size, opts.limits.maxFileSize);
    return chunk;
  };
  // Files of known size are streamed only above the buffering threshold; content of unknown size is judged
  // by the extension rule alone (its size is unknown until it has been read).
  const compress = shouldCompress(opts, item.path, item.size ?? Number.MAX_SAFE_INTEGER);
  if (!compress) {
    for (let chunk = await nextInput(); chunk !== null; chunk = await nextInput()) await push(chunk);
  } else {
    const encoder = createZstdCompressStream(opts.level);
    const destroy = (): void => void encoder.destroy();
    co.cleanups.add(destroy);
    const feed = (async () => {
      try {
        for (let chunk = await nextInput(); chunk !== null; chunk = await nextInput()) {
          co.check(); // a failure elsewhere destroys the encoder while this read was in flight
          // A file's read buffer is ours: freed once the encoder has consumed it.
          const consumed = item.source.kind === "file" ? () => releaseBuffer(chunk) : undefined;
          if (!encoder.write(chunk, consumed)) await waitDrain(encoder);
        }
        encoder.end();
      } catch (error) {
        encoder.destroy(error as Error);
        throw error;
      }
    })();
    feed.catch(() => {});
    try {
      for await (const out of encoder) await push(out as Buffer);
      await feed;
    } catch (error) {
      encoder.destroy();
      await feed.catch(() => {});
      // The feeder's error (e.g. ERR_FILE_CHANGED) is the cause; the encoder only reports being destroyed.
      throw co.failed ? co.error : error;
    } finally {
      co.cleanups.delete(destroy);
    }
  }
  await reader.finish();
  job.size = size;
  job.storedSize = storedSize;
  job.sha256 = hash.digest();
  job.compression = compress ? "zstd" : "none";
  job.done = true;
  co.notify();
}

async function processItem(p: Pipeline, item: Item, job: Job, index: number): Promise<void> {
  const { co, opts } = p;
  co.check();
  const known = item.size;
  if (known !== undefined && known <= CREATE_BUFFER_THRESHOLD) {
    // Reserve before reading so workers cannot run far ahead of the writer with whole files in memory.
    await p.acquire(known, index);
    const reader = await openContent(item, opts, co);
    let bytes: Uint8Array;
    try {
      bytes = await readWhole(reader, known);
      await reader.finish();
    } finally {
      await reader.close();
    }
    await storeBuffered(p, item, job, bytes, known);
    return;
  }
  const reader = await openContent(item, opts, co);
  try {
    if (known !== undefined) {
      await storeStreamed(p, item, job, index, reader, []);
      return;
    }
    // Unknown size: buffer up to the threshold; only a longer content is streamed.
    const prefix: Uint8Array[] = [];
    let total = 0;
    let ended = false;
    while (total <= CREATE_BUFFER_THRESHOLD) {
      const chunk = await reader.read(STREAM_CHUNK);
      if (chunk === null) {
        ended = true;
        break;
      }
      prefix.push(chunk);
      total += chunk.byteLength;
    }
    if (ended) {
      await reader.finish();
      const bytes = prefix.length === 1 ? prefix[0]! : Buffer.concat(prefix, total);
      await p.acquire(total, index);
      await storeBuffered(p, item, job, bytes, total);
    } else {
      await storeStreamed(p, item, job, index, reader, prefix);
    }
  } finally {
    await reader.close();
  }
}

function newJob(): Job {
  return {
    chunks: [],
    done: false,
    size: 0,
    storedSize: 0,
    sha256: new Uint8Array(0),
    compression: "none",
    buffered: false,
  };
}

/** Whether the small-file pool can store `item`: a file from disk of at most `POOL_FILE_MAX` bytes. */
function isPoolable(item: Item): boolean {
  return item.source.kind === "file" && item.size !== undefined && item.size <= POOL_FILE_MAX;
}

/** Stores consecutive small files (`items`, the first at `index`) on the pool and completes their jobs. */
async function processBatch(
  p: Pipeline,
  pool: SmallFilePool,
  items: Item[],
  jobs: Job[],
  index: number,
  bytes: number,
): Promise<void> {
  const { co, opts } = p;
  co.check();
  await p.acquire(bytes, index);
  const tasks = items.map((item) => smallFileTask(item, item.source as FileSource, opts));
  let results: SmallFileResult[];
  try {
    results = await co.race(pool.run(tasks));
  } catch (error) {
    // Workers that cannot run (a bundler that left the worker script behind, a thread that died) slow
    // the creation down but must not fail it: the calling thread does the same work.
    if (co.failed || !isBlobError(error, "ERR_IO") || error.reason !== WORKER_FAILED) throw error;
    results = tasks.map((task) => storeSmallFileSync(task, opts.strict, opts.level));
  }
  let storedTotal = 0;
  for (let k = 0; k < jobs.length; k++) {
    const job = jobs[k]!;
    const result = results[k]!;
    if (result.stored.byteLength > 0) job.chunks.push(result.stored);
    job.size = tasks[k]!.size;
    job.storedSize = result.stored.byteLength;
    job.sha256 = result.sha256;
    job.compression = result.zstd ? "zstd" : "none";
    job.buffered = true;
    job.done = true;
    storedTotal += result.stored.byteLength;
  }
  p.release(bytes - storedTotal);
  co.notify();
}

interface WriteOutcome {
  entries: IndexEntryInput[];
  dataSize: number;
  dataSha256: Uint8Array;
  totalSize: number;
  storedSize: number;
}

async function writeItems(
  items: Item[],
  out: Output,
  opts: Resolved,
  co: Coordinator,
  progress: (event: CreateProgress) => void,
  knownBytesTotal: number,
  pool: SmallFilePool | undefined,
): Promise<WriteOutcome> {
  const jobs: (Job | undefined)[] = new Array(items.length);
  let next = 0;
  let head = 0;
  let used = 0;
  const pipeline: Pipeline = {
    co,
    opts,
    async acquire(bytes, index) {
      await co.waitUntil(() => index === head || used === 0 || used + bytes <= IN_FLIGHT_BUDGET);
      used += bytes;
    },
    release(bytes) {
      if (bytes === 0) return;
      used -= bytes;
      co.notify();
    },
  };
  const worker = async (): Promise<void> => {
    for (;;) {
      await co.waitUntil(() => next >= items.length || next < head + MAX_AHEAD);
      if (next >= items.length) return;
      const index = next;
      if (pool !== undefined && isPoolable(items[index]!)) {
        // A run of small files in sorted order becomes one batch for the pool.
        let end = index + 1;
        let bytes = items[index]!.size!;
        while (
          end < items.length &&
          end - index < BATCH_FILES &&
          end < head + MAX_AHEAD &&
          isPoolable(items[end]!) &&
          bytes + items[end]!.size! <= BATCH_BYTES
        ) {
          bytes += items[end]!.size!;
          end++;
        }
        next = end;
        const batch: Job[] = [];
        for (let i = index; i < end; i++) {
          const job = newJob();
          jobs[i] = job;
          batch.push(job);
        }
        await processBatch(pipeline, pool, items.slice(index, end), batch, index, bytes);
        continue;
      }
      next++;
      const job = newJob();
      jobs[index] = job;
      await processItem(pipeline, items[index]!, job, index);
    }
  };
  const workers = Array.from({ length: Math.min(opts.concurrency, Math.max(1, items.length)) }, () =>
    worker().catch((error: unknown) => co.fail(error)),
  );

  const dataHash = createHash("sha256");
  const entries: IndexEntryInput[] = new Array(items.length);
  let offset = 0;
  const sweep = bufferSweeper();
  let bytesDone = 0;
  let bytesTotal = knownBytesTotal;
  // Content key (SHA-256 + size) → where those bytes already are in the data blob.
  const stored = opts.dedupe
    ? new Map<string, { offset: number; storedSize: number; compression: Compression }>()
    : undefined;
  try {
    while (head < items.length) {
      const index = head;
      await co.waitUntil(() => {
        const j = jobs[index];
        return j !== undefined && (j.done || j.chunks.length > 0);
      });
      const job = jobs[index]!;
      let location: { offset: number; storedSize: number; compression: Compression } | undefined;
      let key: string | undefined;
      if (stored !== undefined && job.done && job.size > 0) {
        key = `${Buffer.from(job.sha256).toString("latin1")}:${job.size}`;
        // Only buffered files are replaced by a reference: whether a streamed file's bytes were already written
        // depends on timing, and the output must not.
        location = job.buffered ? stored.get(key) : undefined;
        if (location !== undefined) {
          for (const chunk of job.chunks) pipeline.release(chunk.byteLength);
          job.chunks.length = 0;
        }
      }
      while (job.chunks.length > 0) {
        const chunk = job.chunks.shift()!;
        dataHash.update(chunk);
        await out.write(chunk);
        offset += chunk.byteLength;
        sweep(chunk.byteLength);
        pipeline.release(chunk.byteLength);
      }
      if (!job.done) continue;
      const item = items[index]!;
      const fixed = opts.fixed;
      if (location === undefined) {
        location = {
          offset: offset - job.storedSize,
          storedSize: job.storedSize,
          compression: job.compression,
        };
        if (key !== undefined && !stored!.has(key)) stored!.set(key, location);
      }
      entries[index] = {
        path: item.path,
        offset: location.offset,
        storedSize: location.storedSize,
        size: job.size,
        sha256: job.sha256,
        mode: item.mode,
        uid: fixed?.uid ?? item.uid,
        gid: fixed?.gid ?? item.gid,
        mtimeNs: fixed?.mtimeNs ?? item.mtimeNs,
        compression: location.compression,
      };
      jobs[index] = undefined;
      if (item.size === undefined) bytesTotal += job.size;
      bytesDone += job.size;
      head++;
      co.notify();
      progress({
        stage: "writing",
        filesDone: head,
        filesTotal: items.length,
        bytesDone,
        bytesTotal,
        path: item.path,
      });
    }
  } catch (error) {
    co.fail(error);
  }
  // Every worker has closed its file handles before we report anything.
  await Promise.all(workers);
  co.check();
  let storedSize = 0;
  for (const entry of entries) storedSize += entry.storedSize;
  return { entries, dataSize: offset, dataSha256: dataHash.digest(), totalSize: bytesDone, storedSize };
}

// ---------------------------------------------------------------------------------------------------------
// Entry point

/**
 * Creates an archive from a directory (walked recursively; regular files only) or from a programmatic list
 * of files, streaming the data blob to `data` and returning the index.
 *
 * - Entries are byte-sorted by path (unsigned UTF-8 order); the data blob follows the same order.
 * - Symlinks (never followed), FIFOs, sockets, devices and names that are not UTF-8 are skipped and listed in
 *   `result.skipped`. Directories are not entries: empty directories vanish.
 * - Metadata: `mode & 0o777`, uid/gid and nanosecond mtime from `lstat` (see `deterministic`).
 * - `data` is ended (Node) or closed (web) on success, so the promise resolves after every byte was accepted;
 *   on failure it is destroyed (Node, without an error event) or aborted (web).
 * - Memory is bounded: file metadata, a 16 MiB in-flight budget and one buffered file (≤ 4 MiB) per worker.
 * - Trees of many small files use worker threads (one per core, up to 8) for reading, hashing and
 *   compressing them; they are stopped before the promise settles.
 *
 * @throws BlobError `ERR_INVALID_ARGUMENT` (bad option, duplicate path), `ERR_INVALID_PATH`,
 *   `ERR_LIMIT_EXCEEDED` (`too-many-files`, `file-too-large`, `index-too-large`), `ERR_FILE_CHANGED`,
 *   `ERR_NOT_FOUND` / `ERR_NOT_DIRECTORY` (source), `ERR_IO`; or `signal.reason` when aborted.
 * @public
 */
export function createArchive(
  input: string | Iterable<ArchiveInput> | AsyncIterable<ArchiveInput>,
  data: WritableStream<Uint8Array> | NodeJS.WritableStream,
  options: CreateOptions = {},
): Promise<CreateResult> {
  return createArchiveInternal(input, data, options, {});
}

/**
 * {@link createArchive} with internal knobs (used by `createLocalArchive`).
 *
 * @internal
 */
export async function createArchiveInternal(
  input: string | Iterable<ArchiveInput> | AsyncIterable<ArchiveInput>,
  data: WritableStream<Uint8Array> | NodeJS.WritableStream,
  options: CreateOptions,
  internal: InternalCreateOptions,
): Promise<CreateResult> {
  const opts = resolveOptions(options ?? {});
  throwIfAborted(opts.signal);
  const co = new Coordinator();
  const out = openOutput(data, co);
  const signal = opts.signal;
  const onAbort = (): void => co.fail(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const progress = (event: CreateProgress): void => {
    if (opts.onProgress === undefined) return;
    opts.onProgress(event);
  };
  // Small files of a directory go to worker threads once there are enough of them to pay for starting
  // the threads; a test setting `smallFileThreads` starts them at the first small file.
  const threads = internal.smallFileThreads ?? Math.min(availableParallelism(), POOL_MAX_THREADS);
  let pool: SmallFilePool | undefined;
  const smallFiles = {
    after: threads === 0 ? 0 : internal.smallFileThreads === undefined ? POOL_MIN_FILES : 1,
    found(): void {
      pool = new SmallFilePool(threads, opts.strict, opts.level, internal.smallFileWorker);
      co.cleanups.add(() => void pool?.close());
    },
  };
  try {
    progress({ stage: "scanning", filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 });
    const skipped: SkippedFile[] = [];
    const items =
      typeof input === "string"
        ? await co.race(scanDirectory(input, opts, skipped, internal, smallFiles))
        : await co.race(collectInputs(input, opts));
    sortItems(items);
    skipped.sort((a, b) => comparePaths(a.path, b.path));
    let knownBytes = 0;
    for (const item of items) knownBytes += item.size ?? 0;
    progress({
      stage: "scanning",
      filesDone: 0,
      filesTotal: items.length,
      bytesDone: 0,
      bytesTotal: knownBytes,
    });
    co.check();

    const written = await writeItems(items, out, opts, co, progress, knownBytes, pool);
    await out.close();

    const index = encodeIndex({
      entries: written.entries,
      dataSize: written.dataSize,
      dataSha256: written.dataSha256,
    });
    if (index.byteLength > opts.limits.maxIndexSize) {
      throw new BlobError(
        "ERR_LIMIT_EXCEEDED",
        `index is ${index.byteLength} bytes, limit ${opts.limits.maxIndexSize}`,
        { reason: "index-too-large" },
      );
    }
    progress({
      stage: "done",
      filesDone: items.length,
      filesTotal: items.length,
      bytesDone: written.totalSize,
      bytesTotal: written.totalSize,
    });
    return {
      index,
      indexDigest: sha256Digest(index),
      dataDigest: `sha256:${bytesToHex(written.dataSha256)}`,
      dataSize: written.dataSize,
      fileCount: items.length,
      totalSize: written.totalSize,
      storedSize: written.storedSize,
      skipped,
    };
  } catch (error) {
    const reason = signal?.aborted ? signal.reason : error;
    co.fail(reason);
    out.abort(reason);
    throw reason;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await pool?.close();
  }
}
