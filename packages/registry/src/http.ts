/**
 * The request engine of the distribution client: authentication (through {@link RegistryAuth}), retries with
 * backoff, redirects that never carry credentials to another origin, bounded bodies and registry error
 * bodies mapped to typed errors.
 */
import { BlobError, type BlobErrorCode, isBlobError } from "@blobkit/core";
import type { Dispatcher } from "undici";
import type { RegistryAuth } from "./auth/index.ts";

/** A request body, created afresh for every attempt (a stream cannot be sent twice). */
export type BodyFactory = () => Dispatcher.DispatchOptions["body"];

/** What {@link RegistryHttp.send} needs to know about one request. */
export interface SendOptions {
  method: Dispatcher.HttpMethod;
  /** A path under the API root (`/v2/...`) or an absolute URL on the registry (upload locations). */
  url: string;
  headers?: Record<string, string> | undefined;
  body?: BodyFactory | undefined;
  /** Token scopes the request needs (e.g. `repository:acme/app:pull`). */
  scopes: readonly string[];
  /** Statuses that are answers, not errors. */
  expect: readonly number[];
  signal?: AbortSignal | undefined;
  /** Whether failed attempts may be repeated. Default: true for GET/HEAD/PUT/DELETE. */
  retry?: boolean | undefined;
  /** What the error message says the request was about (a tag, a digest). */
  subject?: string | undefined;
}

/** Settings of a {@link RegistryHttp}. */
export interface RegistryHttpOptions {
  /** `host[:port]` the API is served from. */
  host: string;
  /** `http` or `https`. */
  scheme: "http" | "https";
  auth: RegistryAuth;
  dispatcher: Dispatcher;
  userAgent: string;
  retries: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
  timeoutMs: number;
}

const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY = 64 * 1024;
/** Registry error codes (distribution spec) and what they mean here. */
const ERROR_CODES: Record<string, BlobErrorCode> = {
  BLOB_UNKNOWN: "ERR_NOT_FOUND",
  MANIFEST_UNKNOWN: "ERR_NOT_FOUND",
  NAME_UNKNOWN: "ERR_NOT_FOUND",
  BLOB_UPLOAD_UNKNOWN: "ERR_NOT_FOUND",
  MANIFEST_BLOB_UNKNOWN: "ERR_NOT_FOUND",
  UNAUTHORIZED: "ERR_UNAUTHORIZED",
  DENIED: "ERR_DENIED",
  DIGEST_INVALID: "ERR_INTEGRITY",
  SIZE_INVALID: "ERR_INTEGRITY",
  MANIFEST_INVALID: "ERR_INVALID_MANIFEST",
  MANIFEST_UNVERIFIED: "ERR_INVALID_MANIFEST",
  NAME_INVALID: "ERR_INVALID_ARGUMENT",
  TAG_INVALID: "ERR_INVALID_ARGUMENT",
  UNSUPPORTED: "ERR_UNSUPPORTED",
  TOOMANYREQUESTS: "ERR_NETWORK",
};

