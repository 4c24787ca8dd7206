import { randomBytes } from "node:crypto";
import { createWriteStream, promises as fsp } from "node:fs";
import { basename, isAbsolute, join, relative, resolve, sep } from "node:path";
import { type CreateOptions, type CreateResult, createArchiveInternal } from "./create.ts";
import { BlobError, isBlobError, throwIfAborted } from "./errors.ts";

/** Default file name of the index blob written by {@link createLocalArchive}. @public */
export const DEFAULT_INDEX_NAME = "index.blob";
/** Default file name of the data blob written by {@link createLocalArchive}. @public */
export const DEFAULT_DATA_NAME = "data.blob";

/**
 * Options of {@link createLocalArchive}: every {@link CreateOptions} plus the output file names.
 *
 * @public
 */
export interface CreateLocalOptions extends CreateOptions {
  /** File name of the index blob in `destDir`. Default `index.blob`. */
  indexName?: string;
  /** File name of the data blob in `destDir`. Default `data.blob`. */
  dataName?: string;
  /** Replace existing output files. Default `false`: existing files fail with `ERR_EXISTS`. */
  overwrite?: boolean;
}

/**
 * What {@link createLocalArchive} produced: the {@link CreateResult} plus the two files' paths.
 *
 * @public
 */
export interface CreateLocalResult extends CreateResult {
  /** Absolute path of the index blob. */
  indexPath: string;
  /** Absolute path of the data blob. */
  dataPath: string;
}

function checkName(name: string, what: string): string {
  if (
    typeof name !== "string" ||
    name === "" ||
    name === "." ||
    name === ".." ||
    basename(name) !== name ||
    name.includes("/") ||
    name.includes("\\")
  ) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `${what} must be a plain file name, got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new BlobError("ERR_IO", `cannot stat ${path}: ${(cause as Error).message}`, {
      cause,
      subject: path,
    });
  }
}

async function removeQuietly(path: string): Promise<void> {
  await fsp.rm(path, { force: true }).catch(() => {});
}

/**
 * Moves `from` to `to`. Without `overwrite` a hard link is used, which fails atomically when `to` appeared
 * meanwhile; file systems without hard links fall back to a checked rename.
 */
async function publish(from: string, to: string, overwrite: boolean): Promise<void> {
  if (overwrite) {
    await fsp.rename(from, to);
    return;
  }
  try {
    await fsp.link(from, to);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      throw new BlobError("ERR_EXISTS", `${to} already exists`, { cause, subject: to });
    }
    if (
      code !== "EPERM" &&
      code !== "ENOTSUP" &&
      code !== "EOPNOTSUPP" &&
      code !== "EXDEV" &&
      code !== "ENOSYS"
    ) {
      throw cause;
    }
    if (await exists(to)) throw new BlobError("ERR_EXISTS", `${to} already exists`, { subject: to });
    await fsp.rename(from, to);
    return;
  }
  await fsp.unlink(from);
}

/**
 * Creates an archive from `sourceDir` as two files in `destDir` (created if missing): `data.blob` and
 * `index.blob`. Both are written to temporary files in `destDir`, flushed to disk and renamed into place
 * (data first, then index); on any failure or abort, the temporary files (and a data file already renamed by
 * this call) are removed, so no partial archive is left behind. When `destDir` lies inside `sourceDir`, it is
 * left out of the archive.
 *
 * @throws BlobError `ERR_EXISTS` (an output file exists and `overwrite` is not set) and every error of
 *   {@link createArchive}; `signal.reason` when aborted.
 * @public
 */
export async function createLocalArchive(
  sourceDir: string,
  destDir: string,
  options: CreateLocalOptions = {},
): Promise<CreateLocalResult> {
  const {
    indexName = DEFAULT_INDEX_NAME,
    dataName = DEFAULT_DATA_NAME,
    overwrite = false,
    ...createOptions
  } = options;
  checkName(indexName, "indexName");
  checkName(dataName, "dataName");
  if (indexName === dataName)
    throw new BlobError("ERR_INVALID_ARGUMENT", "indexName and dataName must differ");
  throwIfAborted(options.signal);
  const dest = resolve(destDir);
  const indexPath = join(dest, indexName);
  const dataPath = join(dest, dataName);
  try {
    await fsp.mkdir(dest, { recursive: true });
  } catch (cause) {
    throw new BlobError("ERR_IO", `cannot create ${dest}: ${(cause as Error).message}`, {
      cause,
      subject: dest,
    });
  }
  if (!overwrite) {
    for (const path of [dataPath, indexPath]) {
      if (await exists(path)) throw new BlobError("ERR_EXISTS", `${path} already exists`, { subject: path });
    }
  }

  const suffix = `${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  const dataTempName = `.${dataName}.${suffix}`;
  const indexTempName = `.${indexName}.${suffix}`;
  const dataTemp = join(dest, dataTempName);
  const indexTemp = join(dest, indexTempName);

  // Our own output must not end up in the archive: a destination strictly inside the source tree is left out
  // whole; when both are the same directory, the output and temporary files are.
  const exclude: string[] = [];
  try {
    const [srcReal, destReal] = await Promise.all([fsp.realpath(sourceDir), fsp.realpath(dest)]);
    const rel = relative(srcReal, destReal);
    if (rel === "") exclude.push(dataName, indexName, dataTempName, indexTempName);
    else if (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))
      exclude.push(rel.split(sep).join("/"));
  } catch {
    // A missing source is reported by createArchive with its proper error.
  }
  let dataPublished = false;
  let indexPublished = false;
  const stream = createWriteStream(dataTemp, { flags: "wx", mode: 0o644, flush: true });
  const streamClosed = new Promise<void>((resolveClosed) => {
    stream.once("close", () => resolveClosed());
  });
  // Open errors (EEXIST of a clashing temp name, EACCES) surface through createArchive's writes. An fsync or
  // close error comes after createArchive is done with the stream, so it is kept and checked below.
  let streamError: unknown;
  stream.on("error", (error) => {
    streamError ??= error;
  });
  try {
    const result = await createArchiveInternal(sourceDir, stream, createOptions, { exclude });
    await streamClosed;
    if (streamError !== undefined) {
      throw new BlobError("ERR_IO", `writing ${dataTemp} failed: ${(streamError as Error).message}`, {
        cause: streamError,
        subject: dataTemp,
      });
    }
    await fsp.writeFile(indexTemp, result.index, { flag: "wx", mode: 0o644, flush: true });
    throwIfAborted(options.signal);
    await publish(dataTemp, dataPath, overwrite);
    dataPublished = true;
    await publish(indexTemp, indexPath, overwrite);
    indexPublished = true;
    return { ...result, indexPath, dataPath };
  } catch (error) {
    stream.destroy();
    await streamClosed;
    await removeQuietly(dataTemp);
    await removeQuietly(indexTemp);
    if (dataPublished && !indexPublished) await removeQuietly(dataPath);
    if (options.signal?.aborted && error === options.signal.reason) throw error;
    if (isBlobError(error)) throw error;
    throw new BlobError("ERR_IO", `cannot write the archive to ${dest}: ${(error as Error)?.message}`, {
      cause: error,
      subject: dest,
    });
  }
}
