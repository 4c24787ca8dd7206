import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Archive,
  type ArchiveIndex,
  type ArchiveManifest,
  BlobError,
  type BlockCacheOptions,
  type ByteSource,
  type Cache,
  type CreateOptions,
  type CreateProgress,
  cacheKeys,
  checkManifestAgainstIndex,
  createArchive,
  createManifest,
  type Descriptor,
  decodeIndex,
  EMPTY_CONFIG_DIGEST,
  EMPTY_CONFIG_SIZE,
  isSha256Digest,
  type Limits,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
  parseManifest,
  resolveLimits,
  sha256Digest,
  throwIfAborted,
  withBlockCache,
} from "@blobkit/core";
import { Agent, type Dispatcher } from "undici";
import { type CredentialStore, dockerCredentials, RegistryAuth } from "./auth/index.ts";
import { OciLayoutStore } from "./layout.ts";
import { attachReferrer, enforcePolicies, type Policy, type Signer } from "./policy.ts";
import { formatReference, parseReference, type Reference } from "./reference.ts";
import { RegistryStore, type RegistryStoreOptions } from "./registry-store.ts";
import { createSpool } from "./spool.ts";
import type { BlobContent, OciStore, TransferProgress } from "./store.ts";

/** Default time a tag → digest resolution stays in the cache, in ms. @public */
export const DEFAULT_REF_TTL_MS = 60_000;

/** Options of {@link Client}. @public */
export interface ClientOptions {
  /**
   * Where credentials come from. Default: Docker's lookup (`$DOCKER_CONFIG/config.json`, credential helpers,
   * podman's `auth.json`), see `dockerCredentials`.
   */
  credentials?: CredentialStore | undefined;
  /** An existing {@link RegistryAuth} (token cache shared with other clients); stays owned by the caller. */
  auth?: RegistryAuth | undefined;
  /** Plain HTTP: `"auto"` (default) for loopback registries only, `true` for every registry, `false` never. */
  plainHttp?: boolean | "auto" | undefined;
  /** undici dispatcher for every registry request; stays owned by the caller. */
  dispatcher?: Dispatcher | undefined;
  /** Further options of every {@link RegistryStore} the client opens (retries, timeouts, upload sizes…). */
  registry?:
    | Omit<RegistryStoreOptions, "host" | "repository" | "auth" | "dispatcher" | "plainHttp">
    | undefined;
  /**
   * One cache for every layer: tag → digest (with TTL), manifests and indexes by digest, verified file
   * content, and data blocks when `blockCache` is set. Whatever comes out of it is verified; a failing cache
   * is a miss. It stays owned by the caller.
   */
  cache?: Cache | undefined;
  /** How long a tag → digest resolution is cached, in ms (caches with TTL support only). Default 60 s; 0 = never. */
  refTtlMs?: number | undefined;
  /** Put data blocks of pulled archives in `cache` too (`true` or block-cache options). Default off. */
  blockCache?: boolean | BlockCacheOptions | undefined;
  /** Policies run on every fetch, pull and inspect (fail closed; cache hits do not bypass them). */
  policies?: readonly Policy[] | undefined;
  /** Limits applied to indexes and reads. */
  limits?: Partial<Limits> | undefined;
  /**
   * Directory for the temporary data spool of `push(dir)` (`blobkit-push-<pid>-*`, removed when the push
   * ends; spools of killed pushes are swept by the next push). Default the OS temp directory.
   */
  tempDir?: string | undefined;
  /** Called when a cache operation failed (and was treated as a miss). */
  onCacheError?: ((error: unknown) => void) | undefined;
}

/** Options shared by read operations. @public */
export interface ReadOperationOptions {
  /** Aborts the operation. */
  signal?: AbortSignal | undefined;
  /** Ignore cached tag resolutions, manifests and indexes (fresh answers are still cached). */
  skipCache?: boolean | undefined;
}

/** A fetched, verified, policy-approved archive manifest. @public */
export interface FetchResult {
  /** Canonical reference including the digest. */
  reference: string;
  /** The manifest's descriptor. */
  descriptor: Descriptor;
  /** The parsed manifest. */
  manifest: ArchiveManifest;
}

/** What {@link Client.open} returns: the lazy archive and the manifest it was opened from. @public */
export interface OpenResult extends FetchResult {
  /** The lazy archive; close it when done. */
  archive: Archive;
}

