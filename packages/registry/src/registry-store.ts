import { createReadStream } from "node:fs";
import { pipeline, Readable, Transform } from "node:stream";
import {
  BlobError,
  type ByteSource,
  bufferSweeper,
  DEFAULT_MAX_MANIFEST_SIZE,
  type Descriptor,
  isBlobError,
  isSha256Digest,
  sha256Digest,
  throwIfAborted,
} from "@blobkit/core";
import { HttpSource } from "@blobkit/http-source";
import { Agent, type Dispatcher } from "undici";
import { isLoopbackHost, RegistryAuth } from "./auth/index.ts";
import { firstHeader, headerValues, RegistryHttp, readBody } from "./http.ts";
import { MANIFEST_ACCEPT, MEDIA_TYPE_OCI_INDEX, parseDescriptorList, referrersTag } from "./oci.ts";
import { assertValidTag } from "./reference.ts";
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

/** Default size up to which a blob is uploaded with one PUT; larger ones go in resumable chunks. @public */
export const DEFAULT_MONOLITHIC_UPLOAD_MAX: number = 32 * 1024 * 1024;
/**
 * Default size of one PATCH of a resumable upload: 4 GiB, so most blobs go up in one streamed request (every
 * extra chunk costs the registry a round of hash-state bookkeeping; 64 MiB chunks made a 1 GiB push ~35 %
 * slower against docker-registry 2.8). Lower it behind proxies that limit request bodies.
 *
 * @public
 */
export const DEFAULT_UPLOAD_CHUNK_SIZE: number = 4 * 1024 * 1024 * 1024;
/** Default `User-Agent`. @public */
export const DEFAULT_USER_AGENT = "blobkit/0";

/** Options of {@link RegistryStore}. @public */
export interface RegistryStoreOptions {
  /** `host[:port]` the registry API is served from (e.g. `ghcr.io`, `registry-1.docker.io`, `127.0.0.1:5000`). */
  host: string;
  /** Repository path, e.g. `acme/configs`. */
  repository: string;
  /** Authentication (shared between stores of one client). Default: a new anonymous {@link RegistryAuth}. */
  auth?: RegistryAuth | undefined;
  /**
   * `true`: plain HTTP; `false`: HTTPS; `"auto"` (default): plain HTTP for loopback hosts only (`localhost`,
   * `127.x`, `[::1]`), like Docker.
   */
  plainHttp?: boolean | "auto" | undefined;
  /** undici dispatcher to send through; stays owned by the caller. Default: the store's own keep-alive Agent. */
  dispatcher?: Dispatcher | undefined;
  /** `User-Agent` header. */
  userAgent?: string | undefined;
  /** Retries of failed idempotent requests (network errors, 408, 429, 5xx). Default 5. */
  retries?: number | undefined;
  /** First backoff delay, doubled per retry, in ms. Default 200. */
  retryDelayMs?: number | undefined;
  /** Longest wait before a retry (a longer `Retry-After` fails instead), in ms. Default 10 000. */
  maxRetryDelayMs?: number | undefined;
  /** Time to the response headers, and between body chunks, in ms. Default 60 000. */
  timeoutMs?: number | undefined;
  /** Blobs up to this size are uploaded with a single PUT. Default 32 MiB. */
  monolithicUploadMax?: number | undefined;
  /**
   * Most bytes one PATCH of a resumable upload carries. Default 4 GiB (one streamed request for most blobs; a
   * failed one resumes from the offset the registry reports). Lower it behind proxies with body-size limits.
   */
  uploadChunkSize?: number | undefined;
  /** Tags asked for per page of the tag list (`?n=`); later pages follow the `Link` header. Default 1000. */
  tagPageSize?: number | undefined;
  /**
   * Whether the registry has the OCI 1.1 referrers API: `"auto"` (default) finds out (from `OCI-Subject` on
   * manifest pushes, or by asking the referrers endpoint) and falls back to the `sha256-<hex>` tag schema;
   * `"never"` always uses the tag schema.
   */
  referrersApi?: "auto" | "never" | undefined;
  /**
   * What blob range reads do when the registry (or the storage it redirects to) ignores `Range`: `"error"`
   * (default, `ERR_RANGE_NOT_SUPPORTED`) or `"discard"` (stream and drop the bytes before the range).
   */
  onRangeIgnored?: "error" | "discard" | undefined;
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `${name} must be a ${allowZero ? "non-negative" : "positive"} integer`,
    );
  }
  return value;
}

