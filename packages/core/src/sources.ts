import type { FileHandle } from "node:fs/promises";
import { open, realpath } from "node:fs/promises";
import { sha256Hex } from "./digest.ts";
import { BlobError, isBlobError, throwIfAborted } from "./errors.ts";
import type { ByteSource, ReadOptions } from "./source.ts";

/** Default chunk size of {@link streamSource} and of the built-in sources' `stream()`: 1 MiB. */
const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/**
 * Throws `ERR_INVALID_ARGUMENT` unless `offset` and `length` are non-negative safe integers, as the
 * {@link ByteSource} contract requires. For `ByteSource` implementations.
 *
 * @public
 */
export function assertReadArguments(offset: number, length: number, subject: string): void {
  for (const [name, value] of [
    ["offset", offset],
    ["length", length],
  ] as const) {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `${name} must be a non-negative integer, got ${String(value)}`,
        {
          subject,
        },
      );
    }
  }
}

/**
 * The `ERR_OUT_OF_RANGE` error of a read past the end of a {@link ByteSource}. For implementations.
 *
 * @public
 */
export function outOfRangeError(offset: number, length: number, size: number, subject: string): BlobError {
  return new BlobError(
    "ERR_OUT_OF_RANGE",
    `read of ${length} bytes at offset ${offset} is beyond the end (size ${size})`,
    { subject },
  );
}

/** Checks `offset`/`length` against the {@link ByteSource} contract and `size`. */
function checkRange(offset: number, length: number, size: number, subject: string): void {
  assertReadArguments(offset, length, subject);
  if (offset > size || length > size - offset) throw outOfRangeError(offset, length, size, subject);
}

function checkChunkSize(chunkSize: number): void {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `chunkSize must be a positive integer, got ${String(chunkSize)}`,
    );
  }
}

function closedError(subject: string): BlobError {
  return new BlobError("ERR_CLOSED", "byte source is closed", { subject });
}

/**
 * A pull-based stream of `length` bytes at `offset`, produced by `readChunk` calls of at most `chunkSize`
 * bytes. One chunk is read ahead at most, so memory stays bounded whatever the range. `prepare` runs
 * before the first chunk (validation, size lookup) so that errors surface through the stream.
 */
function chunkedStream(
  readChunk: (offset: number, length: number, signal: AbortSignal) => Promise<Uint8Array>,
  prepare: (signal: AbortSignal) => Promise<void> | void,
  offset: number,
  length: number,
  signal: AbortSignal | undefined,
  chunkSize: number,
): ReadableStream<Uint8Array> {
  // Cancelling the stream aborts the chunk read in flight, so a consumer that stops early frees the source.
  const internal = new AbortController();
  const combined = signal === undefined ? internal.signal : AbortSignal.any([signal, internal.signal]);
  let position = offset;
  const end = offset + length;
  let finished = false;
  let onAbort: (() => void) | undefined;
  const detach = (): void => {
    finished = true;
    if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
  };
  return new ReadableStream<Uint8Array>(
    {
      async start(controller) {
        throwIfAborted(signal);
        if (signal !== undefined) {
          // Erroring the controller drops queued chunks, so nothing is delivered after an abort.
          onAbort = () => {
            if (!finished) {
              detach();
              controller.error(signal.reason);
            }
          };
          signal.addEventListener("abort", onAbort, { once: true });
        }
        try {
          await prepare(combined);
          throwIfAborted(signal);
        } catch (error) {
          detach();
          throw error;
        }
      },
      async pull(controller) {
        if (finished) return;
        try {
          throwIfAborted(signal);
          if (position >= end) {
            detach();
            controller.close();
            return;
          }
          const n = Math.min(chunkSize, end - position);
          const chunk = await readChunk(position, n, combined);
          throwIfAborted(signal);
          if (finished) return;
          position += n;
          controller.enqueue(chunk);
          if (position >= end) {
            detach();
            controller.close();
          }
        } catch (error) {
          if (finished) return;
          detach();
          controller.error(signal?.aborted ? signal.reason : error);
        }
      },
      cancel(reason) {
        detach();
        internal.abort(reason);
      },
    },
    { highWaterMark: 1 },
  );
}