/** What {@link Client.inspect} reports. @public */
export interface InspectResult extends FetchResult {
  /** The decoded, validated index. */
  index: ArchiveIndex;
  /** Number of files. */
  fileCount: number;
  /** Size of the data blob. */
  dataSize: number;
  /** Size of the index blob. */
  indexSize: number;
  /** Sum of the files' sizes. */
  totalSize: number;
  /** Sum of the files' stored (compressed) sizes. */
  storedSize: number;
  /** Referrers of the manifest (signatures, attestations), as descriptors. */
  referrers: Descriptor[];
}

/** Progress of {@link Client.push}. @public */
export type PushProgress =
  | ({ phase: "create" } & CreateProgress)
  | ({ phase: "upload"; blob: "data" | "index" | "config" } & TransferProgress);

/** A prebuilt archive for {@link Client.push}: the index bytes and the data blob's bytes. @public */
export interface PushArchiveInput {
  /** The index blob (its `data_hash` / `data_size` describe `data`). */
  index: Uint8Array;
  /** The data blob. */
  data: BlobContent;
}

/** Options of {@link Client.push}. @public */
export interface PushOptions {
  /** Archive creation options (compression, level, dedupe, deterministic…) when pushing a directory. */
  create?: Omit<CreateOptions, "onProgress" | "signal"> | undefined;
  /** More tags to point at the pushed manifest, after the reference's own tag. */
  tags?: readonly string[] | undefined;
  /** Manifest annotations. */
  annotations?: Record<string, string> | undefined;
  /** `org.opencontainers.image.created` (default now). */
  created?: Date | string | undefined;
  /** Progress callback (archive creation, then uploads). */
  onProgress?: ((progress: PushProgress) => void) | undefined;
  /** Aborts the push; nothing is tagged when aborted before the manifest. */
  signal?: AbortSignal | undefined;
}

/** What {@link Client.push} did. @public */
export interface PushResult {
  /** Canonical reference including the digest. */
  reference: string;
  /** The manifest's descriptor. */
  descriptor: Descriptor;
  /** Tags now pointing at it. */
  tags: string[];
  /** The index and data layers. */
  index: Descriptor;
  data: Descriptor;
  /** Number of files. */
  fileCount: number;
}

/** Options of {@link Client.copy}. @public */
export interface CopyOptions {
  /** Also copy the referrers (signatures, attestations) of the manifest. Default true. */
  referrers?: boolean | undefined;
  /** Progress of each blob. */
  onProgress?: ((progress: TransferProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

const EMPTY_CONFIG = new TextEncoder().encode("{}");
const TEXT = new TextEncoder();

function emptyConfigDescriptor(): Descriptor {
  return { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_CONFIG_DIGEST, size: EMPTY_CONFIG_SIZE };
}

/** The blobs and child manifests a manifest or index references. */
function references(bytes: Uint8Array): { blobs: Descriptor[]; manifests: Descriptor[] } {
  let json: { config?: unknown; layers?: unknown; manifests?: unknown };
  try {
    json = JSON.parse(new TextDecoder().decode(bytes)) as typeof json;
  } catch (cause) {
    throw new BlobError("ERR_INVALID_MANIFEST", "manifest is not JSON", { cause, reason: "not-json" });
  }
  const list = (value: unknown): Descriptor[] => (Array.isArray(value) ? (value as Descriptor[]) : []);
  const blobs = [...(json.config === undefined ? [] : [json.config as Descriptor]), ...list(json.layers)];
  return { blobs, manifests: list(json.manifests) };
}

/** A fresh stream of a whole blob from a byte source; the source is closed when the stream ends. */
function blobStream(source: ByteSource, size: number): ReadableStream<Uint8Array> {
  if (source.stream !== undefined && size > 0) {
    const reader = source.stream(0, size).getReader();
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          await source.close();
        } else controller.enqueue(value);
      },
      async cancel(reason) {
        await reader.cancel(reason);
        await source.close();
      },
    });
  }
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (offset >= size) {
        controller.close();
        await source.close();
        return;
      }
      const length = Math.min(4 * 1024 * 1024, size - offset);
      controller.enqueue(await source.read(offset, length));
      offset += length;
    },
    async cancel() {
      await source.close();
    },
  });
}

