/**
 * The synchronous small-file step of archive creation: open, check, read, hash and compress one small file
 * of a directory in one go. Archive creation runs it on worker threads (see `create-pool.ts`) when a tree
 * has many small files, and on the calling thread otherwise; both give the same bytes and the same errors.
 *
 * Internal module.
 */
import { createHash } from "node:crypto";
import type { BigIntStats } from "node:fs";
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import { BlobError, type BlobErrorCode, isBlobError } from "./errors.ts";
import { zstdCompressSync } from "./zstd.ts";

/** What the scan learnt about a small file, and what to do with it. Plain data: it crosses to workers. */
export interface SmallFileTask {
  /** Archive path (for errors). */
  path: string;
  /** Absolute path on disk. */
  abs: string;
  /** Size at scan time: exactly this many bytes are read. */
  size: number;
  dev: bigint;
  ino: bigint;
  mtimeNs: bigint;
  rawMode: number;
  /** Try zstd (the skip-compression rules already applied). */
  compress: boolean;
}

/** The stored form of a small file. */
export interface SmallFileResult {
  sha256: Uint8Array;
  /** The bytes that go into the data blob: zstd frame, or the raw bytes when zstd did not shrink them. */
  stored: Uint8Array;
  zstd: boolean;
}

/** `ERR_FILE_CHANGED` for a source file that changed between the scan and the read. */
export function fileChanged(path: string, message: string, reason: string): BlobError {
  return new BlobError("ERR_FILE_CHANGED", `file changed during archive creation: ${path}: ${message}`, {
    reason,
    subject: path,
  });
}

/** `ERR_IO` naming what failed and why. */
export function ioError(message: string, cause: unknown, subject?: string): BlobError {
  return new BlobError("ERR_IO", `${message}: ${(cause as Error)?.message ?? String(cause)}`, {
    cause,
    subject,
  });
}

/** What the scan recorded about a source file, checked again when it is read. */
export type ScannedFile = Pick<SmallFileTask, "dev" | "ino" | "mtimeNs" | "rawMode">;

/** The error for a source file that could not be opened: gone or swapped for a symlink, or an I/O error. */
export function openError(path: string, cause: unknown): BlobError {
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ELOOP" || code === "ENOTDIR") {
    return fileChanged(path, "it was removed or replaced by a symlink", "replaced");
  }
  return ioError(`cannot open ${path}`, cause, path);
}

/** Throws `ERR_FILE_CHANGED` unless the opened file (`st`) is the scanned regular file. */
export function assertScannedFile(path: string, st: BigIntStats, scanned: ScannedFile): void {
  if (!st.isFile()) throw fileChanged(path, "it is no longer a regular file", "replaced");
  if (st.dev !== scanned.dev || st.ino !== scanned.ino) {
    throw fileChanged(path, "the opened file is not the scanned one", "replaced");
  }
}

/** Strict change detection: throws `ERR_FILE_CHANGED` unless size, mtime and mode are still the scanned ones. */
export function assertUnchanged(path: string, st: BigIntStats, size: number, scanned: ScannedFile): void {
  if (Number(st.size) !== size || st.mtimeNs !== scanned.mtimeNs || Number(st.mode) !== scanned.rawMode) {
    throw fileChanged(path, "size, mtime or mode changed while it was read", "metadata-changed");
  }
}

/** Flags for opening source files: never follow a symlink swapped in after the scan. */
export const OPEN_FLAGS: number =
  fsConstants.O_RDONLY |
  ((fsConstants as { O_NOFOLLOW?: number }).O_NOFOLLOW ?? 0) |
  // A file swapped for a FIFO after the scan must not block a thread forever.
  ((fsConstants as { O_NONBLOCK?: number }).O_NONBLOCK ?? 0);

/**
 * Reads a small file whole with synchronous calls (open, fstat, read and close of a small file cost a few
 * microseconds each, far less than thread-pool round trips), checking that it is still the scanned regular
 * file, that it has the scanned size and, when `strict`, that size, mtime and mode did not change meanwhile.
 * With `into` (large enough), the bytes are read into it and a view of it is returned.
 */
export function readSmallFileSync(task: SmallFileTask, strict: boolean, into?: Buffer): Buffer {
  const { path, size } = task;
  let fd: number;
  try {
    fd = openSync(task.abs, OPEN_FLAGS);
  } catch (cause) {
    throw openError(path, cause);
  }
  try {
    assertScannedFile(path, fstatSync(fd, { bigint: true }), task);
    const bytes =
      into !== undefined && into.byteLength >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const read = readSync(fd, bytes, filled, size - filled, filled);
      if (read === 0) throw fileChanged(path, `read ${filled} bytes, expected ${size}`, "size-changed");
      filled += read;
    }
    if (strict) assertUnchanged(path, fstatSync(fd, { bigint: true }), size, task);
    return bytes;
  } catch (error) {
    if (isBlobError(error)) throw error;
    throw ioError(`cannot read ${path}`, error, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Hashes and (if the task says so) compresses bytes already read; a zstd frame that does not shrink the
 * file is dropped in favour of the raw bytes, which are smaller and cheaper to read.
 */
export function storeSmallBytes(bytes: Uint8Array, compress: boolean, level: number): SmallFileResult {
  const sha256 = createHash("sha256").update(bytes).digest();
  if (compress && bytes.byteLength > 0) {
    const compressed = zstdCompressSync(bytes, level);
    if (compressed.byteLength < bytes.byteLength) return { sha256, stored: compressed, zstd: true };
  }
  return { sha256, stored: bytes, zstd: false };
}

/** {@link readSmallFileSync} then {@link storeSmallBytes}. */
export function storeSmallFileSync(task: SmallFileTask, strict: boolean, level: number): SmallFileResult {
  return storeSmallBytes(readSmallFileSync(task, strict), task.compress, level);
}

/** `ArrayBuffer.prototype.transfer` (ES2024; in every supported Node). */
type Transferable = ArrayBuffer & { transfer(length?: number): ArrayBuffer };

/**
 * Frees the memory behind `bytes` now instead of at the next garbage collection, when `bytes` spans a
 * buffer of its own (never a slice of Node's shared small-buffer pool). Only for buffers nobody else holds:
 * every view of the buffer becomes empty. Dead file buffers otherwise piled up to tens of MiB between
 * collections (V8 collects for external memory only past a soft limit).
 */
export function releaseBuffer(bytes: Uint8Array): void {
  if (bytes.buffer.byteLength > Buffer.poolSize) (bytes.buffer as Transferable).transfer(0);
}

/** `buffer`'s first `length` bytes in a buffer of exactly that size (`buffer` is detached). */
export function shrinkBuffer(buffer: ArrayBuffer, length: number): ArrayBuffer {
  return (buffer as Transferable).transfer(length);
}

/** A `BlobError` in a form that survives `postMessage` (structured clone keeps only standard fields). */
export interface SerializedError {
  code: BlobErrorCode;
  message: string;
  reason: string | undefined;
  subject: string | undefined;
}

/** Flattens an error thrown by the small-file step for the trip back from a worker. */
export function serializeError(error: unknown): SerializedError {
  if (isBlobError(error)) {
    return { code: error.code, message: error.message, reason: error.reason, subject: error.subject };
  }
  return {
    code: "ERR_IO",
    message: (error as Error)?.message ?? String(error),
    reason: undefined,
    subject: undefined,
  };
}

/** Rebuilds the `BlobError` a worker reported. */
export function deserializeError(error: SerializedError): BlobError {
  return new BlobError(error.code, error.message, { reason: error.reason, subject: error.subject });
}