/** Options of {@link streamSource}. @public */
export interface StreamSourceOptions extends ReadOptions {
  /** Bytes per chunk when the source has no `stream()` of its own. Default 1 MiB. */
  chunkSize?: number | undefined;
}

/**
 * Streams `length` bytes at `offset` of any {@link ByteSource}: through `source.stream` when the source has
 * one, otherwise through sequential `read`s of `chunkSize` bytes, pulled on demand (at most one chunk is read
 * ahead, so memory stays bounded). Invalid ranges error the stream (`ERR_INVALID_ARGUMENT`,
 * `ERR_OUT_OF_RANGE`) before any byte is delivered; an abort errors it with `signal.reason`. An invalid
 * `chunkSize` throws `ERR_INVALID_ARGUMENT` synchronously.
 *
 * @public
 */
export function streamSource(
  source: ByteSource,
  offset: number,
  length: number,
  options: StreamSourceOptions = {},
): ReadableStream<Uint8Array> {
  const { signal, chunkSize = DEFAULT_CHUNK_SIZE } = options;
  checkChunkSize(chunkSize);
  if (typeof source.stream === "function") return source.stream(offset, length, { signal });
  return chunkedStream(
    (at, n, s) => source.read(at, n, { signal: s }),
    async (s) => {
      // Validate the whole range up front: a stream that fails half-way after delivering data is worse.
      checkRange(offset, length, Number.MAX_SAFE_INTEGER, source.id);
      checkRange(offset, length, await source.size({ signal: s }), source.id);
    },
    offset,
    length,
    signal,
    chunkSize,
  );
}

/** Options of {@link MemorySource}. @public */
export interface MemorySourceOptions {
  /** Identity of the bytes. Default `memory:<first 16 hex digits of their SHA-256>`. */
  id?: string | undefined;
}

/**
 * A {@link ByteSource} over bytes in memory. The bytes are not copied: do not modify them while the source
 * is in use. Reads return copies, so callers may modify what they get.
 *
 * @public
 */
export class MemorySource implements ByteSource {
  readonly #bytes: Uint8Array;
  #id: string | undefined;
  #closed = false;

