import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { ByteSource, ReadOptions } from "@blobkit/core";
import {
  assertReadArguments,
  BlobError,
  isBlobError,
  outOfRangeError,
  raceAbort,
  throwIfAborted,
} from "@blobkit/core";
import { Agent, type Dispatcher } from "undici";
import { type BytePart, byterangesBoundary, parseByteranges } from "./multipart.ts";
import { dispatchRequest, type ResponseBody } from "./response.ts";

/** Default number of retries after the first attempt of a request. @public */
export const DEFAULT_HTTP_RETRIES = 3;
/** Default maximum number of requests one {@link HttpSource} has in flight at once. @public */
export const DEFAULT_HTTP_MAX_CONCURRENCY = 16;
/** Default connect timeout, in milliseconds. @public */
export const DEFAULT_HTTP_CONNECT_TIMEOUT_MS = 10_000;
/** Default idle timeout (time to the response headers, and between two body chunks), in milliseconds. @public */
export const DEFAULT_HTTP_IDLE_TIMEOUT_MS = 30_000;
/** Default total timeout of one request attempt (headers and whole body of a `read`), in milliseconds. @public */
export const DEFAULT_HTTP_TIMEOUT_MS = 120_000;

/** Options of {@link HttpSource}. @public */
export interface HttpSourceOptions {
  /**
   * Size of the object in bytes when already known (an OCI descriptor carries it): no probe request is made,
   * and every read is checked against it (a server reporting another total is an integrity error).
   */
  size?: number | undefined;
  /**
   * The object's ETag when already known. It is sent as `If-Match` on every range request and part of the
   * default {@link HttpSource.id}; a server answering with another ETag (or 412) is `ERR_SOURCE_CHANGED`.
   */
  etag?: string | undefined;
  /**
   * Extra request headers (for example `Authorization`). `Authorization`, `Cookie` and
   * `Proxy-Authorization` are not sent to another origin after a redirect.
   */
  headers?: Record<string, string> | undefined;
  /**
   * An undici dispatcher (Agent, Pool, ProxyAgent, MockAgent…; undici 6, 7 or 8) to send requests
   * through. It stays owned by the caller: {@link HttpSource.close} never closes it. When absent, the source
   * creates its own keep-alive `Agent` and closes it in `close()`.
   */
  dispatcher?: Dispatcher | undefined;
  /**
   * Identity of the bytes (the block-cache key). Default: `url:<url>` without credentials, fragment and
   * query parameters that look like secrets (signatures, tokens, keys), followed by `#<etag>` when `etag`
   * was given. Pass a content digest (`sha256:<hex>`) when you have one.
   */
  id?: string | undefined;
  /**
   * Auth hook: returns headers (typically `Authorization`) for each request to the source's own origin —
   * never for another origin after a redirect. Called once per request sent, so it can hand out a token
   * refreshed by {@link HttpSourceOptions.onUnauthorized}. Its headers override `headers`. An error it
   * throws fails the request (`ERR_UNAUTHORIZED` unless it is a `BlobError`).
   */
  getHeaders?:
    | ((context: HttpHeadersContext) => Record<string, string> | Promise<Record<string, string>>)
    | undefined;
  /**
   * Auth hook: called when the source's own origin answers 401 (for example to fetch a registry token for the
   * `WWW-Authenticate` challenge). Resolving `true` sends the request again, once, with fresh
   * {@link HttpSourceOptions.getHeaders}; `false` makes the read fail with `ERR_UNAUTHORIZED`.
   */
  onUnauthorized?: ((context: HttpUnauthorizedContext) => boolean | Promise<boolean>) | undefined;
  /**
   * Overall deadline of one `read` / `size` / `stream` opening, retries and backoff included, in ms. When
   * it passes, the read fails with the last error (or `ERR_NETWORK`, reason `"timeout"`). Default: none
   * (bounded by `retries` × `timeoutMs` plus backoff).
   */
  deadlineMs?: number | undefined;
  /**
   * What to do when a server answers a range request with 200 and the whole object (it ignores `Range`):
   * `"error"` (default) rejects with `ERR_RANGE_NOT_SUPPORTED`; `"discard"` reads the body, drops the
   * bytes before the range (at most `maxDiscardBytes`, else `ERR_RANGE_NOT_SUPPORTED`), keeps the range
   * and closes the connection. The body's length must match the known size either way.
   */
  onRangeIgnored?: "error" | "discard" | undefined;
  /**
   * The bytes at this URL never change (content-addressed, like a registry blob URL named by its digest). A
   * stream whose body broke off is then resumed even when the server sends no strong ETag; otherwise a
   * resume needs one (sent as `If-Match`), so two versions of an object are never spliced. Default `false`.
   */
  immutable?: boolean | undefined;
  /** Most bytes dropped before a range in `onRangeIgnored: "discard"` mode. Default 16 MiB. */
  maxDiscardBytes?: number | undefined;
  /** Connect timeout of the source's own agent, in ms (not applied to a caller's dispatcher). Default 10 s. */
  connectTimeoutMs?: number | undefined;
  /** Longest wait for the response headers, and between two body chunks, in ms. Default 30 s. */
  idleTimeoutMs?: number | undefined;
  /**
   * Total time one attempt of a request may take, in ms: headers and whole body of a `read`, headers only
   * for `stream`. A timed-out attempt is retried, then fails with `ERR_NETWORK` (reason `"timeout"`).
   * Default 120 s.
   */
  timeoutMs?: number | undefined;
  /**
   * Retries after the first attempt on connection errors, timeouts, 408, 429, 5xx, truncated bodies and
   * mismatched `Content-Range`s. Default 3; 0 disables retries.
   */
  retries?: number | undefined;
  /** First backoff delay in ms; doubled on each retry, with jitter. Default 100 ms. */
  retryDelayMs?: number | undefined;
  /**
   * Longest wait before a retry, in ms. A `Retry-After` longer than this fails the request instead of
   * waiting. Default 10 s.
   */
  maxRetryDelayMs?: number | undefined;
  /** Maximum requests in flight at once (also the connection count of the source's own agent). Default 16. */
  maxConcurrency?: number | undefined;
  /** Maximum redirects followed per request. Default 5; 0 makes any redirect an `ERR_NETWORK` error. */
  maxRedirects?: number | undefined;
  /**
   * How long the final location of a redirect is remembered and used directly, in ms. Default 60 s.
   * A remembered location answering 401/403/404/410 is forgotten and the original URL is asked again.
   */
  redirectTtlMs?: number | undefined;
}

/** What {@link HttpSourceOptions.getHeaders} receives. @public */
export interface HttpHeadersContext {
  /** The URL about to be requested (always on the source's own origin). */
  url: URL;
  /** Aborted when the request is. */
  signal: AbortSignal;
}

/** What {@link HttpSourceOptions.onUnauthorized} receives. @public */
export interface HttpUnauthorizedContext {
  /** The URL that answered 401 (always on the source's own origin). */
  url: URL;
  /** The `WWW-Authenticate` challenge of the answer, if any. */
  wwwAuthenticate: string | undefined;
  /**
   * The `Authorization` the refused request carried (`null`: none), so a token cache can tell "this token was
   * refused" from "another request already refreshed it".
   */
  authorization: string | null;
  /** Aborted when the request is. */
  signal: AbortSignal;
}

