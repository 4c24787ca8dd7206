import type { ByteSource, Descriptor } from "@blobkit/core";

/** Options every store operation accepts. @public */
export interface StoreOptions {
  /** Aborts the operation; it rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link OciStore.fetchManifest} and {@link OciStore.fetchBlob}. @public */
export interface FetchOptions extends StoreOptions {
  /** Largest accepted body in bytes (`ERR_LIMIT_EXCEEDED` beyond it). Default 4 MiB for manifests. */
  maxBytes?: number | undefined;
}

/** Progress of one blob upload or download. @public */
export interface TransferProgress {
  /** Digest of the blob. */
  digest: string;
  /** Bytes transferred so far. */
  bytes: number;
  /** Total bytes of the blob. */
  total: number;
}

/** Options of {@link OciStore.pushBlob}. @public */
export interface PushBlobOptions extends StoreOptions {
  /** Called as bytes are sent (not necessarily for every chunk). */
  onProgress?: ((progress: TransferProgress) => void) | undefined;
}

/**
 * The bytes of a blob to push: in memory, a file on disk (streamed, never read into memory whole), or a
 * function returning a fresh stream each time it is called (an upload may be retried). The store checks the
 * bytes against the descriptor's digest and size: nothing unverified is ever published.
 *
 * @public
 */
export type BlobContent =
  | Uint8Array
  | { readonly path: string }
  | { readonly stream: () => ReadableStream<Uint8Array> | Promise<ReadableStream<Uint8Array>> };

/** A manifest and its verified bytes. @public */
export interface FetchedManifest {
  /** Media type (from the server's `Content-Type` or the layout's descriptor), digest and size. */
  descriptor: Descriptor;
  /** The exact manifest bytes; they hash to `descriptor.digest`. */
  bytes: Uint8Array;
}

/** Options of {@link OciStore.pushManifest}. @public */
export interface PushManifestOptions extends StoreOptions {
  /** Tag the manifest under this name. Without it the manifest is stored by digest only. */
  tag?: string | undefined;
}

/** Options of {@link OciStore.referrers}. @public */
export interface ReferrersOptions extends StoreOptions {
  /** Only referrers with this artifact type. */
  artifactType?: string | undefined;
}

/**
 * One repository of OCI content: a repository in a registry ({@link RegistryStore}) or an OCI image layout
 * directory ({@link OciLayoutStore}). Everything the high-level `Client` does goes through this interface, so
 * every operation works on both.
 *
 * Contract:
 * - content that comes out (manifests, blobs) is verified against its digest and size;
 * - content that goes in is verified before it becomes visible (a blob whose bytes do not match its
 *   descriptor is `ERR_INTEGRITY` and leaves nothing behind);
 * - a manifest that has a `subject` is findable through {@link OciStore.referrers} afterwards, also where the
 *   backend has no referrers API (the `sha256-<hex>` tag-schema index is maintained);
 * - missing content is `ERR_NOT_FOUND`; bad credentials `ERR_UNAUTHORIZED`; refused access `ERR_DENIED`.
 *
 * @public
 */
export interface OciStore {
  /** Display name without credentials, e.g. `localhost:5000/acme/app` or `oci:/srv/layout`. */
  readonly name: string;
  /** Resolves a tag or a `sha256:` digest to the manifest's descriptor (media type, digest, size). */
  resolve(reference: string, options?: StoreOptions): Promise<Descriptor>;
  /** Fetches a manifest by tag or digest; the bytes are verified against the digest. */
  fetchManifest(reference: string, options?: FetchOptions): Promise<FetchedManifest>;
  /**
   * Stores a manifest (every blob it references must already be present), optionally under a tag.
   * Maintains the referrers of its `subject` when it has one. Resolves to its descriptor.
   */
  pushManifest(bytes: Uint8Array, mediaType: string, options?: PushManifestOptions): Promise<Descriptor>;
  /** Points `tag` at an existing manifest. */
  tag(descriptor: Descriptor, tag: string, options?: StoreOptions): Promise<void>;
  /** Every tag of the repository (pages fetched lazily), in the backend's order. */
  listTags(options?: StoreOptions): AsyncIterable<string>;
  /** Deletes a manifest by digest (tags pointing to it go with it). */
  deleteManifest(digest: string, options?: StoreOptions): Promise<void>;
  /** Size of a blob, or `undefined` when the store does not hold it. */
  statBlob(digest: string, options?: StoreOptions): Promise<number | undefined>;
  /** Reads a whole blob into memory, verified against the descriptor's digest and size. */
  fetchBlob(descriptor: Descriptor, options?: FetchOptions): Promise<Uint8Array>;
  /**
   * Random access to a blob's bytes (range requests / file reads). Its `id` is the digest. Reads are not
   * verified here: archive reads verify each file's SHA-256. The caller closes it.
   */
  openBlob(descriptor: Descriptor, options?: StoreOptions): Promise<ByteSource>;
  /** Stores a blob unless the store already holds it; the bytes are verified before they become visible. */
  pushBlob(descriptor: Descriptor, content: BlobContent, options?: PushBlobOptions): Promise<void>;
  /** Manifests whose `subject` is `digest`, as descriptors (with `artifactType` and `annotations`). */
  referrers(digest: string, options?: ReferrersOptions): Promise<Descriptor[]>;
  /** Releases connections and handles. Idempotent. */
  close(): Promise<void>;
}
