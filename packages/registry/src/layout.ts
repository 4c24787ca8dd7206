import { createHash, randomBytes } from "node:crypto";
import { createReadStream, constants as fsConstants, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  BlobError,
  type ByteSource,
  comparePaths,
  DEFAULT_MAX_MANIFEST_SIZE,
  type Descriptor,
  FileSource,
  isBlobError,
  isSha256Digest,
  MEDIA_TYPE_OCI_MANIFEST,
  raceAbort,
  sha256Digest,
  throwIfAborted,
} from "@blobkit/core";
import {
  addUntagged,
  emptyLayoutIndex,
  type IndexEntry,
  isOciDigest,
  type LayoutIndex,
  MAX_INDEX_FILE_SIZE,
  MEDIA_TYPE_OCI_INDEX,
  parseLayoutIndex,
  refName,
  removeDigest,
  serializeLayoutIndex,
  setTag,
} from "./layout/index-file.ts";
import { acquireFileLock } from "./layout/lock.ts";
import type {
  BlobContent,
  FetchedManifest,
  FetchOptions,
  OciStore,
  PushBlobOptions,
  PushManifestOptions,
  ReferrersOptions,
  StoreOptions,
} from "./store.ts";

/** Options of {@link OciLayoutStore.open}. @public */
export interface OciLayoutStoreOptions {
  /**
   * Create the layout (directory, `oci-layout`, `index.json`, `blobs/sha256`) when it is missing. Default
   * `false`: a missing layout is `ERR_NOT_FOUND`.
   */
  create?: boolean | undefined;
  /** Longest wait for the `index.json` lock before `ERR_IO` (reason `lock-timeout`). Default 10 000 ms. */
  lockTimeoutMs?: number | undefined;
  /**
   * A lock file older than this is stale and broken, whoever holds it (a lock is normally held for a few
   * milliseconds; a lock whose process died on this host is broken at once). Default 30 000 ms.
   */
  staleLockMs?: number | undefined;
  /** Aborts opening. */
  signal?: AbortSignal | undefined;
}

/** The only image-layout version there is. */
const LAYOUT_VERSION = "1.0.0";
/** Name of the lock file serializing `index.json` read-modify-writes, in the layout root. */
const LOCK_NAME = "index.json.lock";
/** Temporary files (blob uploads, `index.json` rewrites, lock files) live here, like oras-go's `ingest`. */
const INGEST_DIR = "ingest";
/** Manifests read for referrers lookups are cached by digest (content is immutable) up to this many. */
const MAX_CACHED_MANIFESTS = 10_000;
/** Tag grammar of the OCI distribution spec. */
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** Write chunk of in-memory blob contents (progress granularity). */
const WRITE_CHUNK = 1024 * 1024;

/** What this store needs to know of a manifest, from its verified bytes. */
interface ManifestInfo {
  /** The JSON `mediaType`, or inferred from the shape (`manifests` → index, `layers` → image manifest). */
  mediaType: string | undefined;
  /** `artifactType`, else `config.mediaType` (what a referrers response reports). */
  artifactType: string | undefined;
  annotations: Record<string, string> | undefined;
  subject: string | undefined;
  /** Digests of the manifests an image index lists. */
  children: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function closedError(name: string): BlobError {
  return new BlobError("ERR_CLOSED", "the layout store is closed", { subject: name });
}

function layoutError(subject: string, message: string, cause?: unknown): BlobError {
  return new BlobError("ERR_INVALID_MANIFEST", `invalid image layout: ${message}`, {
    reason: "bad-layout",
    subject,
    cause,
  });
}

function ioError(error: unknown, subject: string, what: string): unknown {
  if (isBlobError(error)) return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === "ENOENT") {
    return new BlobError("ERR_NOT_FOUND", `${what}: not found`, { subject, cause: error });
  }
  if (code === "ELOOP") {
    return new BlobError("ERR_INTEGRITY", `${what}: a symbolic link, not a blob file`, {
      subject,
      reason: "not-regular-file",
      cause: error,
    });
  }
  return new BlobError("ERR_IO", `${what}: ${(error as Error)?.message ?? String(error)}`, {
    subject,
    cause: error,
  });
}

/** Checks a `sha256:` digest argument; other algorithms are `ERR_UNSUPPORTED`, garbage `ERR_INVALID_ARGUMENT`. */
function checkDigest(digest: unknown): string {
  if (isSha256Digest(digest)) return digest;
  if (isOciDigest(digest) && !digest.startsWith("sha256:")) {
    throw new BlobError("ERR_UNSUPPORTED", `only sha256 digests are supported, got ${digest}`, {
      subject: digest,
    });
  }
  throw new BlobError("ERR_INVALID_ARGUMENT", `not a sha256 digest: ${JSON.stringify(digest)}`);
}

function checkDescriptor(descriptor: Descriptor): Descriptor {
  if (!isRecord(descriptor)) throw new BlobError("ERR_INVALID_ARGUMENT", "a descriptor object is required");
  checkDigest(descriptor.digest);
  if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `descriptor size ${String(descriptor.size)} is invalid`, {
      subject: descriptor.digest,
    });
  }
  return descriptor;
}

function checkTag(tag: unknown): string {
  if (typeof tag !== "string" || !TAG_RE.test(tag)) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `invalid tag ${JSON.stringify(tag)}`, { reason: "bad-tag" });
  }
  return tag;
}