/** One byte range of {@link HttpSource.readRanges}. @public */
export interface ByteRange {
  /** First byte. */
  offset: number;
  /** Number of bytes. */
  length: number;
}

/** Options of {@link HttpSource.readRanges}. @public */
export interface ReadRangesOptions extends ReadOptions {
  /** Ranges separated by at most this many bytes are fetched by one request. Default 64 KiB. */
  gapBytes?: number | undefined;
  /** A coalesced request never spans more than this many bytes (unless one range alone does). Default 8 MiB. */
  maxSpanBytes?: number | undefined;
  /**
   * Ask for up to {@link ReadRangesOptions.maxParts} spans in one `multipart/byteranges` request instead of
   * one request per span. A server that answers 200, 400 or 416, or with a body that does not parse
   * exactly, is remembered as not supporting it and the spans are read one by one. Default `false`.
   */
  multipart?: boolean | undefined;
  /** Most spans in one multi-range request. Default 16. */
  maxParts?: number | undefined;
}

/** Default {@link ReadRangesOptions.gapBytes}. @public */
export const DEFAULT_COALESCE_GAP_BYTES: number = 64 * 1024;
/** Default {@link ReadRangesOptions.maxSpanBytes}. @public */
export const DEFAULT_COALESCE_MAX_SPAN_BYTES: number = 8 * 1024 * 1024;

/** Counters of an {@link HttpSource}, for tests, logs and benchmarks. @public */
export interface HttpSourceStats {
  /** HTTP requests sent (including retries, redirects and probes). */
  requests: number;
  /** Retries (attempts after the first one) of reads, streams and probes. */
  retries: number;
  /** Redirects followed. */
  redirects: number;
  /** Response body bytes received for reads and streams. */
  bytes: number;
}

/** Query parameters of signed URLs (S3, GCS, Azure SAS, CloudFront) that change when a URL is re-signed. */
const SIGNATURE_PARAMS = new Set([
  "x-amz-algorithm",
  "x-amz-credential",
  "x-amz-date",
  "x-amz-expires",
  "x-amz-security-token",
  "x-amz-signature",
  "x-amz-signedheaders",
  "x-goog-algorithm",
  "x-goog-credential",
  "x-goog-date",
  "x-goog-expires",
  "x-goog-signature",
  "x-goog-signedheaders",
  "awsaccesskeyid",
  "signature",
  "expires",
  "key-pair-id",
  "policy",
  "sig",
  "se",
  "st",
  "sp",
  "sv",
  "sr",
  "spr",
  "skoid",
  "sktid",
  "skt",
  "ske",
  "sks",
  "skv",
]);
/** The only caller headers that follow a request chain once it has left the source's origin. */
const CROSS_ORIGIN_HEADERS = new Set(["accept", "accept-language", "user-agent"]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Largest body read from an error or ignored-range response before the connection is dropped. */
const DRAIN_LIMIT = 64 * 1024;
/** Bytes a `stream()` buffers ahead of its reader (keeps the socket flowing while the reader works). */
const STREAM_BUFFER_BYTES = 1024 * 1024;

/** An attempt failure that may be retried. */
class Retryable extends Error {
  readonly error: BlobError;
  readonly retryAfterMs: number | undefined;
  constructor(error: BlobError, retryAfterMs?: number) {
    super(error.message);
    this.error = error;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Cuts the wanted window out of a response body: `skip` leading bytes are dropped (a 200 answer carrying the
 * whole object), then `length` bytes are kept. Beyond them, a `tolerant` slicer ignores the rest (the whole
 * object) while a strict one reports an overflow (a 206 body longer than asked).
 */
class Slicer {
  #skip: number;
  readonly #length: number;
  readonly tolerant: boolean;
  received = 0;

  constructor(skip: number, length: number, tolerant: boolean) {
    this.#skip = skip;
    this.#length = length;
    this.tolerant = tolerant;
  }

  take(chunk: Uint8Array): Uint8Array | "overflow" {
    let part = chunk;
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, part.byteLength);
      this.#skip -= n;
      part = part.subarray(n);
    }
    const room = this.#length - this.received;
    if (part.byteLength > room) {
      if (!this.tolerant) return "overflow";
      part = part.subarray(0, room);
    }
    this.received += part.byteLength;
    return part;
  }

  get done(): boolean {
    return this.received === this.#length;
  }
}

/** One open response whose status and headers were checked. */
interface OpenResponse {
  /** Key of the location that answered (origin + path) for its validators. */
  location: string;
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

/** What {@link HttpSource} sends: the method and the extra headers of one logical request. */
interface RequestSpec {
  method: "GET" | "HEAD";
  headers: Record<string, string>;
  /** Send `If-Match` with the ETag known for each location asked. */
  conditional?: boolean;
}

/** The validators first seen at one location. */
interface Validators {
  etag: string | undefined;
  lastModified: string | undefined;
}

/** Validators are remembered per answering location: a CDN's ETag is not the origin's. */
function locationKey(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/** Removes credentials, query and fragment from `url` (for error subjects). */
function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  copy.hash = "";
  copy.search = "";
  return copy.href;
}

/**
 * The default id: origin and path, plus a hash of the query without its signature/expiry parameters. Two
 * URLs that name different objects (`?key=a` vs `?key=b`) get different ids; re-signing a URL keeps its id;
 * no query value (which may be a secret) appears in the id itself.
 */
function sourceIdOf(url: URL): string {
  const params = [...url.searchParams]
    .filter(([name]) => !SIGNATURE_PARAMS.has(name.toLowerCase()))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const base = `url:${url.origin}${url.pathname}`;
  if (params.length === 0) return base;
  const query = new URLSearchParams(params).toString();
  return `${base}?sha256-${createHash("sha256").update(query).digest("hex").slice(0, 16)}`;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Parses `bytes a-b/total` (total may be `*`) or `bytes *\/total`. */
/**
 * Parses a `Content-Range` header: `bytes a-b/total` (total may be `*`) or `bytes *\/total` (a 416's).
 * Anything else — including numbers beyond 2^53 — is `undefined`. Exported for the fuzzing run.
 *
 * @internal
 */
export function parseContentRange(
  value: string | undefined,
): { start: number; end: number; total: number | undefined } | { unsatisfied: number } | undefined {
  if (value === undefined) return undefined;
  const unsatisfied = /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(value);
  if (unsatisfied !== null) {
    const total = Number(unsatisfied[1]);
    return Number.isSafeInteger(total) ? { unsatisfied: total } : undefined;
  }
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (m === null) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === "*" ? undefined : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  if (total !== undefined && (!Number.isSafeInteger(total) || end >= total)) return undefined;
  return { start, end, total };
}

/** `Retry-After` (seconds or an HTTP date) in ms, or undefined. */
function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function checkPositive(name: string, value: number | undefined, allowZero: boolean): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `${name} must be a ${allowZero ? "non-negative" : "positive"} integer`,
    );
  }
}

/** Discards a response body without waiting long: reads a little for connection reuse, then drops it. */
async function discard(body: ResponseBody): Promise<void> {
  await body.dump(DRAIN_LIMIT);
}

