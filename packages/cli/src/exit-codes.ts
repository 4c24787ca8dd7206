import { isBlobError } from "@blobkit/core";

/**
 * Exit codes of the `blob` command. Stable: scripts may switch on them.
 *
 * @public
 */
export const EXIT: Readonly<{
  OK: 0;
  ERROR: 1;
  USAGE: 2;
  NOT_FOUND: 3;
  INTEGRITY: 4;
  POLICY: 5;
  AUTH: 6;
  INTERRUPTED: 130;
}> = Object.freeze({
  /** Success. */
  OK: 0,
  /** Any other error (network, I/O, unsupported, limits, existing destination…). */
  ERROR: 1,
  /** Usage error: unknown command or option, missing or malformed argument, invalid reference or path. */
  USAGE: 2,
  /** Not found: reference, tag, repository, layout, blob, or a path inside the archive. */
  NOT_FOUND: 3,
  /**
   * Integrity or format failure: a hash, digest or size mismatch, a corrupt compressed entry, an invalid
   * index (including a traversal path such as `../x` in it) or manifest, an extraction target that would
   * escape its destination.
   */
  INTEGRITY: 4,
  /** A policy or signature check rejected the artifact. */
  POLICY: 5,
  /** Authentication or authorization failure (missing or rejected credentials, access denied). */
  AUTH: 6,
  /** Interrupted (SIGINT / Ctrl-C): in-flight requests aborted, temporary files removed. */
  INTERRUPTED: 130,
} as const);

/** One of the {@link EXIT} values. @public */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A documented row of the exit-code table (used by the README and the generated reference). @public */
export const EXIT_CODE_TABLE: readonly { code: ExitCode; meaning: string; errorCodes: string }[] = [
  { code: 0, meaning: "success", errorCodes: "" },
  {
    code: 1,
    meaning: "error (network, I/O, limits, unsupported, existing destination)",
    errorCodes: "everything not listed below",
  },
  {
    code: 2,
    meaning: "usage error (unknown command/option, bad argument, invalid reference or archive path)",
    errorCodes: "`ERR_INVALID_ARGUMENT`, `ERR_INVALID_PATH`, parse errors",
  },
  {
    code: 3,
    meaning: "not found (reference, tag, repository, layout, blob, path in the archive)",
    errorCodes: "`ERR_NOT_FOUND`",
  },
  {
    code: 4,
    meaning:
      "integrity/format failure (hash, digest or size mismatch; corrupt entry; invalid index or manifest, e.g. a `../` path in an index; unsafe extraction target)",
    errorCodes:
      "`ERR_INTEGRITY`, `ERR_DECOMPRESSION`, `ERR_INVALID_INDEX`, `ERR_INVALID_MANIFEST`, `ERR_SOURCE_CHANGED`, `ERR_PATH_ESCAPE`",
  },
  { code: 5, meaning: "policy or signature violation", errorCodes: "`ERR_POLICY`" },
  {
    code: 6,
    meaning: "authentication/authorization failure",
    errorCodes: "`ERR_UNAUTHORIZED`, `ERR_DENIED`",
  },
  { code: 130, meaning: "interrupted (Ctrl-C / SIGINT)", errorCodes: "aborts" },
];

/**
 * An error raised by the CLI itself, with its exit code and a stable `code` for the JSON error document.
 *
 * @public
 */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  readonly code: string;
  constructor(
    message: string,
    exitCode: ExitCode = EXIT.ERROR,
    code = "ERR_CLI",
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "CliError";
    this.exitCode = exitCode;
    this.code = code;
  }
}

/** A usage error (exit 2). @public */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT.USAGE, "ERR_USAGE");
}

/** True for the rejection of an aborted operation (our SIGINT abort or a DOM AbortError). */
export function isAbort(error: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted && (error === signal.reason || isInterrupt(error))) return true;
  if (isInterrupt(error)) return true;
  return typeof error === "object" && error !== null && (error as { name?: unknown }).name === "AbortError";
}

/** The reason the CLI aborts with on SIGINT. @public */
export class InterruptError extends Error {
  constructor() {
    super("interrupted");
    this.name = "InterruptError";
  }
}

function isInterrupt(error: unknown): boolean {
  return error instanceof InterruptError || (error as { name?: unknown } | null)?.name === "InterruptError";
}

/**
 * The exit code of an error: the one place the CLI maps `BlobError` codes to exit codes.
 *
 * @public
 */
export function exitCodeFor(error: unknown, signal?: AbortSignal): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (isAbort(error, signal)) return EXIT.INTERRUPTED;
  if (isBlobError(error)) {
    switch (error.code) {
      case "ERR_NOT_FOUND":
        return EXIT.NOT_FOUND;
      case "ERR_INTEGRITY":
      case "ERR_DECOMPRESSION":
      case "ERR_INVALID_INDEX":
      case "ERR_INVALID_MANIFEST":
      case "ERR_SOURCE_CHANGED":
      case "ERR_PATH_ESCAPE":
        return EXIT.INTEGRITY;
      case "ERR_POLICY":
        return EXIT.POLICY;
      case "ERR_UNAUTHORIZED":
      case "ERR_DENIED":
        return EXIT.AUTH;
      case "ERR_INVALID_ARGUMENT":
      case "ERR_INVALID_PATH":
        return EXIT.USAGE;
      default:
        return EXIT.ERROR;
    }
  }
  return EXIT.ERROR;
}

/** The stable `code` of an error for the JSON error document. @public */
export function errorCodeOf(error: unknown, signal?: AbortSignal): string {
  if (error instanceof CliError) return error.code;
  if (isAbort(error, signal)) return "ERR_INTERRUPTED";
  if (isBlobError(error)) return error.code;
  return "ERR_UNEXPECTED";
}