/**
 * The high-level client: push a directory as an archive, pull it back as a lazy {@link Archive}, fetch,
 * inspect, tag, copy, sign and list referrers — on registry references and on `oci:<dir>` image layouts
 * alike. Caches (through core's `Cache` interface) and policies (the {@link Policy} interface) are plugged in
 * through {@link ClientOptions}.
 *
 * @example
 * ```ts
 * const client = new Client();
 * await client.push("oci:./store:v1", "./configs");
 * const archive = await client.pull("oci:./store:v1");
 * console.log(await archive.readFile("app.json", { encoding: "utf8" }));
 * await archive.close();
 * await client.close();
 * ```
 * @public
 */
export class Client {
  readonly #options: ClientOptions;
  readonly #auth: RegistryAuth;
  readonly #ownsAuth: boolean;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #limits: Limits;
  readonly #refTtlMs: number;
  readonly #stores = new Map<string, Promise<OciStore>>();
  #closed = false;

  constructor(options: ClientOptions = {}) {
    this.#options = options;
    this.#limits = resolveLimits(options.limits);
    const ttl = options.refTtlMs ?? DEFAULT_REF_TTL_MS;
    if (!Number.isSafeInteger(ttl) || ttl < 0)
      throw new BlobError("ERR_INVALID_ARGUMENT", "refTtlMs must be ≥ 0");
    this.#refTtlMs = ttl;
    this.#ownsAuth = options.auth === undefined;
    this.#auth =
      options.auth ?? new RegistryAuth({ credentials: options.credentials ?? dockerCredentials() });
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher = options.dispatcher ?? new Agent({ connections: 32, connectTimeout: 10_000 });
  }

  /** The store (registry repository or layout) a reference points into. Shared by operations; closed by {@link Client.close}. */
  async store(reference: Reference, options: { create?: boolean } = {}): Promise<OciStore> {
    if (this.#closed) throw new BlobError("ERR_CLOSED", "client is closed");
    const key =
      reference.kind === "layout" ? `oci:${reference.dir}` : `${reference.apiHost}/${reference.repository}`;
    let store = this.#stores.get(key);
    if (store === undefined) {
      const opened: Promise<OciStore> =
        reference.kind === "layout"
          ? OciLayoutStore.open(reference.dir, { create: options.create === true })
          : Promise.resolve(
              new RegistryStore({
                ...this.#options.registry,
                host: reference.apiHost,
                repository: reference.repository,
                auth: this.#auth,
                dispatcher: this.#dispatcher,
                plainHttp: this.#options.plainHttp,
              }),
            );
      this.#stores.set(key, opened);
      // A layout that did not exist (or failed to open) is asked again next time.
      opened.catch(() => this.#stores.delete(key));
      store = opened;
    }
    return store;
  }

  #parse(reference: string, defaultTag?: null): Reference {
    return parseReference(reference, defaultTag === null ? { defaultTag: null } : {});
  }

  async #cacheGet(key: string, signal: AbortSignal | undefined): Promise<Uint8Array | undefined> {
    const cache = this.#options.cache;
    if (cache === undefined) return undefined;
    try {
      return await cache.get(key, { signal });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      this.#options.onCacheError?.(error);
      return undefined;
    }
  }