function checkMaxBytes(maxBytes: number | undefined, fallback: number): number {
  if (maxBytes === undefined) return fallback;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `maxBytes must be a non-negative integer`);
  }
  return maxBytes;
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parses manifest bytes into the facts this store uses; `undefined` when they are not a JSON object. */
function manifestInfo(bytes: Uint8Array): ManifestInfo | undefined {
  let json: unknown;
  try {
    json = JSON.parse(fatalDecoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (!isRecord(json)) return undefined;
  let mediaType = typeof json.mediaType === "string" ? json.mediaType : undefined;
  if (mediaType === undefined) {
    // OCI manifests may omit mediaType (it is a SHOULD); their shape tells which kind they are.
    if (Array.isArray(json.manifests)) mediaType = MEDIA_TYPE_OCI_INDEX;
    else if (Array.isArray(json.layers)) mediaType = MEDIA_TYPE_OCI_MANIFEST;
  }
  const config = isRecord(json.config) ? json.config : undefined;
  const artifactType =
    typeof json.artifactType === "string"
      ? json.artifactType
      : typeof config?.mediaType === "string"
        ? config.mediaType
        : undefined;
  let annotations: Record<string, string> | undefined;
  if (isRecord(json.annotations)) {
    annotations = {};
    for (const [k, v] of Object.entries(json.annotations)) if (typeof v === "string") annotations[k] = v;
  }
  const subject =
    isRecord(json.subject) && isSha256Digest(json.subject.digest) ? json.subject.digest : undefined;
  const children = Array.isArray(json.manifests)
    ? json.manifests.flatMap((m: unknown) => (isRecord(m) && isSha256Digest(m.digest) ? [m.digest] : []))
    : [];
  return { mediaType, artifactType, annotations, subject, children };
}

/** Every blob descriptor a manifest references (config, layers, an index's manifests, artifact blobs). */
function referencedBlobs(json: Record<string, unknown>): unknown[] {
  const out: unknown[] = [];
  if (json.config !== undefined && json.config !== null) out.push(json.config);
  for (const field of ["layers", "manifests", "blobs"]) {
    const list = json[field];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      throw new BlobError("ERR_INVALID_MANIFEST", `manifest ${field} is not an array`, {
        reason: "bad-descriptor",
      });
    }
    out.push(...list);
  }
  return out;
}

async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

/** The chunks of a {@link BlobContent}, streamed (files and streams are never read into memory whole). */
async function* contentChunks(
  content: BlobContent,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  if (content instanceof Uint8Array) {
    for (let at = 0; at < content.byteLength; at += WRITE_CHUNK) {
      yield content.subarray(at, Math.min(at + WRITE_CHUNK, content.byteLength));
    }
    return;
  }
  const c = (isRecord(content) ? content : {}) as { path?: unknown; stream?: unknown };
  if (typeof c.path === "string") {
    const stream = createReadStream(c.path, { highWaterMark: WRITE_CHUNK });
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (error) {
      throw ioError(error, c.path, "cannot read the blob content file");
    } finally {
      stream.destroy();
    }
    return;
  }
  if (typeof c.stream === "function") {
    const stream = await (
      c.stream as () => ReadableStream<Uint8Array> | Promise<ReadableStream<Uint8Array>>
    ).call(content);
    const reader = stream.getReader();
    let done = false;
    try {
      for (;;) {
        throwIfAborted(signal);
        // A stream that stalls must not outlive an abort: the read races the signal.
        const next = await raceAbort(reader.read(), signal);
        if (next.done) {
          done = true;
          return;
        }
        if (!(next.value instanceof Uint8Array)) {
          throw new BlobError("ERR_INVALID_ARGUMENT", "blob content streams must yield Uint8Array chunks");
        }
        yield next.value;
      }
    } finally {
      if (!done) await reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }
  throw new BlobError("ERR_INVALID_ARGUMENT", "blob content must be a Uint8Array, { path } or { stream }");
}

/**
 * An {@link OciStore} over an [OCI image layout](https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
 * directory: `oci-layout`, `index.json` and `blobs/sha256/<hex>`, tags as `org.opencontainers.image.ref.name`
 * annotations of `index.json` descriptors. The embedded default store: every operation of the `Client` works
 * on `oci:<dir>[:tag|@digest]` references with no server, and the layouts interoperate with skopeo and oras.
 *
 * - Blobs are written to a temporary file in `ingest/`, hashed while written, checked against their
 *   descriptor, flushed to disk and renamed into place: a blob file is complete and verified or absent.
 * - `index.json` is read-modify-written under an exclusive lock file (`index.json.lock`) that also excludes
 *   other processes using this class (a stale lock — dead holder on this host, or older than `staleLockMs` — is
 *   broken), and replaced by an atomic rename, so readers never see a partial index.
 * - Every manifest pushed is listed in `index.json`, tagged or not (like oras and skopeo do), so nothing is
 *   lost, and referrers are found by the `subject` of listed manifests (like oras-go's layout store); their
 *   entries also carry `artifactType` and annotations, as a referrers response would.
 * - Nothing is read or written outside the layout: digests are checked before they become paths, blob files
 *   are opened without following symbolic links, and the layout's directories must not be symbolic links.
 * - There is no garbage collection: {@link OciLayoutStore.deleteManifest} removes the manifest's entries and
 *   its blob, never the config and layer blobs it referenced.
 *
 * @public
 */
export class OciLayoutStore implements OciStore, AsyncDisposable {
  /** `oci:<absolute directory>`. */
  readonly name: string;
  /** Absolute path of the layout directory. */
  readonly dir: string;
  readonly #blobsDir: string;
  readonly #ingestDir: string;
  readonly #indexPath: string;
  readonly #lockPath: string;
  readonly #lockTimeoutMs: number;
  readonly #staleLockMs: number;
  readonly #manifestCache = new Map<string, ManifestInfo | null>();
  /** Serializes this instance's index updates, so it competes with other processes for the lock only once. */
  #queue: Promise<unknown> = Promise.resolve();
  #writeDirsChecked = false;
  #closed = false;

  private constructor(dir: string, lockTimeoutMs: number, staleLockMs: number) {
    this.dir = dir;
    this.name = `oci:${dir}`;
    this.#blobsDir = join(dir, "blobs", "sha256");
    this.#ingestDir = join(dir, INGEST_DIR);
    this.#indexPath = join(dir, "index.json");
    this.#lockPath = join(dir, LOCK_NAME);
    this.#lockTimeoutMs = lockTimeoutMs;
    this.#staleLockMs = staleLockMs;
  }

  /**
   * Opens the image layout in `dir`: checks `oci-layout` (version 1.0.0) and that `index.json` (when present)
   * is a well-formed image index. With `create`, a missing directory, `oci-layout`, `index.json` or
   * `blobs/sha256` is created.
   *
   * @throws BlobError `ERR_NOT_FOUND` (no layout and no `create`), `ERR_NOT_DIRECTORY`, `ERR_INVALID_MANIFEST`
   *   (reason `bad-layout` or `bad-layout-index`: malformed `oci-layout`/`index.json`, symbolic-linked
   *   directories), `ERR_UNSUPPORTED` (another layout version), `ERR_IO`.
   */
  static async open(dir: string, options: OciLayoutStoreOptions = {}): Promise<OciLayoutStore> {
    const { create = false, lockTimeoutMs = 10_000, staleLockMs = 30_000, signal } = options;
    if (typeof dir !== "string" || dir === "") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "OciLayoutStore.open needs a directory");
    }
    for (const [name, value] of [
      ["lockTimeoutMs", lockTimeoutMs],
      ["staleLockMs", staleLockMs],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new BlobError("ERR_INVALID_ARGUMENT", `${name} must be a non-negative integer`);
      }
    }
    throwIfAborted(signal);
    const root = resolve(dir);
    const store = new OciLayoutStore(root, lockTimeoutMs, staleLockMs);
    try {
      const stat = await fsp.stat(root);
      if (!stat.isDirectory()) {
        throw new BlobError("ERR_NOT_DIRECTORY", "the image layout path is not a directory", {
          subject: root,
        });
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT")
        throw ioError(error, root, "cannot open the layout");
      if (!create)
        throw new BlobError("ERR_NOT_FOUND", `no OCI image layout at ${root}`, {
          subject: root,
          cause: error,
        });
      await fsp.mkdir(root, { recursive: true }).catch((e: unknown) => {
        throw ioError(e, root, "cannot create the layout directory");
      });
    }
    await store.#checkLayoutFile(create);
    throwIfAborted(signal);
    if (create) await store.#ensureWriteDirs();
    else await store.#checkDirs(false);
    // Validate index.json now, so a malformed layout fails at open rather than at first use.
    const index = await store.#readIndex();
    if (create && !(await exists(store.#indexPath))) {
      await store.#publishNew(serializeLayoutIndex(index), store.#indexPath);
    }
    throwIfAborted(signal);
    return store;
  }

  async #checkLayoutFile(create: boolean): Promise<void> {
    const path = join(this.dir, "oci-layout");
    let text: string;
    try {
      text = await readSmallFile(path, 64 * 1024);
    } catch (error) {
      if (!isBlobError(error, "ERR_NOT_FOUND")) throw error;
      if (!create) {
        throw new BlobError("ERR_NOT_FOUND", "not an image layout (no oci-layout file)", {
          subject: this.dir,
          reason: "no-layout",
        });
      }
      await this.#ensureWriteDirs();
      await this.#publishNew(
        new TextEncoder().encode(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })),
        path,
      );
      text = await readSmallFile(path, 64 * 1024);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw layoutError(path, "oci-layout is not JSON", cause);
    }
    if (!isRecord(json) || typeof json.imageLayoutVersion !== "string") {
      throw layoutError(path, "oci-layout has no imageLayoutVersion");
    }
    if (json.imageLayoutVersion !== LAYOUT_VERSION) {
      throw new BlobError(
        "ERR_UNSUPPORTED",
        `image layout version ${json.imageLayoutVersion} is not supported`,
        {
          subject: path,
        },
      );
    }
  }

  /** The layout's directories must be real directories: a symbolic link could lead reads and writes outside. */
  async #checkDirs(includeIngest: boolean): Promise<void> {
    const dirs = [join(this.dir, "blobs"), this.#blobsDir];
    if (includeIngest) dirs.push(this.#ingestDir);
    for (const path of dirs) {
      let stat: import("node:fs").Stats;
      try {
        stat = await fsp.lstat(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw ioError(error, path, "cannot inspect the layout");
      }
      if (!stat.isDirectory()) throw layoutError(path, "not a directory (symbolic links are refused)");
    }
  }

  async #ensureWriteDirs(): Promise<void> {
    if (this.#writeDirsChecked) return;
    for (const path of [this.#blobsDir, this.#ingestDir]) {
      await fsp.mkdir(path, { recursive: true }).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === "EEXIST") return; // a file or symlink: caught below
        throw ioError(error, path, "cannot create the layout directory");
      });
    }
    await this.#checkDirs(true);
    this.#writeDirsChecked = true;
  }

  #check(signal: AbortSignal | undefined): void {
    throwIfAborted(signal);
    if (this.#closed) throw closedError(this.name);
  }

  #blobPath(digest: string): string {
    // checkDigest admits only `sha256:` + 64 hex digits, so the path cannot leave blobs/sha256.
    return join(this.#blobsDir, checkDigest(digest).slice(7));
  }

  #tempPath(kind: string): string {
    return join(this.#ingestDir, `${kind}-${process.pid}-${randomBytes(8).toString("hex")}`);
  }

  /** Writes `bytes` to a new file at `path` unless it exists (atomic: temp file, fsync, hard link). */
  async #publishNew(bytes: Uint8Array, path: string): Promise<void> {
    await this.#ensureWriteDirs();
    const temp = this.#tempPath("new");
    try {
      await fsp.writeFile(temp, bytes, { flag: "wx", mode: 0o644, flush: true });
      await fsp.link(temp, path).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      });
    } catch (error) {
      throw ioError(error, path, "cannot write the layout");
    } finally {
      await fsp.unlink(temp).catch(() => {});
    }
  }

  // ---- index.json ----

  async #readIndex(): Promise<LayoutIndex> {
    let bytes: Uint8Array;
    try {
      bytes = await readRegularFile(this.#indexPath, MAX_INDEX_FILE_SIZE);
    } catch (error) {
      // A layout without index.json (oras creates it lazily) has no manifests yet.
      if (isBlobError(error, "ERR_NOT_FOUND")) return emptyLayoutIndex();
      throw error;
    }
    return parseLayoutIndex(bytes, this.#indexPath);
  }

  /**
   * Runs `update` on a fresh copy of `index.json` under the lock (in-process queue, then the lock file), and
   * writes the result atomically (temporary file, fsync, rename) when `update` reports a change.
   */
  async #mutateIndex<T>(
    signal: AbortSignal | undefined,
    update: (index: LayoutIndex) => Promise<{ changed: boolean; result: T }>,
  ): Promise<T> {
    const run = async (): Promise<T> => {
      this.#check(signal);
      await this.#ensureWriteDirs();
      const release = await acquireFileLock(this.#lockPath, {
        tempDir: this.#ingestDir,
        timeoutMs: this.#lockTimeoutMs,
        staleMs: this.#staleLockMs,
        signal,
      });
      try {
        const index = await this.#readIndex();
        const { changed, result } = await update(index);
        if (changed) {
          throwIfAborted(signal);
          await this.#writeIndex(index);
        }
        return result;
      } finally {
        await release();
      }
    };
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => {});
    return next;
  }

  async #writeIndex(index: LayoutIndex): Promise<void> {
    const temp = this.#tempPath("index");
    try {
      await fsp.writeFile(temp, serializeLayoutIndex(index), { flag: "wx", mode: 0o644, flush: true });
      await fsp.rename(temp, this.#indexPath);
    } catch (error) {
      await fsp.unlink(temp).catch(() => {});
      throw ioError(error, this.#indexPath, "cannot write index.json");
    }
  }

  // ---- blobs ----

  /** Reads a whole blob, verified: a regular file (never a symlink) of `size` bytes hashing to `digest`. */
  async #readBlob(digest: string, size: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const path = this.#blobPath(digest);
    let handle: FileHandle;
    try {
      handle = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (error) {
      throw ioError(error, digest, "blob");
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) {
        throw new BlobError("ERR_INTEGRITY", "the blob is not a regular file", {
          subject: digest,
          reason: "not-regular-file",
        });
      }
      if (stat.size !== size) {
        throw new BlobError("ERR_INTEGRITY", `blob has ${stat.size} bytes, ${size} expected`, {
          subject: digest,
          reason: "size-mismatch",
        });
      }
      const bytes = new Uint8Array(size);
      let filled = 0;
      while (filled < size) {
        const { bytesRead } = await handle.read(bytes, filled, size - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
        throwIfAborted(signal);
      }
      if (filled !== size) {
        throw new BlobError("ERR_INTEGRITY", `blob ended after ${filled} bytes, ${size} expected`, {
          subject: digest,
          reason: "size-mismatch",
        });
      }
      const actual = sha256Digest(bytes);
      if (actual !== digest) {
        throw new BlobError("ERR_INTEGRITY", `blob content hashes to ${actual}`, {
          subject: digest,
          reason: "digest-mismatch",
        });
      }
      return bytes;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw ioError(error, digest, "cannot read blob");
    } finally {
      await handle.close().catch(() => {});
    }
  }

  /** Size of a valid blob file (regular file, not a symlink), or `undefined`. */
  async #blobSize(digest: string): Promise<number | undefined> {
    const path = this.#blobPath(digest);
    try {
      const stat = await fsp.lstat(path);
      return stat.isFile() ? stat.size : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw ioError(error, digest, "cannot stat blob");
    }
  }

  /** Size of a blob, or `undefined` when the layout does not hold it (a symbolic link is not a blob). */
  async statBlob(digest: string, options: StoreOptions = {}): Promise<number | undefined> {
    this.#check(options.signal);
    return this.#blobSize(digest);
  }

  /**
   * Reads a whole blob into memory, verified against the descriptor's digest and size.
   *
   * @throws BlobError `ERR_NOT_FOUND`, `ERR_INTEGRITY` (wrong size or content, not a regular file),
   *   `ERR_LIMIT_EXCEEDED` (size above `maxBytes`; no default limit for blobs), `ERR_INVALID_ARGUMENT`.
   */
  async fetchBlob(descriptor: Descriptor, options: FetchOptions = {}): Promise<Uint8Array> {
    this.#check(options.signal);
    checkDescriptor(descriptor);
    const maxBytes = checkMaxBytes(options.maxBytes, Number.MAX_SAFE_INTEGER);
    if (descriptor.size > maxBytes) {
      throw new BlobError("ERR_LIMIT_EXCEEDED", `blob of ${descriptor.size} bytes exceeds ${maxBytes}`, {
        subject: descriptor.digest,
      });
    }
    return this.#readBlob(descriptor.digest, descriptor.size, options.signal);
  }

  /**
   * Opens a blob for random access: a core `FileSource` whose `id` is the digest. Its size is checked
   * against the descriptor; its bytes are not (archive reads verify each file).
   *
   * @throws BlobError `ERR_NOT_FOUND`, `ERR_INTEGRITY` (wrong size, not a regular file).
   */
  async openBlob(descriptor: Descriptor, options: StoreOptions = {}): Promise<ByteSource> {
    this.#check(options.signal);
    checkDescriptor(descriptor);
    const path = this.#blobPath(descriptor.digest);
    // FileSource follows symbolic links; refuse them first (lstat). A symlink swapped in between would need
    // write access to the layout, which already lets one change any blob.
    let stat: import("node:fs").Stats;
    try {
      stat = await fsp.lstat(path);
    } catch (error) {
      throw ioError(error, descriptor.digest, "blob");
    }
    if (!stat.isFile()) {
      throw new BlobError("ERR_INTEGRITY", "the blob is not a regular file", {
        subject: descriptor.digest,
        reason: "not-regular-file",
      });
    }
    const source = await FileSource.open(path, { id: descriptor.digest, signal: options.signal });
    try {
      const size = await source.size();
      if (size !== descriptor.size) {
        throw new BlobError("ERR_INTEGRITY", `blob has ${size} bytes, ${descriptor.size} expected`, {
          subject: descriptor.digest,
          reason: "size-mismatch",
        });
      }
      throwIfAborted(options.signal);
      return source;
    } catch (error) {
      await source.close();
      throw error;
    }
  }

  /**
   * Stores a blob unless the layout holds it already (a present file of the wrong size, or a symbolic link,
   * is corrupt and replaced). The bytes are streamed into `ingest/`, hashed on the way, checked against the
   * descriptor, flushed and renamed into `blobs/sha256/`.
   *
   * @throws BlobError `ERR_INTEGRITY` (bytes do not match the descriptor; nothing is left behind),
   *   `ERR_NOT_FOUND` (a `{ path }` content that does not exist), `ERR_INVALID_ARGUMENT`, `ERR_IO`.
   */
  async pushBlob(descriptor: Descriptor, content: BlobContent, options: PushBlobOptions = {}): Promise<void> {
    const { signal, onProgress } = options;
    this.#check(signal);
    checkDescriptor(descriptor);
    const { digest, size } = descriptor;
    const path = this.#blobPath(digest);
    if ((await this.#blobSize(digest)) === size) {
      onProgress?.({ digest, bytes: size, total: size });
      return;
    }
    await this.#ensureWriteDirs();
    const temp = this.#tempPath("blob");
    let handle: FileHandle | undefined;
    try {
      handle = await fsp.open(temp, "wx", 0o644);
      const hash = createHash("sha256");
      let written = 0;
      for await (const chunk of contentChunks(content, signal)) {
        throwIfAborted(signal);
        written += chunk.byteLength;
        if (written > size) {
          throw new BlobError("ERR_INTEGRITY", `blob content is longer than the ${size} bytes declared`, {
            subject: digest,
            reason: "size-mismatch",
          });
        }
        hash.update(chunk);
        await writeAll(handle, chunk);
        onProgress?.({ digest, bytes: written, total: size });
      }
      throwIfAborted(signal);
      if (written !== size) {
        throw new BlobError("ERR_INTEGRITY", `blob content has ${written} bytes, ${size} declared`, {
          subject: digest,
          reason: "size-mismatch",
        });
      }
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== digest) {
        throw new BlobError("ERR_INTEGRITY", `blob content hashes to ${actual}`, {
          subject: digest,
          reason: "digest-mismatch",
        });
      }
      await handle.sync();
      await handle.close();
      handle = undefined;
      // rename replaces a corrupt file or a symlink itself (never its target); concurrent pushes of the same
      // blob each rename identical verified bytes.
      await fsp.rename(temp, path);
    } catch (error) {
      await handle?.close().catch(() => {});
      await fsp.unlink(temp).catch(() => {});
      if (signal?.aborted) throw signal.reason;
      throw ioError(error, digest, "cannot store blob");
    }
  }

  // ---- manifests ----

  /** Facts of a listed manifest, cached by digest; `null` when it is missing or not a JSON object. */
  async #info(digest: string, size: number, signal: AbortSignal | undefined): Promise<ManifestInfo | null> {
    const cached = this.#manifestCache.get(digest);
    if (cached !== undefined) return cached;
    if (size > DEFAULT_MAX_MANIFEST_SIZE) return null;
    let bytes: Uint8Array;
    try {
      bytes = await this.#readBlob(digest, size, signal);
    } catch (error) {
      if (isBlobError(error, "ERR_NOT_FOUND")) return null; // layouts may lack blobs (spec); not cached
      throw error;
    }
    const info = manifestInfo(bytes) ?? null;
    if (this.#manifestCache.size >= MAX_CACHED_MANIFESTS) this.#manifestCache.clear();
    this.#manifestCache.set(digest, info);
    return info;
  }

  /**
   * Resolves a tag (an `org.opencontainers.image.ref.name` of `index.json`) or a `sha256:` digest (listed in
   * `index.json`, or else a manifest blob of the layout: its media type is read from its JSON) to the
   * manifest's descriptor.
   *
   * @throws BlobError `ERR_NOT_FOUND`, `ERR_INVALID_ARGUMENT` (empty reference), `ERR_UNSUPPORTED` (a
   *   non-sha256 digest), `ERR_INVALID_MANIFEST` (malformed `index.json`).
   */
  async resolve(reference: string, options: StoreOptions = {}): Promise<Descriptor> {
    const { signal } = options;
    this.#check(signal);
    if (typeof reference !== "string" || reference === "") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "a tag or digest is required");
    }
    const index = await this.#readIndex();
    throwIfAborted(signal);
    if (reference.includes(":")) {
      const digest = checkDigest(reference);
      const entry = index.manifests.find((e) => e.digest === digest);
      if (entry !== undefined) return plainDescriptor(entry);
      const size = await this.#blobSize(digest);
      if (size === undefined) {
        throw new BlobError("ERR_NOT_FOUND", "no manifest with this digest in the layout", {
          subject: digest,
        });
      }
      if (size > DEFAULT_MAX_MANIFEST_SIZE) {
        throw new BlobError("ERR_NOT_FOUND", "the blob is too large to be a manifest", {
          subject: digest,
          reason: "not-a-manifest",
        });
      }
      const info = await this.#info(digest, size, signal);
      if (info?.mediaType === undefined) {
        throw new BlobError("ERR_NOT_FOUND", "the blob is not a manifest", {
          subject: digest,
          reason: "not-a-manifest",
        });
      }
      return { mediaType: info.mediaType, digest, size };
    }
    // The last entry wins when a foreign writer left the same name twice (it was most likely appended last).
    const entry = index.manifests.findLast((e) => refName(e) === reference);
    if (entry === undefined) {
      throw new BlobError("ERR_NOT_FOUND", `tag ${JSON.stringify(reference)} not found`, {
        subject: reference,
      });
    }
    if (!isSha256Digest(entry.digest)) {
      throw new BlobError(
        "ERR_UNSUPPORTED",
        `tag ${reference} points to an unsupported digest ${String(entry.digest)}`,
        {
          subject: reference,
        },
      );
    }
    return plainDescriptor(entry);
  }

  /**
   * Fetches a manifest by tag or digest, verified against its digest and size. The media type is the JSON's
   * `mediaType` (verified content) when it has one, else the descriptor's.
   *
   * @throws BlobError `ERR_NOT_FOUND`, `ERR_INTEGRITY`, `ERR_LIMIT_EXCEEDED` (above `maxBytes`, default
   *   4 MiB).
   */
  async fetchManifest(reference: string, options: FetchOptions = {}): Promise<FetchedManifest> {
    const { signal } = options;
    const maxBytes = checkMaxBytes(options.maxBytes, DEFAULT_MAX_MANIFEST_SIZE);
    const descriptor = await this.resolve(reference, { signal });
    if (descriptor.size > maxBytes) {
      throw new BlobError("ERR_LIMIT_EXCEEDED", `manifest of ${descriptor.size} bytes exceeds ${maxBytes}`, {
        subject: descriptor.digest,
      });
    }
    const bytes = await this.#readBlob(descriptor.digest, descriptor.size, signal);
    // The JSON's own mediaType is verified content; the index.json descriptor's is only metadata.
    const json = safeJson(bytes);
    const mediaType =
      isRecord(json) && typeof json.mediaType === "string" ? json.mediaType : descriptor.mediaType;
    return { descriptor: { mediaType, digest: descriptor.digest, size: descriptor.size }, bytes };
  }

  /**
   * Stores a manifest, optionally tagged. Every blob it references (config, layers, an index's manifests)
   * must be in the layout with the declared size. The manifest is listed in `index.json` (tagged or not);
   * one with a `subject` gets `artifactType` and its annotations on its entry and is returned by
   * {@link OciLayoutStore.referrers} of its subject.
   *
   * @throws BlobError `ERR_NOT_FOUND` (a referenced blob is missing), `ERR_INTEGRITY` (a referenced blob has
   *   another size), `ERR_INVALID_MANIFEST` (not a JSON object, a malformed descriptor, a `mediaType`
   *   different from `mediaType`), `ERR_INVALID_ARGUMENT` (bad tag), `ERR_LIMIT_EXCEEDED` (above 4 MiB),
   *   `ERR_UNSUPPORTED` (non-sha256 references).
   */
  async pushManifest(
    bytes: Uint8Array,
    mediaType: string,
    options: PushManifestOptions = {},
  ): Promise<Descriptor> {
    const { signal, tag } = options;
    this.#check(signal);
    if (!(bytes instanceof Uint8Array))
      throw new BlobError("ERR_INVALID_ARGUMENT", "manifest bytes required");
    if (typeof mediaType !== "string" || mediaType === "") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "a manifest media type is required");
    }
    if (tag !== undefined) checkTag(tag);
    if (bytes.byteLength > DEFAULT_MAX_MANIFEST_SIZE) {
      throw new BlobError("ERR_LIMIT_EXCEEDED", `manifest of ${bytes.byteLength} bytes exceeds 4 MiB`);
    }
    let json: unknown;
    try {
      json = JSON.parse(fatalDecoder.decode(bytes));
    } catch (cause) {
      throw new BlobError("ERR_INVALID_MANIFEST", "the manifest is not UTF-8 JSON", {
        reason: "not-json",
        cause,
      });
    }
    if (!isRecord(json)) {
      throw new BlobError("ERR_INVALID_MANIFEST", "the manifest is not a JSON object", {
        reason: "not-object",
      });
    }
    if (json.mediaType !== undefined && json.mediaType !== mediaType) {
      throw new BlobError(
        "ERR_INVALID_MANIFEST",
        `the manifest's mediaType ${JSON.stringify(json.mediaType)} is not ${mediaType}`,
        { reason: "media-type-mismatch" },
      );
    }
    const refs: Array<{ digest: string; size: number }> = [];
    for (const ref of referencedBlobs(json)) {
      if (!isRecord(ref) || !Number.isSafeInteger(ref.size) || (ref.size as number) < 0) {
        throw new BlobError("ERR_INVALID_MANIFEST", "the manifest has a malformed descriptor", {
          reason: "bad-descriptor",
        });
      }
      if (!isSha256Digest(ref.digest)) {
        if (isOciDigest(ref.digest)) {
          throw new BlobError("ERR_UNSUPPORTED", `only sha256 blobs are supported, got ${ref.digest}`);
        }
        throw new BlobError("ERR_INVALID_MANIFEST", `malformed digest ${JSON.stringify(ref.digest)}`, {
          reason: "bad-digest",
        });
      }
      refs.push({ digest: ref.digest, size: ref.size as number });
    }
    const digest = sha256Digest(bytes);
    const descriptor: Descriptor = { mediaType, digest, size: bytes.byteLength };
    const info = manifestInfo(bytes)!;
    const entry: IndexEntry = { mediaType, digest, size: bytes.byteLength };
    if (info.subject !== undefined) {
      // Shaped like a referrers-API descriptor, so tools listing index.json see what the referrer is.
      if (info.artifactType !== undefined) entry.artifactType = info.artifactType;
      const annotations = { ...(info.annotations ?? {}) };
      delete annotations["org.opencontainers.image.ref.name"];
      if (Object.keys(annotations).length > 0) entry.annotations = annotations;
    }
    await this.#mutateIndex(signal, async (index) => {
      // Checked and written under the lock, so that a concurrent deleteManifest (of this manifest, or of a
      // child manifest of this index) cannot remove a blob between the check and the index entry.
      await this.#checkPresent(refs);
      await this.pushBlob(descriptor, bytes, { signal });
      const changed = tag === undefined ? addUntagged(index, entry) : setTag(index, entry, tag);
      return { changed, result: undefined };
    });
    return descriptor;
  }

  /** A tag must never point to content that is not there: every referenced blob must be present. */
  async #checkPresent(refs: ReadonlyArray<{ digest: string; size: number }>): Promise<void> {
    for (const ref of refs) {
      const present = await this.#blobSize(ref.digest);
      if (present === undefined) {
        throw new BlobError("ERR_NOT_FOUND", "the manifest references a blob the layout does not hold", {
          subject: ref.digest,
          reason: "blob-unknown",
        });
      }
      if (present !== ref.size) {
        throw new BlobError("ERR_INTEGRITY", `referenced blob has ${present} bytes, ${ref.size} declared`, {
          subject: ref.digest,
          reason: "size-mismatch",
        });
      }
    }
  }

  /**
   * Points `tag` at an existing manifest (read and verified first), moving it atomically from the manifest
   * it pointed to (which stays listed, untagged, unless another entry lists it).
   *
   * @throws BlobError `ERR_INVALID_ARGUMENT` (tag grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, descriptor),
   *   `ERR_NOT_FOUND` (no such manifest), `ERR_INTEGRITY`.
   */
  async tag(descriptor: Descriptor, tag: string, options: StoreOptions = {}): Promise<void> {
    const { signal } = options;
    this.#check(signal);
    checkDescriptor(descriptor);
    checkTag(tag);
    if (descriptor.size > DEFAULT_MAX_MANIFEST_SIZE) {
      throw new BlobError("ERR_LIMIT_EXCEEDED", "manifest exceeds 4 MiB", { subject: descriptor.digest });
    }
    await this.#mutateIndex(signal, async (index) => {
      const bytes = await this.#readBlob(descriptor.digest, descriptor.size, signal);
      const info = manifestInfo(bytes);
      const existing = index.manifests.find((e) => e.digest === descriptor.digest);
      const entry: IndexEntry = existing
        ? { ...existing }
        : {
            mediaType: info?.mediaType ?? descriptor.mediaType,
            digest: descriptor.digest,
            size: descriptor.size,
          };
      return { changed: setTag(index, entry, tag), result: undefined };
    });
  }

  /** Every tag (`org.opencontainers.image.ref.name` of `index.json`), deduplicated, in byte order. */
  async *listTags(options: StoreOptions = {}): AsyncIterable<string> {
    this.#check(options.signal);
    const index = await this.#readIndex();
    const names = new Set<string>();
    for (const entry of index.manifests) {
      const name = refName(entry);
      if (name !== undefined) names.add(name);
    }
    for (const name of [...names].sort(comparePaths)) {
      this.#check(options.signal);
      yield name;
    }
  }

  /**
   * Deletes a manifest: its `index.json` entries (with their tags) and its blob, unless an image index still
   * listed references it. Config and layer blobs are left (no garbage collection).
   *
   * @throws BlobError `ERR_NOT_FOUND` when the layout has no such manifest.
   */
  async deleteManifest(digest: string, options: StoreOptions = {}): Promise<void> {
    const { signal } = options;
    this.#check(signal);
    checkDigest(digest);
    await this.#mutateIndex(signal, async (index) => {
      const removed = removeDigest(index, digest);
      const size = await this.#blobSize(digest);
      if (removed === 0 && size === undefined) {
        throw new BlobError("ERR_NOT_FOUND", "no manifest with this digest in the layout", {
          subject: digest,
        });
      }
      let referenced = false;
      for (const entry of index.manifests) {
        if (!isSha256Digest(entry.digest)) continue;
        const info = await this.#info(entry.digest, entry.size, signal).catch(() => null);
        if (info?.children.includes(digest)) {
          referenced = true;
          break;
        }
      }
      if (!referenced && size !== undefined) {
        await fsp.unlink(this.#blobPath(digest)).catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== "ENOENT")
            throw ioError(error, digest, "cannot delete");
        });
        this.#manifestCache.delete(digest);
      }
      return { changed: removed > 0, result: undefined };
    });
  }

  /**
   * The manifests listed in `index.json` whose `subject` is `digest`, shaped like a referrers-API response
   * (mediaType, digest, size, artifactType — the manifest's, else its config media type — and annotations),
   * plus those of a `sha256-<hex>` tag-schema index when the layout has one (copied from a registry without
   * a referrers API). Listed manifests whose blobs are missing are skipped.
   *
   * @throws BlobError `ERR_INTEGRITY` (a listed manifest's blob is corrupt), `ERR_INVALID_ARGUMENT`.
   */
  async referrers(digest: string, options: ReferrersOptions = {}): Promise<Descriptor[]> {
    const { signal, artifactType } = options;
    this.#check(signal);
    checkDigest(digest);
    const index = await this.#readIndex();
    const found = new Map<string, Descriptor>();
    for (const entry of index.manifests) {
      if (!isSha256Digest(entry.digest) || found.has(entry.digest)) continue;
      throwIfAborted(signal);
      const info = await this.#info(entry.digest, entry.size, signal);
      if (info === null || info.subject !== digest) continue;
      const d: Descriptor = {
        mediaType: info.mediaType ?? entry.mediaType,
        digest: entry.digest,
        size: entry.size,
      };
      if (info.artifactType !== undefined) d.artifactType = info.artifactType;
      if (info.annotations !== undefined) d.annotations = { ...info.annotations };
      found.set(entry.digest, d);
    }
    // The referrers tag schema (`sha256-<hex>`), as skopeo copies it from registries without a referrers API.
    const fallback = index.manifests.findLast((e) => refName(e) === `sha256-${digest.slice(7)}`);
    if (
      fallback !== undefined &&
      isSha256Digest(fallback.digest) &&
      fallback.size <= DEFAULT_MAX_MANIFEST_SIZE
    ) {
      let bytes: Uint8Array | undefined;
      try {
        bytes = await this.#readBlob(fallback.digest, fallback.size, signal);
      } catch (error) {
        if (!isBlobError(error, "ERR_NOT_FOUND")) throw error;
      }
      const json: unknown = bytes === undefined ? undefined : safeJson(bytes);
      const list = isRecord(json) && Array.isArray(json.manifests) ? json.manifests : [];
      for (const m of list) {
        if (!isRecord(m) || !isSha256Digest(m.digest) || found.has(m.digest)) continue;
        if (typeof m.mediaType !== "string" || !Number.isSafeInteger(m.size) || (m.size as number) < 0)
          continue;
        const d: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.size as number };
        if (typeof m.artifactType === "string") d.artifactType = m.artifactType;
        if (isRecord(m.annotations)) {
          d.annotations = Object.fromEntries(
            Object.entries(m.annotations).filter((kv): kv is [string, string] => typeof kv[1] === "string"),
          );
        }
        found.set(m.digest, d);
      }
    }
    const all = [...found.values()];
    return artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
  }

  /** Marks the store closed (it holds no handles between operations); later calls reject with `ERR_CLOSED`. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Same as {@link OciLayoutStore.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function plainDescriptor(entry: IndexEntry): Descriptor {
  const d: Descriptor = { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
  if (typeof entry.artifactType === "string") d.artifactType = entry.artifactType;
  return d;
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(fatalDecoder.decode(bytes));
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads a regular file (not following a symbolic link) of at most `maxBytes`. */
async function readRegularFile(path: string, maxBytes: number): Promise<Uint8Array> {
  let handle: FileHandle;
  try {
    handle = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP") throw layoutError(path, "a symbolic link", error);
    throw ioError(error, path, "cannot read the layout");
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw layoutError(path, "not a regular file");
    if (stat.size > maxBytes) {
      throw new BlobError("ERR_LIMIT_EXCEEDED", `${path} is larger than ${maxBytes} bytes`, {
        subject: path,
      });
    }
    return new Uint8Array(await handle.readFile());
  } catch (error) {
    throw ioError(error, path, "cannot read the layout");
  } finally {
    await handle.close().catch(() => {});
  }
}

async function readSmallFile(path: string, maxBytes: number): Promise<string> {
  return new TextDecoder().decode(await readRegularFile(path, maxBytes));
}
