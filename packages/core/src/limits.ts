import { BlobError } from "./errors.ts";

/**
 * Limits shared by archive creation and reading. The defaults are chosen so that every archive blobkit
 * creates with default options is readable by blobkit with default options (the Go tool's defaults
 * contradict each other; ours do not): `maxIndexSize` leaves ≥ 250 bytes per entry at `maxFiles`.
 *
 * Note for interop: meigma/blob (Go) readers default to 256 MiB per file and an 8 MiB index.
 *
 * @public
 */
export interface Limits {
  /** Most entries one archive may hold. Default 1 000 000. */
  maxFiles: number;
  /** Largest index blob in bytes. Default 256 MiB. */
  maxIndexSize: number;
  /** Largest single file (stored and original size) in bytes. Default 64 GiB. */
  maxFileSize: number;
  /** Longest path in UTF-8 bytes. Default 4096. */
  maxPathLength: number;
  /** Largest zstd window a decoder may allocate, in bytes (rounded down to a power of two). Default 128 MiB. */
  maxDecoderMemory: number;
}

/** The default {@link Limits}. @public */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFiles: 1_000_000,
  maxIndexSize: 256 * 1024 * 1024,
  maxFileSize: 64 * 1024 * 1024 * 1024,
  maxPathLength: 4096,
  maxDecoderMemory: 128 * 1024 * 1024,
});

/** Merges partial limits over the defaults, validating each value. @public */
export function resolveLimits(partial: Partial<Limits> | undefined): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS, ...partial };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `limit ${key} must be a positive safe integer, got ${String(value)}`,
      );
    }
  }
  return limits;
}