  async #cacheSet(key: string, value: Uint8Array, ttlMs?: number): Promise<void> {
    const cache = this.#options.cache;
    if (cache === undefined) return;
    try {
      if (ttlMs !== undefined && !cache.supportsTtl) return;
      await cache.set(key, value, ttlMs === undefined ? {} : { ttlMs });
    } catch (error) {
      this.#options.onCacheError?.(error);
    }
  }

  async #cacheDelete(key: string): Promise<void> {
    try {
      await this.#options.cache?.delete(key);
    } catch (error) {
      this.#options.onCacheError?.(error);
    }
  }

  /** Whether tag resolutions of this reference go through the ref cache. */
  #refCacheable(ref: Reference): boolean {
    return ref.kind === "registry" && ref.digest === undefined && this.#refTtlMs > 0;
  }

  /** A cached tag → descriptor resolution (registries only, unless `skipCache`). */
  async #cachedRef(
    ref: Reference,
    store: OciStore,
    options: ReadOperationOptions,
  ): Promise<Descriptor | undefined> {
    if (!this.#refCacheable(ref) || options.skipCache === true || ref.tag === undefined) return undefined;
    const key = cacheKeys.ref(`${store.name}:${ref.tag}`);
    const cached = await this.#cacheGet(key, options.signal);
    if (cached === undefined) return undefined;
    try {
      const descriptor = JSON.parse(new TextDecoder().decode(cached)) as Descriptor;
      if (isSha256Digest(descriptor.digest) && typeof descriptor.mediaType === "string") return descriptor;
    } catch {
      // A damaged entry is a miss.
    }
    await this.#cacheDelete(key);
    return undefined;
  }

  async #rememberRef(ref: Reference, store: OciStore, tag: string, descriptor: Descriptor): Promise<void> {
    if (ref.kind !== "registry" || this.#refTtlMs <= 0) return;
    await this.#cacheSet(
      cacheKeys.ref(`${store.name}:${tag}`),
      TEXT.encode(JSON.stringify(descriptor)),
      this.#refTtlMs,
    );
  }

  /** Tag or digest → descriptor; tags of registries go through the ref cache unless `skipCache`. */
  async #resolve(ref: Reference, store: OciStore, options: ReadOperationOptions): Promise<Descriptor> {
    const target = ref.digest ?? ref.tag;
    if (target === undefined)
      throw new BlobError("ERR_INVALID_ARGUMENT", "reference needs a tag or a digest");
    const cached = await this.#cachedRef(ref, store, options);
    if (cached !== undefined) return cached;
    const descriptor = await store.resolve(target, { signal: options.signal });
    if (ref.digest === undefined) await this.#rememberRef(ref, store, target, descriptor);
    return descriptor;
  }

  /** Manifest bytes by digest: verified cache hit, else the store (and then cached). */
  async #manifestBytes(
    store: OciStore,
    digest: string,
    options: ReadOperationOptions,
  ): Promise<FetchedBytes> {
    const key = cacheKeys.manifest(digest);
    if (options.skipCache !== true && store instanceof RegistryStore) {
      const cached = await this.#cacheGet(key, options.signal);
      if (cached !== undefined) {
        if (sha256Digest(cached) === digest) return { bytes: cached, cached: true };
        await this.#cacheDelete(key);
      }
    }
    const fetched = await store.fetchManifest(digest, { signal: options.signal });
    return { bytes: fetched.bytes, cached: false, mediaType: fetched.descriptor.mediaType };
  }

  /**
   * Resolves, fetches and verifies an archive manifest, then runs the policies (every time, also on cache
   * hits). Denied manifests are not cached.
   *
   * @throws BlobError `ERR_NOT_FOUND`, `ERR_INVALID_MANIFEST`, `ERR_INTEGRITY`, `ERR_POLICY`, `ERR_UNAUTHORIZED`…
   */
  async fetch(reference: string, options: ReadOperationOptions = {}): Promise<FetchResult> {
    const ref = this.#parse(reference);
    const store = await this.store(ref);
    const { index: _index, ...fetched } = await this.#fetch(ref, store, options);
    return fetched;
  }

  async #fetch(
    ref: Reference,
    store: OciStore,
    options: ReadOperationOptions,
  ): Promise<FetchResult & { index: () => Promise<ArchiveIndex> }> {
    throwIfAborted(options.signal);
    let descriptor: Descriptor;
    let fetched: FetchedBytes;
    const cachedRef = await this.#cachedRef(ref, store, options);
    if (ref.digest !== undefined || cachedRef !== undefined) {
      const digest = ref.digest ?? (cachedRef as Descriptor).digest;
      fetched = await this.#manifestBytes(store, digest, options);
      descriptor = cachedRef ?? { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest, size: fetched.bytes.length };
    } else if (ref.tag !== undefined) {
      // One request for a tag: the manifest itself, whose digest is the hash of its bytes (no HEAD first).
      const got = await store.fetchManifest(ref.tag, { signal: options.signal });
      descriptor = got.descriptor;
      fetched = { bytes: got.bytes, cached: false, mediaType: got.descriptor.mediaType };
      await this.#rememberRef(ref, store, ref.tag, descriptor);
    } else {
      throw new BlobError("ERR_INVALID_ARGUMENT", "reference needs a tag or a digest");
    }
    const { bytes, cached, mediaType } = fetched;
    const manifest = parseManifest(bytes, { expectedDigest: descriptor.digest });
    const full: Descriptor = {
      mediaType: mediaType ?? descriptor.mediaType,
      digest: descriptor.digest,
      size: bytes.length,
    };
    const canonical = formatReference({ ...ref, digest: descriptor.digest });
    let index: Promise<ArchiveIndex> | undefined;
    const loadIndex = (): Promise<ArchiveIndex> => {
      index ??= this.#index(store, manifest, options);
      return index;
    };
    await enforcePolicies(this.#options.policies ?? [], {
      reference: canonical,
      descriptor: full,
      manifest,
      store,
      index: loadIndex,
      signal: options.signal,
    });
    if (!cached && ref.kind === "registry")
      await this.#cacheSet(cacheKeys.manifest(descriptor.digest), bytes);
    return { reference: canonical, descriptor: full, manifest, index: loadIndex };
  }

  /** The archive index of a manifest: verified cache hit or fetched, decoded, validated, cross-checked. */
  async #index(
    store: OciStore,
    manifest: ArchiveManifest,
    options: ReadOperationOptions,
  ): Promise<ArchiveIndex> {
    const layer = manifest.index;
    if (layer.size > this.#limits.maxIndexSize) {
      throw new BlobError(
        "ERR_LIMIT_EXCEEDED",
        `index of ${manifest.digest} is ${layer.size} bytes, more than the ${this.#limits.maxIndexSize} allowed`,
        { reason: "index-too-large", subject: layer.digest },
      );
    }
    const key = cacheKeys.index(layer.digest);
    let bytes: Uint8Array | undefined;
    if (options.skipCache !== true && store instanceof RegistryStore) {
      bytes = await this.#cacheGet(key, options.signal);
      if (bytes !== undefined && (bytes.length !== layer.size || sha256Digest(bytes) !== layer.digest)) {
        await this.#cacheDelete(key);
        bytes = undefined;
      }
    }
    const fromStore = bytes === undefined;
    bytes ??= await store.fetchBlob(layer, { signal: options.signal, maxBytes: this.#limits.maxIndexSize });
    const index = decodeIndex(bytes, { limits: this.#limits });
    checkManifestAgainstIndex(manifest, index);
    if (fromStore && store instanceof RegistryStore) await this.#cacheSet(key, bytes);
    return index;
  }

  /**
   * Pulls an archive lazily: manifest (verified, policies enforced) and index now; file bytes later, each
   * read a range request verified against the file's SHA-256. Close the archive when done.
   */
  async pull(reference: string, options: ReadOperationOptions = {}): Promise<Archive> {
    return (await this.open(reference, options)).archive;
  }

  /**
   * {@link Client.pull} that also says which manifest it opened: the lazy archive plus the fetch result
   * (canonical reference with the digest, descriptor, manifest), from one resolution and one policy check.
   */
  async open(reference: string, options: ReadOperationOptions = {}): Promise<OpenResult> {
    const ref = this.#parse(reference);
    const store = await this.store(ref);
    const { index: loadIndex, ...fetched } = await this.#fetch(ref, store, options);
    const index = await loadIndex();
    let source = await store.openBlob(fetched.manifest.data, { signal: options.signal });
    const cache = this.#options.cache;
    const block = this.#options.blockCache;
    if (cache !== undefined && block !== undefined && block !== false) {
      source = withBlockCache(source, cache, block === true ? {} : block);
    }
    const archive = await Archive.open({
      index,
      source,
      cache,
      limits: this.#limits,
      ownsSource: true,
      signal: options.signal,
      onCacheError: this.#options.onCacheError,
    });
    return { ...fetched, archive };
  }

  /** Manifest, index summary and referrers of an archive, without reading any file. */
  async inspect(reference: string, options: ReadOperationOptions = {}): Promise<InspectResult> {
    const ref = this.#parse(reference);
    const store = await this.store(ref);
    const { index: loadIndex, ...fetched } = await this.#fetch(ref, store, options);
    const index = await loadIndex();
    const referrers = await store.referrers(fetched.descriptor.digest, { signal: options.signal });
    return {
      ...fetched,
      index,
      fileCount: index.length,
      dataSize: fetched.manifest.data.size,
      indexSize: fetched.manifest.index.size,
      totalSize: index.totalSize(),
      storedSize: index.totalStoredSize(),
      referrers,
    };
  }

  /**
   * Packs `input` (a directory, or a prebuilt index + data blob) and publishes it under `reference`'s tag
   * (default `latest`) and `options.tags`. Order: data, index, config, manifest, then extra tags — a tag
   * never points at missing content and an interrupted push publishes nothing. A directory is packed into a
   * temporary spool file (never the whole data blob in memory), removed afterwards.
   */
  async push(
    reference: string,
    input: string | PushArchiveInput,
    options: PushOptions = {},
  ): Promise<PushResult> {
    const ref = this.#parse(reference);
    if (ref.digest !== undefined) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "push needs a tag, not a digest, in the reference", {
        reason: "invalid-reference",
        subject: reference,
      });
    }
    const tag = ref.tag as string;
    const { signal } = options;
    const store = await this.store(ref, { create: true });
    let spool: string | undefined;
    try {
      let index: Uint8Array;
      let data: BlobContent;
      if (typeof input === "string") {
        spool = await createSpool(this.#options.tempDir ?? tmpdir());
        const dataPath = join(spool, "data");
        const out = createWriteStream(dataPath);
        const created = await createArchive(input, out, {
          ...options.create,
          signal,
          onProgress: (progress) => options.onProgress?.({ phase: "create", ...progress }),
        });
        await new Promise<void>((resolve, reject) => {
          if (out.closed) resolve();
          else out.once("close", resolve).once("error", reject);
        });
        index = created.index;
        data = { path: dataPath };
      } else {
        index = input.index;
        data = input.data;
      }
      const decoded = decodeIndex(index, { limits: this.#limits });
      if (decoded.dataSha256 === undefined) {
        throw new BlobError(
          "ERR_INVALID_INDEX",
          "the index does not record the data blob's digest (data_hash)",
          {
            reason: "missing-data-hash",
          },
        );
      }
      const dataLayer = { digest: `sha256:${decoded.dataSha256}`, size: decoded.dataSize };
      const indexLayer = { digest: decoded.digest(), size: index.length };
      const manifest = createManifest({
        index: indexLayer,
        data: dataLayer,
        annotations: options.annotations,
        created: options.created,
      });
      const progress =
        (blob: "data" | "index" | "config") =>
        (p: TransferProgress): void =>
          options.onProgress?.({ phase: "upload", blob, ...p });
      const parsed = parseManifest(manifest.bytes);
      await store.pushBlob(parsed.data, data, { signal, onProgress: progress("data") });
      await store.pushBlob(parsed.index, index, { signal, onProgress: progress("index") });
      await store.pushBlob(emptyConfigDescriptor(), EMPTY_CONFIG, { signal, onProgress: progress("config") });
      throwIfAborted(signal);
      const descriptor = await store.pushManifest(manifest.bytes, MEDIA_TYPE_OCI_MANIFEST, { tag, signal });
      const tags = [tag];
      for (const extra of options.tags ?? []) {
        if (tags.includes(extra)) continue;
        await store.tag(descriptor, extra, { signal });
        tags.push(extra);
      }
      for (const t of tags) await this.#rememberRef(ref, store, t, descriptor);
      return {
        reference: formatReference({ ...ref, digest: descriptor.digest }),
        descriptor,
        tags,
        index: parsed.index,
        data: parsed.data,
        fileCount: decoded.length,
      };
    } finally {
      if (spool !== undefined) await rm(spool, { recursive: true, force: true });
    }
  }

  /** Points more tags at what `reference` resolves to now (never a cached resolution). */
  async tag(
    reference: string,
    tags: readonly string[],
    options: { signal?: AbortSignal } = {},
  ): Promise<Descriptor> {
    const ref = this.#parse(reference);
    const store = await this.store(ref);
    const descriptor = await this.#resolve(ref, store, { signal: options.signal, skipCache: true });
    for (const tag of tags) {
      await store.tag(descriptor, tag, options);
      await this.#rememberRef(ref, store, tag, descriptor);
    }
    return descriptor;
  }

  /**
   * Copies what `source` resolves to into `destination` (registry ↔ registry ↔ layout): blobs the
   * destination has are skipped, blobs within one registry are mounted, the rest streamed (and verified by
   * the destination); the manifest keeps its digest. Referrers (signatures) come along by default.
   */
  async copy(source: string, destination: string, options: CopyOptions = {}): Promise<Descriptor> {
    const src = this.#parse(source);
    const dst = this.#parse(
      destination,
      src.digest !== undefined && src.tag === undefined ? null : undefined,
    );
    if (dst.digest !== undefined && dst.tag === undefined && dst.kind === "registry") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "copy needs a tag in the destination", {
        subject: destination,
      });
    }
    const from = await this.store(src);
    const to = await this.store(dst, { create: true });
    const descriptor = await this.#resolve(src, from, { signal: options.signal, skipCache: true });
    await this.#copyManifest(from, to, src, dst, descriptor, dst.tag, options, 0);
    return descriptor;
  }

  async #copyManifest(
    from: OciStore,
    to: OciStore,
    src: Reference,
    dst: Reference,
    descriptor: Descriptor,
    tag: string | undefined,
    options: CopyOptions,
    depth: number,
  ): Promise<void> {
    const { signal } = options;
    const fetched = await from.fetchManifest(descriptor.digest, { signal });
    const { blobs, manifests } = references(fetched.bytes);
    for (const child of manifests) {
      await this.#copyManifest(
        from,
        to,
        src,
        dst,
        child,
        undefined,
        { ...options, referrers: false },
        depth + 1,
      );
    }
    const mountFrom =
      src.kind === "registry" &&
      dst.kind === "registry" &&
      src.apiHost === dst.apiHost &&
      src.repository !== dst.repository
        ? src.repository
        : undefined;
    for (const blob of blobs) {
      if ((await to.statBlob(blob.digest, { signal })) === blob.size) continue;
      const content: BlobContent = {
        stream: async () => blobStream(await from.openBlob(blob, { signal }), blob.size),
      };
      const pushOptions = {
        signal,
        onProgress: options.onProgress,
        ...(mountFrom === undefined ? {} : { mountFrom }),
      };
      await to.pushBlob(blob, content, pushOptions);
    }
    await to.pushManifest(fetched.bytes, fetched.descriptor.mediaType, { tag, signal });
    if (options.referrers !== false && depth < 2) {
      for (const referrer of await from.referrers(descriptor.digest, { signal })) {
        await this.#copyManifest(from, to, src, dst, referrer, undefined, options, depth + 1);
      }
    }
  }

  /**
   * Signs what `reference` resolves to now (never a cached resolution: a re-pushed tag gets its new digest
   * signed) and attaches the signature as a referrer. Resolves to the referrer manifest's descriptor.
   */
  async sign(reference: string, signer: Signer, options: { signal?: AbortSignal } = {}): Promise<Descriptor> {
    const ref = this.#parse(reference);
    const store = await this.store(ref);
    const { signal } = options;
    const descriptor = await this.#resolve(ref, store, { signal, skipCache: true });
    const fetched = await store.fetchManifest(descriptor.digest, { signal });
    const subject: Descriptor = {
      mediaType: fetched.descriptor.mediaType,
      digest: fetched.descriptor.digest,
      size: fetched.bytes.length,
    };
    const signature = await signer.sign(
      {
        descriptor: subject,
        bytes: fetched.bytes,
        reference: formatReference({ ...ref, digest: subject.digest }),
      },
      { signal },
    );
    return attachReferrer(store, subject, signature, { signal });
  }

  /** Referrers of what `reference` resolves to, optionally only of one artifact type. */
  async referrers(
    reference: string,
    options: { artifactType?: string; signal?: AbortSignal } = {},
  ): Promise<Descriptor[]> {
    const ref = this.#parse(reference);
    const store = await this.store(ref);
    const descriptor = await this.#resolve(ref, store, { signal: options.signal, skipCache: true });
    return store.referrers(descriptor.digest, options);
  }

  /** Closes every store the client opened, and its own auth and connection pool. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const stores = await Promise.allSettled(this.#stores.values());
    for (const result of stores)
      if (result.status === "fulfilled") await result.value.close().catch(() => {});
    this.#stores.clear();
    if (this.#ownsAuth) await this.#auth.close();
    if (this.#ownsDispatcher) await this.#dispatcher.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

interface FetchedBytes {
  bytes: Uint8Array;
  cached: boolean;
  mediaType?: string | undefined;
}