/** A URL safe to show: no credentials, no query (upload locations and signed redirects carry secrets there). */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function header(headers: Dispatcher.ResponseData["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** All values of a response header. */
export function headerValues(headers: Dispatcher.ResponseData["headers"], name: string): string[] {
  const value = headers[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** First value of a response header. */
export { header as firstHeader };

/** Reads a whole body, failing with `ERR_LIMIT_EXCEEDED` past `maxBytes` (the rest is not read). */
export async function readBody(
  response: Dispatcher.ResponseData,
  maxBytes: number,
  subject: string,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const declared = Number(header(response.headers, "content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.body.destroy();
    throw new BlobError(
      "ERR_LIMIT_EXCEEDED",
      `${subject} is ${declared} bytes, more than the ${maxBytes} allowed`,
      {
        reason: "too-large",
        subject,
      },
    );
  }
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > maxBytes) {
        response.body.destroy();
        throw new BlobError("ERR_LIMIT_EXCEEDED", `${subject} is more than the ${maxBytes} bytes allowed`, {
          reason: "too-large",
          subject,
        });
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    if (isBlobError(error)) throw error;
    // A connection reset, a stall past the body timeout or a body shorter than its Content-Length.
    throw new BlobError(
      "ERR_NETWORK",
      `${subject}: the response body broke off: ${(error as Error).message}`,
      {
        cause: error,
        reason: "body",
        subject,
      },
    );
  }
  const whole = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
  return new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength);
}

function isIdempotent(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "PUT" || method === "DELETE";
}

function retryAfterMs(response: Dispatcher.ResponseData): number | undefined {
  const value = header(response.headers, "retry-after");
  if (value === undefined) return undefined;
  if (/^[0-9]+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Maps a registry error response to a typed error; the body's messages are kept, URLs are redacted. */
async function responseError(
  response: Dispatcher.ResponseData,
  url: URL,
  subject: string,
): Promise<BlobError> {
  let text = "";
  try {
    const bytes = await readBody(response, MAX_ERROR_BODY, "error body");
    text = new TextDecoder().decode(bytes);
  } catch {
    // An unreadable error body still leaves the status code to go on.
  }
  let registryCode: string | undefined;
  let message = "";
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = parsed.errors?.[0];
    if (typeof first?.code === "string") registryCode = first.code;
    message = (parsed.errors ?? [])
      .map((e) => [e.code, e.message].filter((part) => typeof part === "string").join(": "))
      .filter((part) => part !== "")
      .join("; ");
  } catch {
    // Not a distribution error document.
  }
  const status = response.statusCode;
  let code: BlobErrorCode | undefined = registryCode === undefined ? undefined : ERROR_CODES[registryCode];
  if (code === undefined) {
    if (status === 404) code = "ERR_NOT_FOUND";
    else if (status === 401) code = "ERR_UNAUTHORIZED";
    else if (status === 403) code = "ERR_DENIED";
    else if (status === 416) code = "ERR_OUT_OF_RANGE";
    else if (status === 429 || status >= 500) code = "ERR_NETWORK";
    else code = "ERR_INVALID_ARGUMENT";
  }
  const detail = message === "" ? "" : ` (${message.slice(0, 500)})`;
  return new BlobError(code, `${subject}: ${response.statusCode} from ${redactUrl(url)}${detail}`, {
    reason: registryCode?.toLowerCase() ?? `http-${status}`,
    subject,
  });
}

function isNetworkError(error: unknown): boolean {
  if (isBlobError(error)) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("UND_ERR") || code.startsWith("E"));
}

/** Sends requests to one registry host on behalf of one repository's store. */
export class RegistryHttp {
  readonly #options: RegistryHttpOptions;
  readonly origin: string;

  constructor(options: RegistryHttpOptions) {
    this.#options = options;
    this.origin = `${options.scheme}://${options.host}`;
  }

  /** Absolute URL of a path under the API root, or the URL itself when absolute. */
  url(pathOrUrl: string): URL {
    return new URL(pathOrUrl, this.origin);
  }

  /**
   * Sends a request: credentials only to the registry's own origin, one re-authentication after a 401,
   * retries (idempotent requests) on network errors, 408, 429 and 5xx with backoff and `Retry-After`,
   * redirects followed for GET/HEAD. Resolves with a response whose status is in `expect`; the caller
   * consumes its body. Anything else is a typed error.
   */
  async send(options: SendOptions): Promise<Dispatcher.ResponseData & { url: URL }> {
    const { signal } = options;
    const subject = options.subject ?? options.url;
    const retries = (options.retry ?? isIdempotent(options.method)) ? this.#options.retries : 0;
    let reauthenticated = false;
    /** The `Authorization` the last request to the registry's own origin carried (`null`: none). */
    let sent: string | null = null;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      let url = this.url(options.url);
      let response: Dispatcher.ResponseData | undefined;
      try {
        for (let redirects = 0; ; redirects++) {
          const own = url.origin === this.origin;
          const headers: Record<string, string> = {
            "user-agent": this.#options.userAgent,
            ...options.headers,
          };
          if (own) {
            const authorization = await this.#options.auth.authorization(this.#options.host, options.scopes, {
              signal,
            });
            if (authorization !== undefined) headers.authorization = authorization;
            sent = authorization ?? null;
          }
          response = await this.#options.dispatcher.request({
            origin: url.origin,
            path: `${url.pathname}${url.search}`,
            method: options.method,
            headers,
            body: redirects === 0 ? options.body?.() : undefined,
            signal,
            headersTimeout: this.#options.timeoutMs,
            bodyTimeout: this.#options.timeoutMs,
          });
          if (
            (options.method === "GET" || options.method === "HEAD") &&
            REDIRECT_STATUSES.has(response.statusCode) &&
            !options.expect.includes(response.statusCode)
          ) {
            const location = header(response.headers, "location");
            await response.body.dump();
            if (location === undefined || redirects >= MAX_REDIRECTS) {
              throw new BlobError(
                "ERR_NETWORK",
                `${subject}: too many or broken redirects from ${redactUrl(url)}`,
                {
                  reason: "redirect",
                  subject,
                },
              );
            }
            url = new URL(location, url);
            if (url.protocol !== "http:" && url.protocol !== "https:") {
              throw new BlobError("ERR_NETWORK", `${subject}: redirect to a non-HTTP URL`, {
                reason: "redirect",
                subject,
              });
            }
            continue;
          }
          break;
        }
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (isBlobError(error) && error.code !== "ERR_NETWORK") throw error;
        lastError = isBlobError(error)
          ? error
          : new BlobError(
              "ERR_NETWORK",
              `${subject}: ${options.method} ${redactUrl(url)} failed: ${(error as Error).message}`,
              {
                cause: error,
                reason: isNetworkError(error) ? "connection" : "request",
                subject,
              },
            );
        if (attempt >= retries) throw lastError;
        await sleep(this.#backoff(attempt, undefined), signal);
        continue;
      }
      const status = response.statusCode;
      if (options.expect.includes(status)) return Object.assign(response, { url });
      if (status === 401 && url.origin === this.origin) {
        const challenge = headerValues(response.headers, "www-authenticate");
        await response.body.dump();
        // Asked again after a retry too: with `sent` it can tell "token lacks the scope" (ERR_DENIED) apart.
        const fresh = await this.#options.auth.respond(this.#options.host, options.scopes, challenge, {
          signal,
          sent,
        });
        if (fresh && !reauthenticated) {
          reauthenticated = true;
          attempt--;
          continue;
        }
        throw new BlobError(
          "ERR_UNAUTHORIZED",
          `${subject}: ${redactUrl(url)} requires credentials that were not given or were rejected`,
          { reason: "unauthorized", subject },
        );
      }
      if (RETRY_STATUSES.has(status) && attempt < retries) {
        const wait = retryAfterMs(response);
        lastError = await responseError(response, url, subject);
        if (wait !== undefined && wait > this.#options.maxRetryDelayMs) throw lastError;
        await sleep(this.#backoff(attempt, wait), signal);
        continue;
      }
      throw await responseError(response, url, subject);
    }
  }

  #backoff(attempt: number, retryAfter: number | undefined): number {
    if (retryAfter !== undefined) return retryAfter;
    const base = this.#options.retryDelayMs * 2 ** attempt;
    return Math.min(this.#options.maxRetryDelayMs, base * (0.9 + Math.random() * 0.2));
  }
}