/** A tiny counting semaphore whose waits can be aborted. */
class Semaphore {
  #free: number;
  readonly #waiters: (() => void)[] = [];

  constructor(slots: number) {
    this.#free = slots;
  }

  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(grant);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal.reason);
      };
      this.#waiters.push(grant);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    return this.#releaser();
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next !== undefined) next();
      else this.#free++;
    };
  }
}

/** Per-attempt signal: the caller's signal, the source's close signal and a clearable timeout. */
interface AttemptSignal {
  signal: AbortSignal;
  timedOut: () => boolean;
  /** Stops the total-timeout timer (the idle timeouts still apply). */
  clearTimer: () => void;
  /** Stops the timer and unlinks the attempt from the caller's signal and from `close()`. */
  dispose: () => void;
}

/**
 * A {@link ByteSource} over an HTTP(S) URL whose server honours `Range`, on undici.
 *
 * - Every `read` is one `GET` with `Range: bytes=a-b` and `Accept-Encoding: identity`. A 206 answer must
 *   carry exactly the requested `Content-Range` (and the known total) and exactly `length` body bytes;
 *   anything else is retried, then rejected with `ERR_INTEGRITY`. Wrong bytes are never returned.
 * - A 200 answer to a range request (a server that ignores `Range`) is never used as the slice: the body is
 *   dropped and the read rejects with `ERR_RANGE_NOT_SUPPORTED`.
 * - 416 → `ERR_OUT_OF_RANGE`, 404/410 → `ERR_NOT_FOUND`, 401 → `ERR_UNAUTHORIZED`, 403 → `ERR_DENIED`,
 *   412 or another ETag / Last-Modified than the first one seen → `ERR_SOURCE_CHANGED`; connection errors,
 *   timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter (honouring `Retry-After`),
 *   then rejected with `ERR_NETWORK`.
 * - Redirects are followed (keeping `Range`; credentials are not sent to another origin) and the final
 *   location is remembered for `redirectTtlMs`.
 * - The size is taken from the options when given (no request), otherwise discovered once (HEAD, falling
 *   back to a one-byte range) and cached; concurrent `size()` calls share one request.
 *
 * Dispatcher ownership: the source creates and closes its own keep-alive undici `Agent` unless a
 * `dispatcher` is passed, which the caller keeps owning (the source never closes it).
 *
 * @public
 */
export class HttpSource implements ByteSource {
  /** Identity of the bytes (see {@link HttpSourceOptions.id}). */
  readonly id: string;
  /** The URL, without credentials, fragment or secret-looking query parameters (safe to log). */
  readonly subject: string;
  readonly #url: URL;
  readonly #headers: Record<string, string>;
  readonly #getHeaders: HttpSourceOptions["getHeaders"];
  readonly #onUnauthorized: HttpSourceOptions["onUnauthorized"];
  readonly #deadlineMs: number | undefined;
  readonly #onRangeIgnored: "error" | "discard";
  readonly #maxDiscardBytes: number;
  readonly #immutable: boolean;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #idleTimeoutMs: number;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #retryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #maxRedirects: number;
  readonly #redirectTtlMs: number;
  readonly #semaphore: Semaphore;
  readonly #closeController = new AbortController();
  /** Controllers of the attempts in flight, aborted by `close()`. */
  readonly #active = new Set<AbortController>();
  readonly #stats: HttpSourceStats = { requests: 0, retries: 0, redirects: 0, bytes: 0 };
  #size: number | undefined;
  #sizePromise: Promise<number> | undefined;
  /** Validators per answering location (see {@link locationKey}). */
  readonly #validators = new Map<string, Validators>();
  /** Where the first bytes came from (see #checkValidators). */
  #dataLocation: string | undefined;
  #redirect: { url: URL; expires: number } | undefined;
  /** Set once the server failed a multi-range request: later `readRanges` use single ranges. */
  #noMultipart = false;
  #closing: Promise<void> | undefined;

