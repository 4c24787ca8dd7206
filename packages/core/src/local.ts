/**
 * Opening an archive stored as two local files (`index.blob` + `data.blob`, the layout `createLocalArchive`
 * and the Go tool's `CreateBlob` write).
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Archive, type CacheErrorContext } from "./archive.ts";
import type { Cache } from "./cache.ts";
import { BlobError, throwIfAborted } from "./errors.ts";
import { decodeIndex } from "./format/index-codec.ts";
import { type Limits, resolveLimits } from "./limits.ts";
import { FileSource } from "./sources.ts";

/** Options of {@link openLocalArchive}. @public */
export interface OpenLocalArchiveOptions {
  /** File name of the index inside the directory. Default `"index.blob"`. */
  indexName?: string | undefined;
  /** File name of the data blob inside the directory. Default `"data.blob"`. */
  dataName?: string | undefined;
  /** Optional file-content cache (see `Archive.open`). */
  cache?: Cache | undefined;
  /** Limits for the index and reads. */
  limits?: Partial<Limits> | undefined;
  /** Files larger than this bypass the content cache. */
  maxCachedFileSize?: number | undefined;
  /** Called when a cache operation failed. */
  onCacheError?: ((error: unknown, context: CacheErrorContext) => void) | undefined;
  /** Aborts opening. */
  signal?: AbortSignal | undefined;
}

function fsError(error: unknown, path: string): BlobError {
  const code = (error as { code?: string } | null)?.code;
  if (code === "ENOENT")
    return new BlobError("ERR_NOT_FOUND", `no such file: ${path}`, { subject: path, cause: error });
  return new BlobError("ERR_IO", `cannot read ${path}: ${(error as Error)?.message}`, {
    subject: path,
    cause: error,
  });
}

/**
 * Opens the archive in `dir` (`index.blob` + `data.blob` by default). The index size is checked against
 * `limits.maxIndexSize` before it is read; the data file is opened as a {@link FileSource} whose id is
 * `sha256:<data hash>` when the index records the data hash (so block-cache keys survive moves). The
 * returned {@link Archive} owns the file handle: call `close()` (or `await using`).
 *
 * @public
 */
export async function openLocalArchive(dir: string, options: OpenLocalArchiveOptions = {}): Promise<Archive> {
  const { signal } = options;
  throwIfAborted(signal);
  const limits = resolveLimits(options.limits);
  const indexPath = join(dir, options.indexName ?? "index.blob");
  const dataPath = join(dir, options.dataName ?? "data.blob");
  let indexSize: number;
  try {
    const info = await stat(indexPath);
    if (!info.isFile()) {
      throw new BlobError(
        info.isDirectory() ? "ERR_IS_DIRECTORY" : "ERR_INVALID_ARGUMENT",
        `${indexPath} is not a regular file`,
        {
          subject: indexPath,
        },
      );
    }
    indexSize = info.size;
  } catch (error) {
    throw error instanceof BlobError ? error : fsError(error, indexPath);
  }
  if (indexSize > limits.maxIndexSize) {
    throw new BlobError(
      "ERR_LIMIT_EXCEEDED",
      `index ${indexPath} is ${indexSize} bytes, more than maxIndexSize ${limits.maxIndexSize}`,
      { reason: "max-index-size", subject: indexPath },
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(indexPath, { signal });
  } catch (error) {
    throwIfAborted(signal);
    throw fsError(error, indexPath);
  }
  // The file may have grown between stat and read.
  if (bytes.byteLength > limits.maxIndexSize) {
    throw new BlobError(
      "ERR_LIMIT_EXCEEDED",
      `index ${indexPath} exceeds maxIndexSize ${limits.maxIndexSize}`,
      {
        reason: "max-index-size",
        subject: indexPath,
      },
    );
  }
  const index = decodeIndex(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { limits });
  let source: FileSource;
  try {
    source = await FileSource.open(
      dataPath,
      index.dataSha256 !== undefined ? { id: `sha256:${index.dataSha256}` } : undefined,
    );
  } catch (error) {
    if (error instanceof BlobError) throw error;
    throw fsError(error, dataPath);
  }
  return Archive.open({
    index,
    source,
    ownsSource: true,
    cache: options.cache,
    limits,
    signal,
    maxCachedFileSize: options.maxCachedFileSize,
    onCacheError: options.onCacheError,
  });
}