function checkDescriptor(descriptor: Descriptor): void {
  if (!isSha256Digest(descriptor.digest)) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `descriptor digest must be sha256:<64 hex>, got ${JSON.stringify(descriptor.digest)}`,
    );
  }
  if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `descriptor size must be a non-negative integer`);
  }
}

function isDigestReference(reference: string): boolean {
  return reference.startsWith("sha256:");
}

function checkTarget(reference: string): string {
  if (isDigestReference(reference)) {
    if (!isSha256Digest(reference))
      throw new BlobError("ERR_INVALID_ARGUMENT", `malformed digest ${JSON.stringify(reference)}`);
    return reference;
  }
  return assertValidTag(reference);
}

function mediaTypeOf(contentType: string | undefined): string | undefined {
  const type = contentType?.split(";")[0]?.trim();
  return type === "" ? undefined : type;
}

/**
 * A body factory for a stream that can be sent once: a second call (a re-authentication after a 401) fails
 * as a network error, so the upload restarts from a fresh stream instead of sending an empty body.
 */
function once(body: Readable): () => Readable {
  let used = false;
  return () => {
    if (used) throw new BlobError("ERR_NETWORK", "an upload body cannot be sent twice", { reason: "replay" });
    used = true;
    return body;
  };
}

/** Counts bytes flowing through, for progress. */
function counter(onBytes: (n: number) => void): Transform {
  // Uploads read a fresh buffer per chunk: let V8 hand their memory back as the upload goes (see core).
  const sweep = bufferSweeper();
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      sweep(chunk.length);
      callback(null, chunk);
    },
  });
}

/**
 * One repository in an OCI distribution registry, as an {@link OciStore}: manifests (fetched with the right
 * `Accept`, verified against their digest), blobs (HEAD before upload, cross-repository mount, single-PUT
 * or resumable chunked uploads streamed from disk, range reads through `@blobkit/http-source`), tags with
 * pagination, deletion and referrers (OCI 1.1 API, or the `sha256-<hex>` tag schema, read and written).
 *
 * @public
 */
export class RegistryStore implements OciStore {
  readonly name: string;
  /** `host[:port]` of the API. */
  readonly host: string;
  readonly repository: string;
  readonly #http: RegistryHttp;
  readonly #auth: RegistryAuth;
  readonly #ownsAuth: boolean;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #monolithicMax: number;
  readonly #chunkSize: number;
  readonly #tagPageSize: number;
  /** Retry and timeout settings, for registry requests and blob range reads alike. */
  readonly #retrying: { retries: number; retryDelayMs: number; maxRetryDelayMs: number; timeoutMs: number };
  readonly #referrersMode: "auto" | "never";
  readonly #onRangeIgnored: "error" | "discard";
  /** Whether the referrers API exists: unknown until a push or a query tells. */
  #referrersApi: boolean | undefined;
  #closed = false;