  /**
   * @param url - An `http:` or `https:` URL (a string or a `URL`). `user:password@` in it becomes a Basic
   *   `Authorization` header (unless `headers` has one), sent to this origin only; credentials are never
   *   part of the id, `subject` or error messages.
   * @param options - See {@link HttpSourceOptions}.
   */
  constructor(url: string | URL, options: HttpSourceOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(typeof url === "string" ? url : url.href);
    } catch (error) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "HttpSource needs a valid URL", { cause: error });
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new BlobError("ERR_INVALID_ARGUMENT", `HttpSource needs an http(s) URL, got ${parsed.protocol}`);
    }
    checkPositive("size", options.size, true);
    checkPositive("connectTimeoutMs", options.connectTimeoutMs, false);
    checkPositive("idleTimeoutMs", options.idleTimeoutMs, false);
    checkPositive("timeoutMs", options.timeoutMs, false);
    checkPositive("retries", options.retries, true);
    checkPositive("retryDelayMs", options.retryDelayMs, true);
    checkPositive("maxRetryDelayMs", options.maxRetryDelayMs, true);
    checkPositive("maxConcurrency", options.maxConcurrency, false);
    checkPositive("maxRedirects", options.maxRedirects, true);
    checkPositive("redirectTtlMs", options.redirectTtlMs, true);
    checkPositive("deadlineMs", options.deadlineMs, false);
    this.#getHeaders = options.getHeaders;
    this.#onUnauthorized = options.onUnauthorized;
    this.#deadlineMs = options.deadlineMs;
    checkPositive("maxDiscardBytes", options.maxDiscardBytes, true);
    if (
      options.onRangeIgnored !== undefined &&
      options.onRangeIgnored !== "error" &&
      options.onRangeIgnored !== "discard"
    ) {
      throw new BlobError("ERR_INVALID_ARGUMENT", 'onRangeIgnored must be "error" or "discard"');
    }
    this.#onRangeIgnored = options.onRangeIgnored ?? "error";
    this.#maxDiscardBytes = options.maxDiscardBytes ?? 16 * 1024 * 1024;
    this.#immutable = options.immutable === true;
    this.#url = parsed;
    this.subject = redactUrl(parsed);
    this.#size = options.size;
    if (options.etag !== undefined) {
      this.#validators.set(locationKey(parsed), { etag: options.etag, lastModified: undefined });
    }
    this.id = options.id ?? `${sourceIdOf(parsed)}${options.etag === undefined ? "" : `#${options.etag}`}`;
    this.#headers = {};
    for (const [name, value] of Object.entries(options.headers ?? {}))
      this.#headers[name.toLowerCase()] = value;
    if ((parsed.username !== "" || parsed.password !== "") && this.#headers.authorization === undefined) {
      const user = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      this.#headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    }
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_HTTP_IDLE_TIMEOUT_MS;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    this.#retries = options.retries ?? DEFAULT_HTTP_RETRIES;
    this.#retryDelayMs = options.retryDelayMs ?? 100;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 10_000;
    this.#maxRedirects = options.maxRedirects ?? 5;
    this.#redirectTtlMs = options.redirectTtlMs ?? 60_000;
    const maxConcurrency = options.maxConcurrency ?? DEFAULT_HTTP_MAX_CONCURRENCY;
    this.#semaphore = new Semaphore(maxConcurrency);
    if (options.dispatcher !== undefined) {
      this.#dispatcher = options.dispatcher;
      this.#ownsDispatcher = false;
    } else {
      this.#dispatcher = new Agent({
        connections: maxConcurrency,
        connect: { timeout: options.connectTimeoutMs ?? DEFAULT_HTTP_CONNECT_TIMEOUT_MS },
        headersTimeout: this.#idleTimeoutMs,
        bodyTimeout: this.#idleTimeoutMs,
      });
      this.#ownsDispatcher = true;
    }
  }

  /** A snapshot of the request counters. */
  get stats(): HttpSourceStats {
    return { ...this.#stats };
  }

  /**
   * The ETag of the object at its URL once known (given, or first seen in an answer from the URL itself —
   * not from a redirect target), else undefined.
   */
  get etag(): string | undefined {
    return this.#validators.get(locationKey(this.#url))?.etag;
  }

  /**
   * The size in bytes: the `size` option when given (no request), otherwise discovered once with a HEAD
   * (falling back to `GET` of `Range: bytes=0-0`) and cached. Concurrent calls share one request; aborting
   * one call does not abort the others.
   */
  async size(options: ReadOptions = {}): Promise<number> {
    const { signal } = options;
    throwIfAborted(signal);
    this.#checkOpen();
    if (this.#size !== undefined) return this.#size;
    if (this.#sizePromise === undefined) {
      const pending = this.#discoverSize();
      this.#sizePromise = pending;
      pending.then(
        () => {},
        () => {
          if (this.#sizePromise === pending) this.#sizePromise = undefined;
        },
      );
    }
    const size = await raceAbort(this.#sizePromise, signal);
    throwIfAborted(signal);
    this.#checkOpen();
    return size;
  }

  /** Reads exactly `length` bytes at `offset` with one range request (retried on transient failures). */
  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    const { signal } = options;
    throwIfAborted(signal);
    this.#checkOpen();
    assertReadArguments(offset, length, this.subject);
    if (length === 0 || this.#size !== undefined) {
      const size = this.#size ?? (await this.size({ signal }));
      if (offset > size || length > size - offset) throw outOfRangeError(offset, length, size, this.subject);
      if (length === 0) return new Uint8Array(0);
    }
    return await this.#withRetries(signal, async (attempt) => {
      const release = await this.#semaphore.acquire(attempt.signal);
      try {
        const response = await this.#openRange(offset, length, attempt);
        return await this.#readBody(response, length, attempt);
      } finally {
        release();
      }
    });
  }

  /**
   * Reads several ranges, coalescing those that are close (`gapBytes`) into one request of at most
   * `maxSpanBytes`; the spans are fetched concurrently (within `maxConcurrency`) with the same checks and
   * retries as {@link HttpSource.read}. Resolves to one independent array per range, in the given order;
   * rejects as soon as one span fails. Ranges may overlap and come in any order.
   */
  async readRanges(ranges: readonly ByteRange[], options: ReadRangesOptions = {}): Promise<Uint8Array[]> {
    const { signal } = options;
    throwIfAborted(signal);
    this.#checkOpen();
    const gap = options.gapBytes ?? DEFAULT_COALESCE_GAP_BYTES;
    const maxSpan = options.maxSpanBytes ?? DEFAULT_COALESCE_MAX_SPAN_BYTES;
    if (!Number.isSafeInteger(gap) || gap < 0 || !Number.isSafeInteger(maxSpan) || maxSpan <= 0) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "gapBytes and maxSpanBytes must be non-negative integers", {
        subject: this.subject,
      });
    }
    if (!Array.isArray(ranges)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "readRanges needs an array of ranges", {
        subject: this.subject,
      });
    }
    for (const range of ranges) assertReadArguments(range?.offset, range?.length, this.subject);
    const results: Uint8Array[] = new Array(ranges.length);
    const order = ranges
      .map((_, i) => i)
      .filter((i) => ranges[i]!.length > 0)
      .sort((a, b) => ranges[a]!.offset - ranges[b]!.offset);
    const spans: { offset: number; end: number; members: number[] }[] = [];
    for (const i of order) {
      const { offset, length } = ranges[i]!;
      const end = offset + length;
      const last = spans.at(-1);
      if (
        last !== undefined &&
        offset <= last.end + gap &&
        Math.max(last.end, end) - last.offset <= maxSpan
      ) {
        last.end = Math.max(last.end, end);
        last.members.push(i);
      } else {
        spans.push({ offset, end, members: [i] });
      }
    }
    const empties = ranges
      .map((range, i) => ({ range, i }))
      .filter(({ range }) => range.length === 0)
      .map(async ({ range, i }) => {
        results[i] = await this.read(range.offset, 0, { signal });
      });
    const deliver = (span: (typeof spans)[number], bytes: Uint8Array): void => {
      for (const i of span.members) {
        const { offset, length } = ranges[i]!;
        const at = offset - span.offset;
        results[i] = span.members.length === 1 ? bytes : bytes.slice(at, at + length);
      }
    };
    const single = async (span: (typeof spans)[number]): Promise<void> => {
      deliver(span, await this.read(span.offset, span.end - span.offset, { signal }));
    };
    const maxParts = options.maxParts ?? 16;
    if (!Number.isSafeInteger(maxParts) || maxParts < 2) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "maxParts must be an integer ≥ 2", {
        subject: this.subject,
      });
    }
    let reads: Promise<void>[];
    if (options.multipart === true && spans.length > 1 && !this.#noMultipart) {
      const batches: (typeof spans)[] = [];
      for (let i = 0; i < spans.length; i += maxParts) batches.push(spans.slice(i, i + maxParts));
      reads = batches.map(async (batch) => {
        const parts =
          batch.length > 1 && !this.#noMultipart ? await this.#readMultipart(batch, signal) : undefined;
        if (parts === undefined) await Promise.all(batch.map(single));
        else for (const [i, span] of batch.entries()) deliver(span, parts[i]!);
      });
    } else {
      reads = spans.map(single);
    }
    await Promise.all([...empties, ...reads]);
    return results;
  }

  /**
   * One `multipart/byteranges` request for `spans` (sorted, disjoint): resolves to each span's bytes, or
   * `undefined` when the server does not do multi-range properly (then remembered for this source).
   */
  async #readMultipart(
    spans: readonly { offset: number; end: number }[],
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array[] | undefined> {
    const expected = spans.reduce((n, span) => n + span.end - span.offset, 0);
    // Part headers and boundaries cost ~100 bytes a part; anything much larger is not what was asked for.
    const limit = expected + spans.length * 1024 + 64 * 1024;
    const unsupported = (): undefined => {
      this.#noMultipart = true;
      return undefined;
    };
    return await this.#withRetries(signal, async (attempt) => {
      const release = await this.#semaphore.acquire(attempt.signal);
      try {
        const range = `bytes=${spans.map((span) => `${span.offset}-${span.end - 1}`).join(",")}`;
        const response = await this.#send({ method: "GET", headers: { range }, conditional: true }, attempt);
        const { statusCode, headers, body } = response;
        if (statusCode === 200 || statusCode === 400 || statusCode === 416) {
          await discard(body);
          return unsupported();
        }
        if (statusCode !== 206) return await this.#failStatus(response, "multi-range request failed");
        try {
          this.#checkValidators(response.location, headers);
          this.#checkEncoding(headers);
        } catch (error) {
          await discard(body);
          throw error;
        }
        let read: Uint8Array | undefined;
        try {
          read = await body.readAll(limit);
        } catch (error) {
          throw new Retryable(this.#bodyError(error));
        }
        if (read === undefined) return unsupported();
        this.#stats.bytes += read.byteLength;
        const whole = Buffer.from(read.buffer, read.byteOffset, read.byteLength);
        const received = whole.byteLength;
        const boundary = byterangesBoundary(header(headers, "content-type"));
        let parts: BytePart[] | undefined;
        if (boundary !== undefined) parts = parseByteranges(whole, boundary);
        else {
          // A server may merge the ranges into one span and answer with a single Content-Range.
          const merged = parseContentRange(header(headers, "content-range"));
          if (
            merged !== undefined &&
            !("unsatisfied" in merged) &&
            merged.end - merged.start + 1 === received
          ) {
            parts = [{ ...merged, data: whole }];
          }
        }
        if (parts === undefined) return unsupported();
        const out: Uint8Array[] = [];
        for (const span of spans) {
          const part = parts.find((p) => p.start <= span.offset && p.end >= span.end - 1);
          if (
            part === undefined ||
            (part.total !== undefined && this.#size !== undefined && part.total !== this.#size)
          ) {
            return unsupported();
          }
          const at = span.offset - part.start;
          out.push(part.data.slice(at, at + span.end - span.offset));
        }
        return out;
      } finally {
        release();
      }
    });
  }

  /**
   * Streams `length` bytes at `offset` from one range request. The status and `Content-Range` are checked
   * (with retries) before the first byte. A body that breaks off or ends early is resumed with a new range
   * request from the first byte not yet delivered (up to `retries` times) when the same bytes are guaranteed:
   * a strong ETag (sent as `If-Match`; another one is `ERR_SOURCE_CHANGED`) or an `immutable` source;
   * otherwise the stream errors. Cancelling the stream or aborting `signal` drops the request.
   */
  stream(offset: number, length: number, options: ReadOptions = {}): ReadableStream<Uint8Array> {
    const { signal } = options;
    const internal = new AbortController();
    const combined = signal === undefined ? internal.signal : AbortSignal.any([signal, internal.signal]);
    let body: OpenResponse["body"] | undefined;
    let release: (() => void) | undefined;
    let finished = false;
    let onAbort: (() => void) | undefined;
    let disposeAttempt: (() => void) | undefined;
    /** Bytes handed to the reader so far: where a resumed request starts. */
    let delivered = 0;
    let resumes = 0;
    const dropAttempt = (): void => {
      release?.();
      release = undefined;
      disposeAttempt?.();
      disposeAttempt = undefined;
    };
    const finish = (): void => {
      finished = true;
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
      dropAttempt();
    };
    const fail = (error: unknown): unknown => {
      body?.destroy();
      if (signal?.aborted) return signal.reason;
      if (this.#closeController.signal.aborted) return this.#closedError();
      return error;
    };
    /** Opens the range from `from` bytes in and pushes its body into `controller`. */
    const open = async (
      controller: ReadableStreamDefaultController<Uint8Array>,
      from: number,
    ): Promise<void> => {
      const opened = await this.#withRetries(
        combined,
        async (attempt) => {
          const releaseSlot = await this.#semaphore.acquire(attempt.signal);
          try {
            const response = await this.#openRange(offset + from, length - from, attempt);
            return { response, releaseSlot, attempt };
          } catch (error) {
            releaseSlot();
            throw error;
          }
        },
        true,
      );
      release = opened.releaseSlot;
      disposeAttempt = opened.attempt.dispose;
      const opensBody = opened.response.body;
      const slicer = opened.response.slicer;
      body = opensBody;
      if (finished) {
        // Cancelled or aborted while the request was opening: finish() ran before these were set.
        opensBody.destroy();
        finish(); // releases the slot and the attempt now that they are known (it clears them once run)
        return;
      }
      const bodyFailed = (error: unknown): void => {
        if (finished || body !== opensBody) return;
        const mapped = fail(error);
        const typed = isBlobError(mapped) || mapped === signal?.reason ? mapped : this.#bodyError(mapped);
        const broken =
          isBlobError(typed, "ERR_NETWORK") || (isBlobError(typed) && typed.reason === "short-body");
        if (broken && resumes < this.#retries && delivered < length && this.#canResume()) {
          resumes++;
          this.#stats.retries++;
          dropAttempt();
          body = undefined;
          open(controller, delivered).catch((reopenError: unknown) => {
            if (finished) return;
            finish();
            controller.error(fail(reopenError));
          });
          return;
        }
        finish();
        controller.error(typed);
      };
      // Push model with backpressure: cheaper per chunk than pulling through an async iterator.
      opensBody.pipe({
        data: (chunk) => {
          if (finished) return;
          this.#stats.bytes += chunk.byteLength;
          const part = slicer.take(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if (part === "overflow") {
            finish();
            opensBody.destroy();
            controller.error(this.#longBody(length - from));
            return;
          }
          if (part.byteLength > 0) {
            controller.enqueue(part);
            delivered += part.byteLength;
          }
          if (slicer.done) {
            finish();
            controller.close();
            // The rest of a whole-object body is not wanted; a 206 body ends by itself (connection reuse).
            if (slicer.tolerant) opensBody.destroy();
            return;
          }
          if ((controller.desiredSize ?? 0) <= 0) opensBody.pause();
        },
        end: () => bodyFailed(this.#shortBody(slicer.received, length - from)),
        error: bodyFailed,
      });
    };
    return new ReadableStream<Uint8Array>(
      {
        start: async (controller) => {
          try {
            throwIfAborted(signal);
            this.#checkOpen();
            assertReadArguments(offset, length, this.subject);
            if (signal !== undefined) {
              onAbort = () => {
                if (finished) return;
                finish();
                body?.destroy();
                controller.error(signal.reason);
              };
              signal.addEventListener("abort", onAbort, { once: true });
            }
            if (length === 0 || this.#size !== undefined) {
              const size = this.#size ?? (await this.size({ signal: combined }));
              if (offset > size || length > size - offset)
                throw outOfRangeError(offset, length, size, this.subject);
              if (length === 0) {
                finish();
                controller.close();
                return;
              }
            }
            await open(controller, 0);
          } catch (error) {
            finish();
            throw fail(error);
          }
        },
        pull: () => {
          if (!finished) body?.resume();
        },
        cancel: (reason) => {
          finish();
          internal.abort(reason);
          body?.destroy();
        },
      },
      { highWaterMark: STREAM_BUFFER_BYTES, size: (chunk) => chunk.byteLength },
    );
  }

  /**
   * Aborts requests in flight (they reject with `ERR_CLOSED`) and closes the source's own agent (never a
   * caller's dispatcher). Later calls reject with `ERR_CLOSED`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closing === undefined) {
      const error = this.#closedError();
      this.#closeController.abort(error);
      for (const controller of this.#active) controller.abort(error);
      this.#active.clear();
      this.#closing = this.#ownsDispatcher ? this.#dispatcher.destroy().catch(() => {}) : Promise.resolve();
    }
    await this.#closing;
  }

  /** Same as {@link HttpSource.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────────

  #closedError(): BlobError {
    return new BlobError("ERR_CLOSED", "byte source is closed", { subject: this.subject });
  }

  #checkOpen(): void {
    if (this.#closeController.signal.aborted) throw this.#closedError();
  }

  /**
   * Whether a new range request is sure to reach the same bytes: an immutable source, or a strong ETag known
   * for the data's location (sent as `If-Match`, and checked on the answer).
   */
  #canResume(): boolean {
    if (this.#immutable) return true;
    const etag =
      this.#dataLocation === undefined ? undefined : this.#validators.get(this.#dataLocation)?.etag;
    return etag !== undefined && !etag.startsWith("W/");
  }

  #shortBody(received: number, length: number): BlobError {
    return new BlobError("ERR_INTEGRITY", `the response body ended after ${received} of ${length} bytes`, {
      subject: this.subject,
      reason: "short-body",
    });
  }

  #longBody(length: number): BlobError {
    return new BlobError("ERR_INTEGRITY", `the server sent more than the ${length} bytes requested`, {
      subject: this.subject,
      reason: "long-body",
    });
  }

  #bodyError(error: unknown): BlobError {
    return new BlobError("ERR_NETWORK", "the response body was interrupted", {
      subject: this.subject,
      reason: "body-interrupted",
      cause: error,
    });
  }

  /** Runs `fn` once per attempt, retrying {@link Retryable} failures with backoff. */
  async #withRetries<T>(
    signal: AbortSignal | undefined,
    fn: (attempt: AttemptSignal) => Promise<T>,
    keepOnSuccess = false,
  ): Promise<T> {
    const deadline = this.#deadlineMs === undefined ? undefined : Date.now() + this.#deadlineMs;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      this.#checkOpen();
      const remaining = deadline === undefined ? this.#timeoutMs : deadline - Date.now();
      const timer = this.#attemptSignal(signal, Math.max(1, Math.min(this.#timeoutMs, remaining)));
      let succeeded = false;
      try {
        const result = await fn(timer);
        succeeded = true;
        return result;
      } catch (error) {
        const mapped = this.#mapError(error, signal, timer);
        if (!(mapped instanceof Retryable)) throw mapped;
        if (attempt >= this.#retries) throw mapped.error;
        const backoff = this.#retryDelayMs * 2 ** attempt;
        const jittered = backoff / 2 + Math.random() * (backoff / 2);
        const wait = Math.max(mapped.retryAfterMs ?? 0, Math.min(jittered, this.#maxRetryDelayMs));
        if (wait > this.#maxRetryDelayMs) throw mapped.error;
        if (deadline !== undefined && Date.now() + wait >= deadline) throw mapped.error;
        this.#stats.retries++;
        await this.#sleep(wait, signal);
      } finally {
        // A stream keeps its attempt linked (caller's signal, close()) until its body ends.
        if (succeeded && keepOnSuccess) timer.clearTimer();
        else timer.dispose();
      }
    }
  }

  /** Maps whatever an attempt threw to the error to surface (or a {@link Retryable}). */
  #mapError(error: unknown, signal: AbortSignal | undefined, attempt: AttemptSignal): unknown {
    if (signal?.aborted) return signal.reason;
    if (this.#closeController.signal.aborted) return this.#closedError();
    if (error instanceof Retryable) return error;
    if (attempt.timedOut()) {
      return new Retryable(
        new BlobError("ERR_NETWORK", "request timed out", {
          subject: this.subject,
          reason: "timeout",
          cause: error,
        }),
      );
    }
    if (isBlobError(error)) return error;
    const code = (error as { code?: unknown } | null)?.code;
    const reason =
      code === "UND_ERR_HEADERS_TIMEOUT" ||
      code === "UND_ERR_BODY_TIMEOUT" ||
      code === "UND_ERR_CONNECT_TIMEOUT"
        ? "timeout"
        : "connection";
    return new Retryable(
      new BlobError("ERR_NETWORK", `request failed: ${typeof code === "string" ? code : String(error)}`, {
        subject: this.subject,
        reason,
        cause: error,
      }),
    );
  }

  /**
   * One controller per attempt, aborted by its timer, the caller's signal or `close()` (cheaper than
   * `AbortSignal.any` on the hot path).
   */
  #attemptSignal(signal: AbortSignal | undefined, timeoutMs: number): AttemptSignal {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(
        new BlobError("ERR_NETWORK", "request timed out", { subject: this.subject, reason: "timeout" }),
      );
    }, timeoutMs);
    timer.unref?.();
    const onAbort = (): void => controller.abort(signal?.reason);
    if (signal !== undefined) {
      if (signal.aborted) controller.abort(signal.reason);
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    if (this.#closeController.signal.aborted) controller.abort(this.#closedError());
    this.#active.add(controller);
    return {
      signal: controller.signal,
      timedOut: () => timedOut,
      clearTimer: () => clearTimeout(timer),
      dispose: () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#active.delete(controller);
      },
    };
  }

  async #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    const signals = [this.#closeController.signal];
    if (signal !== undefined) signals.push(signal);
    const combined = AbortSignal.any(signals);
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.aborted ? signal.reason : this.#closedError());
      };
      const timer = setTimeout(() => {
        combined.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      if (combined.aborted) onAbort();
      else combined.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Headers for a request to `target`. Once a request chain has left the source's origin (even if a later
   * hop comes back), only headers on a short safe list follow: any caller header may be a credential
   * (`x-api-key`, `private-token`…), and a foreign host must not choose where credentials go (as in Fetch).
   */
  async #headersFor(
    target: URL,
    extra: Record<string, string>,
    signal: AbortSignal,
    leftOrigin: boolean,
  ): Promise<Record<string, string>> {
    const sameOrigin = !leftOrigin && target.origin === this.#url.origin;
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.#headers)) {
      if (!sameOrigin && !CROSS_ORIGIN_HEADERS.has(name)) continue;
      out[name] = value;
    }
    if (sameOrigin && this.#getHeaders !== undefined) {
      const provided = await this.#hook(() => this.#getHeaders!({ url: target, signal }));
      for (const [name, value] of Object.entries(provided)) out[name.toLowerCase()] = value;
    }
    out["accept-encoding"] = "identity";
    Object.assign(out, extra);
    return out;
  }

  /** Runs an auth hook; its non-BlobError failures become `ERR_UNAUTHORIZED` (never retried). */
  async #hook<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (isBlobError(error)) throw error;
      throw new BlobError("ERR_UNAUTHORIZED", "the auth hook failed", {
        subject: this.subject,
        cause: error,
      });
    }
  }

  /**
   * Sends one logical request (following redirects) and returns a response whose status is not a redirect.
   * Remembers the final location of a redirect; a remembered location that answers 401/403/404/410 is
   * forgotten and the original URL asked again.
   */
  async #send(spec: RequestSpec, attempt: AttemptSignal): Promise<OpenResponse> {
    let target = this.#url;
    let fromMemory = false;
    const remembered = this.#redirect;
    if (remembered !== undefined) {
      if (remembered.expires > Date.now()) {
        target = remembered.url;
        fromMemory = true;
      } else {
        this.#redirect = undefined;
      }
    }
    let redirects = 0;
    let reauthorized = false;
    let leftOrigin = false;
    for (;;) {
      if (target.origin !== this.#url.origin) leftOrigin = true;
      const headers = await this.#headersFor(target, spec.headers, attempt.signal, leftOrigin);
      attempt.signal.throwIfAborted();
      this.#stats.requests++;
      const known = this.#validators.get(locationKey(target))?.etag;
      // If-Match needs a strong validator; a weak one would always fail.
      if (spec.conditional && known !== undefined && !known.startsWith("W/")) headers["if-match"] = known;
      const response = await dispatchRequest(
        this.#dispatcher,
        {
          origin: target.origin,
          path: `${target.pathname}${target.search}`,
          method: spec.method,
          headers,
          headersTimeout: this.#idleTimeoutMs,
          bodyTimeout: this.#idleTimeoutMs,
        },
        attempt.signal,
      );
      const { statusCode, body } = response;
      if (REDIRECT_STATUSES.has(statusCode)) {
        await discard(body);
        const location = header(response.headers, "location");
        if (location === undefined) {
          throw new BlobError("ERR_NETWORK", `redirect ${statusCode} without a Location header`, {
            subject: this.subject,
            reason: "bad-redirect",
          });
        }
        if (redirects >= this.#maxRedirects) {
          throw new BlobError("ERR_NETWORK", `more than ${this.#maxRedirects} redirects`, {
            subject: this.subject,
            reason: "too-many-redirects",
          });
        }
        let next: URL;
        try {
          next = new URL(location, target);
        } catch (error) {
          throw new BlobError("ERR_NETWORK", "redirect to an invalid Location", {
            subject: this.subject,
            reason: "bad-redirect",
            cause: error,
          });
        }
        if (next.protocol !== "http:" && next.protocol !== "https:") {
          throw new BlobError("ERR_NETWORK", `redirect to an unsupported scheme ${next.protocol}`, {
            subject: this.subject,
            reason: "bad-redirect",
          });
        }
        redirects++;
        this.#stats.redirects++;
        target = next;
        continue;
      }
      if (
        statusCode === 401 &&
        !reauthorized &&
        this.#onUnauthorized !== undefined &&
        !leftOrigin &&
        target.origin === this.#url.origin
      ) {
        await discard(body);
        reauthorized = true;
        const context: HttpUnauthorizedContext = {
          url: target,
          wwwAuthenticate: header(response.headers, "www-authenticate"),
          authorization: headers.authorization ?? null,
          signal: attempt.signal,
        };
        if (await this.#hook(() => this.#onUnauthorized!(context))) continue;
        throw new BlobError("ERR_UNAUTHORIZED", "HTTP 401", { subject: this.subject });
      }
      if (
        fromMemory &&
        (statusCode === 401 || statusCode === 403 || statusCode === 404 || statusCode === 410)
      ) {
        // A remembered (signed, expiring) location no longer works: ask the original URL again.
        await discard(body);
        this.#redirect = undefined;
        fromMemory = false;
        target = this.#url;
        continue;
      }
      if (redirects > 0 && statusCode < 300) {
        this.#redirect = { url: target, expires: Date.now() + this.#redirectTtlMs };
      }
      return { location: locationKey(target), statusCode, headers: response.headers, body };
    }
  }

  /** Throws the error of a non-success status (after discarding the body). */
  async #failStatus(response: OpenResponse, what: string): Promise<never> {
    const { statusCode, headers, body } = response;
    await discard(body);
    const subject = this.subject;
    switch (statusCode) {
      case 404:
      case 410:
        throw new BlobError("ERR_NOT_FOUND", `${what}: HTTP ${statusCode}`, { subject });
      case 401:
        throw new BlobError("ERR_UNAUTHORIZED", `${what}: HTTP 401`, { subject });
      case 403:
        throw new BlobError("ERR_DENIED", `${what}: HTTP 403`, { subject });
      case 412:
        throw new BlobError("ERR_SOURCE_CHANGED", `${what}: HTTP 412, the object changed`, {
          subject,
          reason: "precondition-failed",
        });
      default: {
        const error = new BlobError("ERR_NETWORK", `${what}: HTTP ${statusCode}`, {
          subject,
          reason: `http-${statusCode}`,
        });
        if (statusCode === 408 || statusCode === 429 || statusCode >= 500) {
          throw new Retryable(error, parseRetryAfter(header(headers, "retry-after")));
        }
        throw error;
      }
    }
  }

  /**
   * Checks and remembers the validators (ETag, Last-Modified) of a successful response. Validators are
   * per location (a CDN's ETag is not the registry's), so for bytes (`data`) the location itself must not
   * change either: once bytes came from one location, bytes from another — a redirect that now points
   * elsewhere — are `ERR_SOURCE_CHANGED` unless they carry the same strong ETag. Re-signed URLs keep their
   * location (origin + path).
   */
  #checkValidators(location: string, headers: IncomingHttpHeaders, data = true): void {
    if (data) {
      this.#dataLocation ??= location;
      // Another location is accepted only with the same strong ETag (a mirror or CDN of the same object).
      const etag = header(headers, "etag");
      const first = this.#validators.get(this.#dataLocation)?.etag;
      const sameObject = etag !== undefined && !etag.startsWith("W/") && etag === first;
      if (location !== this.#dataLocation && !sameObject) {
        throw new BlobError("ERR_SOURCE_CHANGED", "the object's bytes now come from another location", {
          subject: this.subject,
          reason: "location-changed",
        });
      }
    }
    const etag = header(headers, "etag");
    const lastModified = header(headers, "last-modified");
    let known = this.#validators.get(location);
    if (known === undefined) {
      known = { etag: undefined, lastModified: undefined };
      this.#validators.set(location, known);
    }
    if (etag !== undefined) {
      if (known.etag === undefined) known.etag = etag;
      else if (etag !== known.etag) {
        throw new BlobError("ERR_SOURCE_CHANGED", "the object's ETag changed between requests", {
          subject: this.subject,
          reason: "etag-changed",
        });
      }
    } else if (known.etag === undefined && lastModified !== undefined) {
      if (known.lastModified === undefined) known.lastModified = lastModified;
      else if (lastModified !== known.lastModified) {
        throw new BlobError("ERR_SOURCE_CHANGED", "the object's Last-Modified changed between requests", {
          subject: this.subject,
          reason: "last-modified-changed",
        });
      }
    }
  }

  #learnSize(total: number): void {
    if (this.#size === undefined) this.#size = total;
    else if (this.#size !== total) {
      throw new BlobError("ERR_INTEGRITY", `the server reports size ${total}, expected ${this.#size}`, {
        subject: this.subject,
        reason: "size-mismatch",
      });
    }
  }

  /** Opens a checked 206 response for exactly `[offset, offset + length)` (length > 0). */
  async #openRange(
    offset: number,
    length: number,
    attempt: AttemptSignal,
  ): Promise<OpenResponse & { slicer: Slicer }> {
    const end = offset + length - 1;
    const response = await this.#send(
      { method: "GET", headers: { range: `bytes=${offset}-${end}` }, conditional: true },
      attempt,
    );
    const { statusCode, headers, body } = response;
    const subject = this.subject;
    if (statusCode === 200) {
      if (this.#onRangeIgnored !== "discard" || offset > this.#maxDiscardBytes) {
        await discard(body);
        throw new BlobError(
          "ERR_RANGE_NOT_SUPPORTED",
          this.#onRangeIgnored === "discard"
            ? `the server ignored the Range header and ${offset} bytes would have to be dropped`
            : "the server ignored the Range header and answered 200 with the whole object",
          { subject, reason: this.#onRangeIgnored === "discard" ? "discard-limit" : "range-ignored" },
        );
      }
      try {
        this.#checkValidators(response.location, headers);
        this.#checkEncoding(headers);
        const contentLength = header(headers, "content-length");
        if (contentLength !== undefined && /^\d+$/.test(contentLength)) {
          this.#learnSize(Number(contentLength));
        }
        if (this.#size !== undefined && offset + length > this.#size) {
          throw outOfRangeError(offset, length, this.#size, subject);
        }
      } catch (error) {
        await discard(body);
        throw error;
      }
      return { ...response, slicer: new Slicer(offset, length, true) };
    }
    if (statusCode === 416) {
      await discard(body);
      const range = parseContentRange(header(headers, "content-range"));
      const reported = range !== undefined && "unsatisfied" in range ? range.unsatisfied : undefined;
      if (this.#size !== undefined && offset + length <= this.#size) {
        // The range fits the size we know: the object shrank or was replaced.
        throw new BlobError(
          "ERR_SOURCE_CHANGED",
          `the server refused bytes ${offset}+${length} of a ${this.#size}-byte object`,
          {
            subject,
            reason: "shrunk",
          },
        );
      }
      if (reported !== undefined && this.#size === undefined) this.#size = reported;
      throw outOfRangeError(offset, length, this.#size ?? reported ?? Number.NaN, subject);
    }
    if (statusCode !== 206) return await this.#failStatus(response, "range request failed");
    try {
      this.#checkValidators(response.location, headers);
      this.#checkEncoding(headers);
      const range = parseContentRange(header(headers, "content-range"));
      if (range === undefined || "unsatisfied" in range) {
        throw new Retryable(
          new BlobError("ERR_INTEGRITY", "206 response without a valid single Content-Range", {
            subject,
            reason: "content-range-mismatch",
          }),
        );
      }
      if (range.total !== undefined && (this.#size === undefined || this.#size === range.total)) {
        if (offset + length > range.total) throw outOfRangeError(offset, length, range.total, subject);
        this.#size ??= range.total;
      }
      const totalOk = range.total === undefined || range.total === this.#size;
      if (range.start !== offset || range.end !== end || !totalOk) {
        throw new Retryable(
          new BlobError(
            "ERR_INTEGRITY",
            `asked for bytes ${offset}-${end}, the server answered ${header(headers, "content-range")}`,
            { subject, reason: "content-range-mismatch" },
          ),
        );
      }
      const contentLength = header(headers, "content-length");
      if (contentLength !== undefined && Number(contentLength) !== length) {
        throw new Retryable(
          new BlobError("ERR_INTEGRITY", `Content-Length ${contentLength} does not match the range`, {
            subject,
            reason: "content-range-mismatch",
          }),
        );
      }
    } catch (error) {
      await discard(body);
      throw error;
    }
    return { ...response, slicer: new Slicer(0, length, false) };
  }

  #checkEncoding(headers: IncomingHttpHeaders): void {
    const encoding = header(headers, "content-encoding");
    if (encoding !== undefined && encoding.toLowerCase() !== "identity") {
      throw new BlobError("ERR_INTEGRITY", `the server sent an encoded (${encoding}) body`, {
        subject: this.subject,
        reason: "content-encoding",
      });
    }
  }

  /** Reads exactly `length` bytes of `body`. */
  async #readBody(
    response: OpenResponse & { slicer: Slicer },
    length: number,
    attempt: AttemptSignal,
  ): Promise<Uint8Array> {
    const { body, slicer } = response;
    const out = new Uint8Array(length);
    try {
      await new Promise<void>((resolve, reject) => {
        body.pipe({
          data: (chunk) => {
            this.#stats.bytes += chunk.byteLength;
            const at = slicer.received;
            const part = slicer.take(chunk);
            if (part === "overflow") {
              body.destroy();
              reject(new Retryable(this.#longBody(length)));
              return;
            }
            out.set(part, at);
            if (slicer.tolerant && slicer.done) {
              // The rest of a whole-object body is not wanted: drop the connection.
              body.destroy();
              resolve();
            }
          },
          end: resolve,
          error: reject,
        });
      });
    } catch (error) {
      body.destroy();
      if (error instanceof Retryable || attempt.signal.aborted) throw error;
      throw new Retryable(this.#bodyError(error));
    }
    if (slicer.received !== length) throw new Retryable(this.#shortBody(slicer.received, length));
    return out;
  }

  /** HEAD, falling back to a one-byte range GET; learns the size and validators. */
  async #discoverSize(): Promise<number> {
    const head = await this.#withRetries(undefined, async (attempt) => {
      const release = await this.#semaphore.acquire(attempt.signal);
      try {
        const response = await this.#send({ method: "HEAD", headers: {} }, attempt);
        await discard(response.body);
        const { statusCode, headers } = response;
        if (statusCode === 404 || statusCode === 410 || statusCode === 401 || statusCode === 403) {
          return await this.#failStatus(response, "HEAD failed");
        }
        if (statusCode !== 200) return undefined;
        const length = header(headers, "content-length");
        const encoding = header(headers, "content-encoding");
        if (length === undefined || !/^\d+$/.test(length)) return undefined;
        if (encoding !== undefined && encoding.toLowerCase() !== "identity") return undefined;
        this.#checkValidators(response.location, headers, false);
        return Number(length);
      } finally {
        release();
      }
    }).catch((error: unknown) => {
      // Only definitive answers stop the discovery; anything else falls back to a range GET.
      if (isBlobError(error) && error.code !== "ERR_NETWORK") throw error;
      return undefined;
    });
    if (head !== undefined) {
      this.#learnSize(head);
      return head;
    }
    const total = await this.#withRetries(undefined, async (attempt) => {
      const release = await this.#semaphore.acquire(attempt.signal);
      try {
        const response = await this.#send({ method: "GET", headers: { range: "bytes=0-0" } }, attempt);
        const { statusCode, headers, body } = response;
        const range = parseContentRange(header(headers, "content-range"));
        if (statusCode === 416 && range !== undefined && "unsatisfied" in range) {
          await discard(body);
          return range.unsatisfied; // an empty object
        }
        if (statusCode === 206) {
          await discard(body);
          this.#checkValidators(response.location, headers);
          if (range === undefined || "unsatisfied" in range || range.total === undefined) {
            throw new BlobError("ERR_NETWORK", "the server does not report the object's size", {
              subject: this.subject,
              reason: "unknown-size",
            });
          }
          return range.total;
        }
        if (statusCode === 200) {
          await discard(body);
          throw new BlobError(
            "ERR_RANGE_NOT_SUPPORTED",
            "the server ignored the Range header and answered 200 with the whole object",
            { subject: this.subject, reason: "range-ignored" },
          );
        }
        return await this.#failStatus(response, "size probe failed");
      } finally {
        release();
      }
    });
    this.#learnSize(total);
    return total;
  }
}