  constructor(bytes: Uint8Array, options: MemorySourceOptions = {}) {
    if (!(bytes instanceof Uint8Array)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "MemorySource needs a Uint8Array");
    }
    this.#bytes = bytes;
    this.#id = options.id;
  }

  /** Identity of the bytes (hashed lazily, on first use, when not given). */
  get id(): string {
    this.#id ??= `memory:${sha256Hex(this.#bytes).slice(0, 16)}`;
    return this.#id;
  }

  /** The size in bytes. */
  async size(options: ReadOptions = {}): Promise<number> {
    throwIfAborted(options.signal);
    if (this.#closed) throw closedError("memory");
    return this.#bytes.byteLength;
  }

  /** Reads exactly `length` bytes at `offset` (a copy). */
  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    const { signal } = options;
    throwIfAborted(signal);
    if (this.#closed) throw closedError("memory");
    checkRange(offset, length, this.#bytes.byteLength, "memory");
    const out = this.#bytes.slice(offset, offset + length);
    // Yield once so that an abort issued right after the call still wins, as it does for I/O-backed sources.
    await undefined;
    throwIfAborted(signal);
    if (this.#closed) throw closedError("memory");
    return out;
  }

  /** Streams `length` bytes at `offset` in 1 MiB chunks (copies). */
  stream(offset: number, length: number, options: ReadOptions = {}): ReadableStream<Uint8Array> {
    return chunkedStream(
      async (at, n) => {
        if (this.#closed) throw closedError("memory");
        return this.#bytes.slice(at, at + n);
      },
      () => {
        if (this.#closed) throw closedError("memory");
        checkRange(offset, length, this.#bytes.byteLength, "memory");
      },
      offset,
      length,
      options.signal,
      DEFAULT_CHUNK_SIZE,
    );
  }

  /** Marks the source closed; later reads reject with `ERR_CLOSED`. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Same as {@link MemorySource.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Options of {@link FileSource.open}. @public */
export interface FileSourceOptions extends ReadOptions {
  /** Identity of the bytes. Default `file:<real path>:<size>:<mtime in ns>`. */
  id?: string | undefined;
}

/**
 * A {@link ByteSource} over a local file: one file handle, positional reads (concurrent reads do not share a
 * file position). The size is taken when the file is opened; a read that comes up short because the file
 * shrank since rejects with `ERR_SOURCE_CHANGED`.
 *
 * @public
 */
export class FileSource implements ByteSource {
  /** Identity of the bytes. */
  readonly id: string;
  /** The path the source was opened with. */
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #size: number;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(path: string, handle: FileHandle, size: number, id: string) {
    this.path = path;
    this.#handle = handle;
    this.#size = size;
    this.id = id;
  }

  /**
   * Opens `path` for reading. Rejects with `ERR_NOT_FOUND` when it does not exist, `ERR_IS_DIRECTORY` for a
   * directory, `ERR_IO` for other failures.
   */
  static async open(path: string, options: FileSourceOptions = {}): Promise<FileSource> {
    const { signal } = options;
    throwIfAborted(signal);
    if (typeof path !== "string" || path === "") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "FileSource.open needs a path");
    }
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      throw fsError(error, path);
    }
    try {
      const stat = await handle.stat({ bigint: true });
      if (stat.isDirectory()) throw new BlobError("ERR_IS_DIRECTORY", "is a directory", { subject: path });
      if (stat.size > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new BlobError("ERR_LIMIT_EXCEEDED", "file too large", { subject: path });
      }
      const size = Number(stat.size);
      const id = options.id ?? `file:${await realpath(path)}:${size}:${stat.mtimeNs}`;
      throwIfAborted(signal);
      return new FileSource(path, handle, size, id);
    } catch (error) {
      await handle.close().catch(() => {});
      throw signal?.aborted ? signal.reason : fsError(error, path);
    }
  }

  /** The size in bytes, as it was when the file was opened. */
  async size(options: ReadOptions = {}): Promise<number> {
    throwIfAborted(options.signal);
    if (this.#closed) throw closedError(this.path);
    return this.#size;
  }

  /** Reads exactly `length` bytes at `offset`. */
  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    const { signal } = options;
    throwIfAborted(signal);
    if (this.#closed) throw closedError(this.path);
    checkRange(offset, length, this.#size, this.path);
    const out = new Uint8Array(length);
    let filled = 0;
    try {
      while (filled < length) {
        const { bytesRead } = await this.#handle.read(out, filled, length - filled, offset + filled);
        throwIfAborted(signal);
        if (bytesRead === 0) {
          throw new BlobError(
            "ERR_SOURCE_CHANGED",
            `file ended at ${offset + filled} bytes, ${this.#size} expected: it shrank after it was opened`,
            { subject: this.path, reason: "shrunk" },
          );
        }
        filled += bytesRead;
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (this.#closed) throw closedError(this.path);
      throw fsError(error, this.path);
    }
    throwIfAborted(signal);
    return out;
  }

  /** Streams `length` bytes at `offset` through positional reads of 1 MiB, one chunk read ahead. */
  stream(offset: number, length: number, options: ReadOptions = {}): ReadableStream<Uint8Array> {
    return chunkedStream(
      (at, n, signal) => this.read(at, n, { signal }),
      () => {
        if (this.#closed) throw closedError(this.path);
        checkRange(offset, length, this.#size, this.path);
      },
      offset,
      length,
      options.signal,
      DEFAULT_CHUNK_SIZE,
    );
  }

  /** Closes the file handle (after reads in flight finish). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= this.#handle.close().catch(() => {});
    await this.#closing;
  }

  /** Same as {@link FileSource.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Maps a node:fs error to a BlobError (BlobErrors pass through). */
function fsError(error: unknown, subject: string): unknown {
  if (isBlobError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ENOENT") return new BlobError("ERR_NOT_FOUND", "no such file", { subject, cause: error });
  if (code === "EISDIR")
    return new BlobError("ERR_IS_DIRECTORY", "is a directory", { subject, cause: error });
  return new BlobError("ERR_IO", `cannot read file: ${String(code ?? error)}`, { subject, cause: error });
}
