/**
 * Stable error codes of every blobkit package. Codes never change meaning; new ones may be added.
 *
 * @public
 */
export type BlobErrorCode =
  /** A caller passed an argument of the wrong type, range or shape. */
  | "ERR_INVALID_ARGUMENT"
  /** A path is not a valid archive path (absolute, `..`, empty segment, NUL, too long, not UTF-8). */
  | "ERR_INVALID_PATH"
  /** A file, directory, blob, manifest or cache entry does not exist. */
  | "ERR_NOT_FOUND"
  /** A file operation was asked of a directory. */
  | "ERR_IS_DIRECTORY"
  /** A directory operation was asked of a file. */
  | "ERR_NOT_DIRECTORY"
  /** The destination already exists and overwriting was not allowed. */
  | "ERR_EXISTS"
  /** Bytes do not match their expected SHA-256, digest or length. */
  | "ERR_INTEGRITY"
  /** A compressed entry could not be decompressed (corrupt frame, wrong size, window too large). */
  | "ERR_DECOMPRESSION"
  /** An index blob is structurally invalid (bounds, required fields, paths, duplicates, offsets). */
  | "ERR_INVALID_INDEX"
  /** A manifest is malformed or is not a blobkit / meigma-blob v1 archive manifest. */
  | "ERR_INVALID_MANIFEST"
  /** A format version, hash algorithm or compression this release does not know. */
  | "ERR_UNSUPPORTED"
  /** A configured limit (file count, file size, index size, path length, decoder memory) was exceeded. */
  | "ERR_LIMIT_EXCEEDED"
  /** A read asked for bytes beyond the end of a byte source. */
  | "ERR_OUT_OF_RANGE"
  /** The object was used after `close()`. */
  | "ERR_CLOSED"
  /** An extraction target would escape its destination directory. */
  | "ERR_PATH_ESCAPE"
  /** A source file changed while an archive was being created from it. */
  | "ERR_FILE_CHANGED"
  /** A file-system or other local I/O operation failed. */
  | "ERR_IO"
  /** A cache backend failed; readers treat this as a miss. */
  | "ERR_CACHE"
  /** A remote object changed between two reads of the same source. */
  | "ERR_SOURCE_CHANGED"
  /** A server ignored a `Range` request. */
  | "ERR_RANGE_NOT_SUPPORTED"
  /** A network request failed or timed out. */
  | "ERR_NETWORK"
  /** Credentials are missing or were rejected. */
  | "ERR_UNAUTHORIZED"
  /** Credentials were accepted but do not grant the operation. */
  | "ERR_DENIED"
  /** A signature or policy check rejected the artifact. */
  | "ERR_POLICY";

/** Options accepted by {@link BlobError}. @public */
export interface BlobErrorOptions {
  /** The underlying error, kept for debugging. */
  cause?: unknown;
  /** A finer, stable sub-reason (for example `"duplicate-path"` for `ERR_INVALID_INDEX`). */
  reason?: string;
  /** The archive path, key or URL (without credentials) the error is about. */
  subject?: string;
}

/**
 * The one error class every blobkit package throws. Switch on {@link BlobError.code}, never on the message.
 *
 * @public
 */
export class BlobError extends Error {
  /** Stable machine-readable code. */
  readonly code: BlobErrorCode;
  /** Optional finer sub-reason, stable within a code. */
  readonly reason: string | undefined;
  /** The path, key or URL concerned, if any. Never contains credentials. */
  readonly subject: string | undefined;

  constructor(code: BlobErrorCode, message: string, options: BlobErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "BlobError";
    this.code = code;
    this.reason = options.reason;
    this.subject = options.subject;
  }
}

/**
 * True when `error` is a {@link BlobError}, optionally with the given code. Works across duplicated copies of
 * the package (it checks the shape, not the prototype).
 *
 * @public
 */
export function isBlobError(error: unknown, code?: BlobErrorCode): error is BlobError {
  if (typeof error !== "object" || error === null) return false;
  const e = error as { name?: unknown; code?: unknown };
  if (e.name !== "BlobError" || typeof e.code !== "string") return false;
  return code === undefined || e.code === code;
}

/** Throws `signal.reason` when the signal is aborted. @public */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/**
 * `promise`, or a rejection with `signal.reason` as soon as `signal` aborts — whichever comes first. The
 * work behind `promise` carries on (it may be shared with other callers); a later rejection of it is then
 * handled, never unhandled. Without a signal, `promise` itself.
 *
 * @public
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