  constructor(options: RegistryStoreOptions) {
    if (typeof options.host !== "string" || options.host === "" || /[/\s@]/.test(options.host)) {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `registry host must be host[:port], got ${JSON.stringify(options.host)}`,
      );
    }
    if (
      typeof options.repository !== "string" ||
      !/^[a-z0-9]+(?:[._/-]+[a-z0-9]+)*$/.test(options.repository)
    ) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `invalid repository ${JSON.stringify(options.repository)}`);
    }
    this.host = options.host.toLowerCase();
    this.repository = options.repository;
    this.name = `${this.host}/${this.repository}`;
    const plain = options.plainHttp ?? "auto";
    const scheme =
      plain === "auto" ? (isLoopbackHost(this.host) ? "http" : "https") : plain ? "http" : "https";
    this.#ownsAuth = options.auth === undefined;
    this.#auth = options.auth ?? new RegistryAuth();
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher = options.dispatcher ?? new Agent({ connections: 32, connectTimeout: 10_000 });
    this.#monolithicMax = positive(
      "monolithicUploadMax",
      options.monolithicUploadMax,
      DEFAULT_MONOLITHIC_UPLOAD_MAX,
      true,
    );
    this.#chunkSize = positive("uploadChunkSize", options.uploadChunkSize, DEFAULT_UPLOAD_CHUNK_SIZE);
    this.#tagPageSize = positive("tagPageSize", options.tagPageSize, 1000);
    this.#referrersMode = options.referrersApi ?? "auto";
    this.#referrersApi = this.#referrersMode === "never" ? false : undefined;
    this.#onRangeIgnored = options.onRangeIgnored ?? "error";
    this.#retrying = {
      retries: positive("retries", options.retries, 5, true),
      retryDelayMs: positive("retryDelayMs", options.retryDelayMs, 200, true),
      maxRetryDelayMs: positive("maxRetryDelayMs", options.maxRetryDelayMs, 10_000, true),
      timeoutMs: positive("timeoutMs", options.timeoutMs, 60_000),
    };
    this.#http = new RegistryHttp({
      host: this.host,
      scheme,
      auth: this.#auth,
      dispatcher: this.#dispatcher,
      userAgent: options.userAgent ?? DEFAULT_USER_AGENT,
      ...this.#retrying,
    });
  }

  get #pull(): string[] {
    return [`repository:${this.repository}:pull`];
  }

  get #push(): string[] {
    return [`repository:${this.repository}:pull,push`];
  }

  #path(kind: "manifests" | "blobs" | "referrers", target: string): string {
    return `/v2/${this.repository}/${kind}/${target}`;
  }

  #check(signal: AbortSignal | undefined): void {
    if (this.#closed) throw new BlobError("ERR_CLOSED", `registry store ${this.name} is closed`);
    throwIfAborted(signal);
  }

  async resolve(reference: string, options: StoreOptions = {}): Promise<Descriptor> {
    this.#check(options.signal);
    const target = checkTarget(reference);
    const response = await this.#http.send({
      method: "HEAD",
      url: this.#path("manifests", target),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: this.#pull,
      expect: [200],
      signal: options.signal,
      subject: `${this.name}:${target}`,
    });
    await response.body.dump();
    const digest = firstHeader(response.headers, "docker-content-digest");
    const size = Number(firstHeader(response.headers, "content-length"));
    const mediaType = mediaTypeOf(firstHeader(response.headers, "content-type"));
    // Without a digest header (or with an unusable one) the manifest itself is fetched and hashed.
    if (
      digest === undefined ||
      !isSha256Digest(digest) ||
      !Number.isSafeInteger(size) ||
      mediaType === undefined
    ) {
      return (await this.fetchManifest(target, options)).descriptor;
    }
    if (isDigestReference(target) && digest !== target) {
      throw new BlobError(
        "ERR_INTEGRITY",
        `${this.name}: asked for ${target}, the registry answered ${digest}`,
        {
          reason: "digest-mismatch",
          subject: target,
        },
      );
    }
    return { mediaType, digest, size };
  }

  async fetchManifest(reference: string, options: FetchOptions = {}): Promise<FetchedManifest> {
    this.#check(options.signal);
    const target = checkTarget(reference);
    return this.#retryBody(() => this.#fetchManifest(target, options));
  }

  /**
   * Runs a whole GET again when its body broke off (the request engine retries only up to the headers), a
   * few times, so a reset in the middle of a manifest or index is not the caller's problem.
   */
  async #retryBody<T>(fetch: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fetch();
      } catch (error) {
        if (attempt >= 2 || !isBlobError(error, "ERR_NETWORK") || error.reason !== "body") throw error;
      }
    }
  }

  async #fetchManifest(target: string, options: FetchOptions): Promise<FetchedManifest> {
    const subject = `${this.name}:${target}`;
    const response = await this.#http.send({
      method: "GET",
      url: this.#path("manifests", target),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: this.#pull,
      expect: [200],
      signal: options.signal,
      subject,
    });
    const bytes = await readBody(
      response,
      options.maxBytes ?? DEFAULT_MAX_MANIFEST_SIZE,
      `manifest ${subject}`,
      options.signal,
    );
    const digest = sha256Digest(bytes);
    const claimed = firstHeader(response.headers, "docker-content-digest");
    const expected = isDigestReference(target) ? target : claimed;
    if (expected !== undefined && isSha256Digest(expected) && expected !== digest) {
      throw new BlobError("ERR_INTEGRITY", `manifest ${subject} hashes to ${digest}, expected ${expected}`, {
        reason: "digest-mismatch",
        subject,
      });
    }
    let mediaType = mediaTypeOf(firstHeader(response.headers, "content-type"));
    if (mediaType === undefined || mediaType === "application/json" || mediaType === "text/plain") {
      mediaType = jsonMediaType(bytes) ?? mediaType ?? "application/octet-stream";
    }
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  async pushManifest(
    bytes: Uint8Array,
    mediaType: string,
    options: PushManifestOptions = {},
  ): Promise<Descriptor> {
    this.#check(options.signal);
    const digest = sha256Digest(bytes);
    const target = options.tag === undefined ? digest : assertValidTag(options.tag);
    const subjectDigest = manifestSubject(bytes);
    const response = await this.#http.send({
      method: "PUT",
      url: this.#path("manifests", target),
      headers: { "content-type": mediaType },
      body: () => bytes,
      scopes: this.#push,
      expect: [200, 201, 202],
      signal: options.signal,
      subject: `${this.name}:${target}`,
    });
    await response.body.dump();
    const answered = firstHeader(response.headers, "docker-content-digest");
    if (answered !== undefined && answered !== digest) {
      throw new BlobError(
        "ERR_INTEGRITY",
        `${this.name}: pushed manifest ${digest}, the registry stored ${answered}`,
        {
          reason: "digest-mismatch",
          subject: digest,
        },
      );
    }
    const descriptor: Descriptor = { mediaType, digest, size: bytes.length };
    if (subjectDigest !== undefined) {
      if (this.#referrersMode !== "never" && firstHeader(response.headers, "oci-subject") !== undefined) {
        this.#referrersApi = true;
      } else {
        await this.#addToReferrersIndex(subjectDigest, referrerDescriptor(bytes, descriptor), options.signal);
      }
    }
    return descriptor;
  }

  /** Adds a referrer to the `sha256-<hex>` tag-schema index of `subject` (created when missing). */
  async #addToReferrersIndex(
    subject: string,
    descriptor: Descriptor,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const tag = referrersTag(subject);
    let manifests: Descriptor[] = [];
    try {
      const existing = await this.fetchManifest(tag, { signal });
      manifests = parseDescriptorList(existing.bytes, `referrers index ${this.name}:${tag}`);
    } catch (error) {
      if (!isBlobError(error, "ERR_NOT_FOUND")) throw error;
    }
    if (manifests.some((entry) => entry.digest === descriptor.digest)) return;
    manifests.push(descriptor);
    const index = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests }),
    );
    await this.pushManifest(index, MEDIA_TYPE_OCI_INDEX, { tag, signal });
  }

  async tag(descriptor: Descriptor, tag: string, options: StoreOptions = {}): Promise<void> {
    this.#check(options.signal);
    checkDescriptor(descriptor);
    assertValidTag(tag);
    const { bytes, descriptor: fetched } = await this.fetchManifest(descriptor.digest, options);
    await this.pushManifest(bytes, fetched.mediaType, { tag, signal: options.signal });
  }

  async *listTags(options: StoreOptions = {}): AsyncIterable<string> {
    this.#check(options.signal);
    let next: string | undefined = `/v2/${this.repository}/tags/list?n=${this.#tagPageSize}`;
    const seen = new Set<string>();
    while (next !== undefined) {
      const response = await this.#http.send({
        method: "GET",
        url: next,
        scopes: this.#pull,
        expect: [200],
        signal: options.signal,
        subject: `${this.name} tags`,
      });
      const body = await readBody(response, 16 * 1024 * 1024, `${this.name} tag list`, options.signal);
      let tags: unknown;
      try {
        tags = (JSON.parse(new TextDecoder().decode(body)) as { tags?: unknown }).tags ?? [];
      } catch (cause) {
        throw new BlobError("ERR_NETWORK", `${this.name}: the tag list is not JSON`, {
          cause,
          reason: "bad-response",
        });
      }
      if (!Array.isArray(tags))
        throw new BlobError("ERR_NETWORK", `${this.name}: malformed tag list`, { reason: "bad-response" });
      for (const tag of tags) if (typeof tag === "string") yield tag;
      next = nextLink(headerValues(response.headers, "link"));
      // A registry that keeps answering with the same page would otherwise loop forever.
      if (next !== undefined && seen.has(next)) break;
      if (next !== undefined) seen.add(next);
    }
  }

  async deleteManifest(digest: string, options: StoreOptions = {}): Promise<void> {
    this.#check(options.signal);
    if (!isSha256Digest(digest))
      throw new BlobError("ERR_INVALID_ARGUMENT", "deleteManifest needs a sha256 digest");
    const response = await this.#http.send({
      method: "DELETE",
      url: this.#path("manifests", digest),
      scopes: [`repository:${this.repository}:delete`],
      expect: [200, 202, 204],
      signal: options.signal,
      subject: `${this.name}@${digest}`,
    });
    await response.body.dump();
  }

  async statBlob(digest: string, options: StoreOptions = {}): Promise<number | undefined> {
    this.#check(options.signal);
    if (!isSha256Digest(digest))
      throw new BlobError("ERR_INVALID_ARGUMENT", "statBlob needs a sha256 digest");
    try {
      const response = await this.#http.send({
        method: "HEAD",
        url: this.#path("blobs", digest),
        scopes: this.#pull,
        expect: [200],
        signal: options.signal,
        subject: `${this.name}@${digest}`,
      });
      await response.body.dump();
      const size = Number(firstHeader(response.headers, "content-length"));
      return Number.isSafeInteger(size) ? size : undefined;
    } catch (error) {
      if (isBlobError(error, "ERR_NOT_FOUND")) return undefined;
      throw error;
    }
  }

  async fetchBlob(descriptor: Descriptor, options: FetchOptions = {}): Promise<Uint8Array> {
    this.#check(options.signal);
    checkDescriptor(descriptor);
    return this.#retryBody(() => this.#fetchBlob(descriptor, options));
  }

  async #fetchBlob(descriptor: Descriptor, options: FetchOptions): Promise<Uint8Array> {
    const subject = `${this.name}@${descriptor.digest}`;
    if (options.maxBytes !== undefined && descriptor.size > options.maxBytes) {
      throw new BlobError(
        "ERR_LIMIT_EXCEEDED",
        `${subject} is ${descriptor.size} bytes, more than the ${options.maxBytes} allowed`,
        {
          reason: "too-large",
          subject,
        },
      );
    }
    const response = await this.#http.send({
      method: "GET",
      url: this.#path("blobs", descriptor.digest),
      scopes: this.#pull,
      expect: [200],
      signal: options.signal,
      subject,
    });
    let bytes: Uint8Array;
    try {
      bytes = await readBody(response, descriptor.size, `blob ${subject}`, options.signal);
    } catch (error) {
      if (isBlobError(error, "ERR_LIMIT_EXCEEDED")) {
        throw new BlobError(
          "ERR_INTEGRITY",
          `blob ${subject} is longer than its descriptor's ${descriptor.size} bytes`,
          {
            reason: "size-mismatch",
            subject,
          },
        );
      }
      throw error;
    }
    if (bytes.length !== descriptor.size || sha256Digest(bytes) !== descriptor.digest) {
      throw new BlobError("ERR_INTEGRITY", `blob ${subject} does not match its descriptor (digest or size)`, {
        reason: bytes.length !== descriptor.size ? "size-mismatch" : "digest-mismatch",
        subject,
      });
    }
    return bytes;
  }

  async openBlob(descriptor: Descriptor, options: StoreOptions = {}): Promise<ByteSource> {
    this.#check(options.signal);
    checkDescriptor(descriptor);
    const scopes = this.#pull;
    return new HttpSource(this.#http.url(this.#path("blobs", descriptor.digest)), {
      size: descriptor.size,
      id: descriptor.digest,
      // Named by its digest: the bytes cannot change, so a broken stream may always resume.
      immutable: true,
      dispatcher: this.#dispatcher,
      retries: this.#retrying.retries,
      retryDelayMs: this.#retrying.retryDelayMs,
      maxRetryDelayMs: this.#retrying.maxRetryDelayMs,
      // The registry's timeout bounds the wait for headers and between body chunks of range reads too.
      idleTimeoutMs: this.#retrying.timeoutMs,
      onRangeIgnored: this.#onRangeIgnored,
      getHeaders: async ({ signal }): Promise<Record<string, string>> => {
        const authorization = await this.#auth.authorization(this.host, scopes, { signal });
        return authorization === undefined ? {} : { authorization };
      },
      onUnauthorized: ({ wwwAuthenticate, authorization, signal }) =>
        this.#auth.respond(this.host, scopes, wwwAuthenticate, { signal, sent: authorization }),
    });
  }

  async pushBlob(
    descriptor: Descriptor,
    content: BlobContent,
    options: PushBlobOptions & { mountFrom?: string } = {},
  ): Promise<void> {
    this.#check(options.signal);
    checkDescriptor(descriptor);
    const { signal } = options;
    const progress = (bytes: number): void =>
      options.onProgress?.({ digest: descriptor.digest, bytes, total: descriptor.size });
    if ((await this.statBlob(descriptor.digest, { signal })) === descriptor.size) {
      progress(descriptor.size);
      return;
    }
    if (content instanceof Uint8Array && content.length !== descriptor.size) {
      throw new BlobError(
        "ERR_INTEGRITY",
        `blob content is ${content.length} bytes, its descriptor says ${descriptor.size}`,
        {
          reason: "size-mismatch",
          subject: descriptor.digest,
        },
      );
    }
    let location = await this.#startUpload(descriptor, options.mountFrom, signal);
    if (location === undefined) {
      progress(descriptor.size);
      return;
    }
    const digestQuery = (url: string): string => {
      const target = this.#http.url(url);
      target.searchParams.set("digest", descriptor.digest);
      return target.href;
    };
    const subject = `${this.name}@${descriptor.digest}`;
    // Small blobs and streams go in one request; a failure restarts the upload from a fresh session.
    if (descriptor.size <= this.#monolithicMax || !("path" in content || content instanceof Uint8Array)) {
      for (let attempt = 0; ; attempt++) {
        let sent = 0;
        let body: Readable | undefined;
        try {
          body = await this.#contentStream(content, 0, descriptor.size, (n) => {
            sent += n;
            progress(sent);
          });
          const response = await this.#http.send({
            method: "PUT",
            url: digestQuery(location),
            headers: {
              "content-type": "application/octet-stream",
              "content-length": String(descriptor.size),
            },
            body: once(body),
            scopes: this.#push,
            expect: [201, 204],
            retry: false,
            signal,
            subject,
          });
          await response.body.dump();
          return;
        } catch (error) {
          if (signal?.aborted || !isBlobError(error, "ERR_NETWORK") || attempt >= 2) throw error;
          location = (await this.#startUpload(descriptor, undefined, signal)) ?? "";
          if (location === "") return;
        } finally {
          // A body the request never took (or dropped half-way) still holds its file descriptor / source.
          body?.destroy();
        }
      }
    }
    // Large blobs from memory or disk: PATCH chunks, always to the newest Location; after a failure, ask the
    // registry how much it has (GET on the upload) and resume from there.
    let offset = 0;
    let failures = 0;
    while (offset < descriptor.size) {
      const end = Math.min(descriptor.size, offset + this.#chunkSize);
      let body: Readable | undefined;
      try {
        let sent = offset;
        body = await this.#contentStream(content, offset, end, (n) => {
          sent += n;
          progress(sent);
        });
        const response = await this.#http.send({
          method: "PATCH",
          url: location,
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(end - offset),
            "content-range": `${offset}-${end - 1}`,
          },
          body: once(body),
          scopes: this.#push,
          expect: [202],
          retry: false,
          signal,
          subject,
        });
        await response.body.dump();
        location = firstHeader(response.headers, "location") ?? location;
        offset = end;
      } catch (error) {
        if (signal?.aborted || ++failures > 4) throw error;
        // A registry that refuses the chunk's Content-Range (416) lost track of the session like one that
        // forgot it: start over. Anything else but a network failure is the caller's error.
        const lost = isBlobError(error, "ERR_OUT_OF_RANGE") || isBlobError(error, "ERR_NOT_FOUND");
        if (!lost && !isBlobError(error, "ERR_NETWORK")) throw error;
        const status: { location: string; offset: number } | undefined = lost
          ? undefined
          : await this.#uploadStatus(location, signal);
        if (status === undefined || status.offset > descriptor.size) {
          location = (await this.#startUpload(descriptor, undefined, signal)) ?? "";
          if (location === "") return;
          offset = 0;
        } else {
          location = status.location;
          offset = status.offset;
        }
      } finally {
        body?.destroy();
      }
    }
    const response = await this.#http.send({
      method: "PUT",
      url: digestQuery(location),
      headers: { "content-length": "0" },
      scopes: this.#push,
      expect: [201, 204],
      signal,
      subject,
    });
    await response.body.dump();
  }

  /** Opens an upload session (or mounts): the session's Location, or undefined when the blob is now there. */
  async #startUpload(
    descriptor: Descriptor,
    mountFrom: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const query =
      mountFrom === undefined
        ? ""
        : `?mount=${encodeURIComponent(descriptor.digest)}&from=${encodeURIComponent(mountFrom)}`;
    const scopes = mountFrom === undefined ? this.#push : [...this.#push, `repository:${mountFrom}:pull`];
    const response = await this.#http.send({
      method: "POST",
      url: `/v2/${this.repository}/blobs/uploads/${query}`,
      headers: { "content-length": "0" },
      scopes,
      expect: [201, 202],
      retry: true,
      signal,
      subject: `${this.name}@${descriptor.digest}`,
    });
    await response.body.dump();
    if (response.statusCode === 201) return undefined;
    const location = firstHeader(response.headers, "location");
    if (location === undefined) {
      throw new BlobError("ERR_NETWORK", `${this.name}: upload session without a Location`, {
        reason: "bad-response",
      });
    }
    return location;
  }

  /** Where an interrupted upload stands, or undefined when the session is gone. */
  async #uploadStatus(
    location: string,
    signal: AbortSignal | undefined,
  ): Promise<{ location: string; offset: number } | undefined> {
    try {
      const response = await this.#http.send({
        method: "GET",
        url: location,
        scopes: this.#push,
        expect: [204],
        signal,
        subject: `${this.name} upload`,
      });
      await response.body.dump();
      const range = /^(?:bytes=)?0-([0-9]+)$/.exec(firstHeader(response.headers, "range") ?? "");
      // `0-0` means "nothing" on some registries and "one byte" on others (distribution answers it for both):
      // ambiguous, so start a fresh session rather than risk skipping or repeating a byte.
      if (range === null || range[1] === "0") return undefined;
      return {
        location: firstHeader(response.headers, "location") ?? location,
        offset: Number(range[1]) + 1,
      };
    } catch (error) {
      if (isBlobError(error, "ERR_NOT_FOUND")) return undefined;
      throw error;
    }
  }

  /** The bytes `[start, end)` of `content` as a stream that reports progress. */
  async #contentStream(
    content: BlobContent,
    start: number,
    end: number,
    onBytes: (n: number) => void,
  ): Promise<Readable> {
    let source: Readable;
    if (content instanceof Uint8Array) {
      source = Readable.from([Buffer.from(content.buffer, content.byteOffset + start, end - start)], {
        objectMode: false,
      });
    } else if ("path" in content) {
      source =
        end === start
          ? Readable.from([])
          : createReadStream(content.path, { start, end: end - 1, highWaterMark: 256 * 1024 });
    } else {
      source = Readable.fromWeb(
        (await content.stream()) as import("node:stream/web").ReadableStream<Uint8Array>,
      );
    }
    const counted = counter(onBytes);
    // pipeline, not pipe: destroying the request body (a reset, a refused upload) also closes the source.
    pipeline(source, counted, () => {});
    return counted;
  }

  async referrers(digest: string, options: ReferrersOptions = {}): Promise<Descriptor[]> {
    this.#check(options.signal);
    if (!isSha256Digest(digest))
      throw new BlobError("ERR_INVALID_ARGUMENT", "referrers needs a sha256 digest");
    const { artifactType, signal } = options;
    let found: Descriptor[] | undefined;
    if (this.#referrersApi !== false) found = await this.#referrersFromApi(digest, artifactType, signal);
    if (found === undefined) {
      try {
        const index = await this.fetchManifest(referrersTag(digest), { signal });
        found = parseDescriptorList(index.bytes, `referrers index of ${digest}`);
      } catch (error) {
        if (!isBlobError(error, "ERR_NOT_FOUND")) throw error;
        found = [];
      }
    }
    return artifactType === undefined ? found : found.filter((entry) => entry.artifactType === artifactType);
  }

  /** The referrers API's answer, or undefined when the registry has no such API. */
  async #referrersFromApi(
    digest: string,
    artifactType: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Descriptor[] | undefined> {
    let next: string | undefined =
      this.#path("referrers", digest) +
      (artifactType === undefined ? "" : `?artifactType=${encodeURIComponent(artifactType)}`);
    const all: Descriptor[] = [];
    while (next !== undefined) {
      let response: Awaited<ReturnType<RegistryHttp["send"]>>;
      try {
        response = await this.#http.send({
          method: "GET",
          url: next,
          headers: { accept: MEDIA_TYPE_OCI_INDEX },
          scopes: this.#pull,
          expect: [200],
          signal,
          subject: `referrers of ${this.name}@${digest}`,
        });
      } catch (error) {
        // A 404 whose error is not about the repository means the endpoint does not exist.
        if (isBlobError(error, "ERR_NOT_FOUND") && error.reason !== "name_unknown" && all.length === 0) {
          this.#referrersApi = false;
          return undefined;
        }
        throw error;
      }
      const body = await readBody(response, DEFAULT_MAX_MANIFEST_SIZE, `referrers of ${digest}`, signal);
      if (mediaTypeOf(firstHeader(response.headers, "content-type")) !== MEDIA_TYPE_OCI_INDEX) {
        if (all.length === 0) {
          this.#referrersApi = false;
          return undefined;
        }
        throw new BlobError("ERR_NETWORK", `${this.name}: a referrers page is not an OCI index`, {
          reason: "bad-response",
        });
      }
      this.#referrersApi = true;
      all.push(...parseDescriptorList(body, `referrers of ${digest}`));
      next = nextLink(headerValues(response.headers, "link"));
    }
    return all;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsDispatcher) await this.#dispatcher.close().catch(() => {});
    if (this.#ownsAuth) await this.#auth.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The `mediaType` field of a JSON manifest, if any. */
function jsonMediaType(bytes: Uint8Array): string | undefined {
  try {
    const value = (JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: unknown }).mediaType;
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The subject digest of a manifest, if it has one. */
function manifestSubject(bytes: Uint8Array): string | undefined {
  try {
    const subject = (JSON.parse(new TextDecoder().decode(bytes)) as { subject?: { digest?: unknown } })
      .subject;
    return typeof subject?.digest === "string" && isSha256Digest(subject.digest) ? subject.digest : undefined;
  } catch {
    return undefined;
  }
}

/** The descriptor a referrers listing shows for a manifest: with its artifact type and annotations. */
export function referrerDescriptor(bytes: Uint8Array, descriptor: Descriptor): Descriptor {
  const json = JSON.parse(new TextDecoder().decode(bytes)) as {
    artifactType?: unknown;
    config?: { mediaType?: unknown };
    annotations?: unknown;
  };
  const artifactType =
    typeof json.artifactType === "string"
      ? json.artifactType
      : typeof json.config?.mediaType === "string"
        ? json.config.mediaType
        : undefined;
  const out: Descriptor = {
    mediaType: descriptor.mediaType,
    digest: descriptor.digest,
    size: descriptor.size,
  };
  if (artifactType !== undefined) out.artifactType = artifactType;
  if (typeof json.annotations === "object" && json.annotations !== null && !Array.isArray(json.annotations)) {
    out.annotations = json.annotations as Record<string, string>;
  }
  return out;
}

/** The `rel="next"` target of `Link` headers. */
function nextLink(links: string[]): string | undefined {
  for (const link of links) {
    for (const part of link.split(",")) {
      const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
      if (match !== null && /rel="?next"?/.test(match[2] ?? "")) return match[1];
    }
  }
  return undefined;
}
