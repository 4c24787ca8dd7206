import { BlobError } from "@blobkit/core";
import { OPAClient } from "@open-policy-agent/opa";
import { HTTPClient } from "@open-policy-agent/opa/lib/http.js";
import type { OpaEvaluateOptions, OpaEvaluator, OpaInput } from "./types.ts";

/** Default {@link RestEvaluatorOptions.maxResponseBytes}. @public */
export const DEFAULT_MAX_OPA_RESPONSE_BYTES: number = 4 * 1024 * 1024;

/** Options of {@link restEvaluator}. @public */
export interface RestEvaluatorOptions {
  /** Base URL of the OPA server, e.g. `http://127.0.0.1:8181` (a path prefix behind a proxy is kept). */
  url: string;
  /**
   * The decision's path under `/v1/data/`, e.g. `blob/policy`. Default: the policy's entrypoint.
   */
  path?: string | undefined;
  /** Headers sent with every request (e.g. `authorization: Bearer …`). Never included in messages. */
  headers?: Record<string, string> | undefined;
  /**
   * The `fetch` to use (default the global one). To use an undici dispatcher (proxy, custom TLS), pass
   * `(input, init) => undici.fetch(input, { ...init, dispatcher })`.
   */
  fetch?: ((input: Request, init?: RequestInit) => Promise<Response>) | undefined;
  /** Time allowed for one request, in ms (the policy's own `timeoutMs` applies too). Default: none. */
  timeoutMs?: number | undefined;
  /** Largest accepted response body, in bytes. Default 4 MiB. */
  maxResponseBytes?: number | undefined;
}

/**
 * Evaluates the decision on a remote OPA server through its Data API (`POST /v1/data/<path>` with
 * `{"input": …}`), using `@open-policy-agent/opa`'s client. The raw decision is the response's `result`
 * (`undefined` when the server returns none — an undefined decision). HTTP errors, malformed bodies, bodies
 * over `maxResponseBytes`, unreachable servers and timeouts reject. Requests are not retried.
 *
 * @example
 * ```ts
 * const evaluator = restEvaluator({ url: "http://127.0.0.1:8181", headers: { authorization: `Bearer ${token}` } });
 * ```
 * @public
 */
export function restEvaluator(options: RestEvaluatorOptions): OpaEvaluator {
  let base: URL;
  try {
    base = new URL(options.url);
  } catch (error) {
    throw new BlobError("ERR_INVALID_ARGUMENT", "the OPA server url is not a valid URL", { cause: error });
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new BlobError("ERR_INVALID_ARGUMENT", `the OPA server url must be http(s), got ${base.protocol}`);
  }
  if (base.username !== "" || base.password !== "") {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      "the OPA server url must not contain credentials: pass them in headers",
    );
  }
  if (options.path !== undefined) checkPath(options.path);
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs <= 0)) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `timeoutMs must be a positive number, got ${String(timeoutMs)}`,
    );
  }
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_OPA_RESPONSE_BYTES;
  if (!Number.isSafeInteger(maxResponseBytes) || maxResponseBytes <= 0) {
    throw new BlobError("ERR_INVALID_ARGUMENT", "maxResponseBytes must be a positive integer");
  }
  const doFetch = options.fetch ?? ((input: Request, init?: RequestInit) => fetch(input, init));
  const httpClient = new HTTPClient({
    fetcher: async (input, init) => {
      const request = input instanceof Request ? input : new Request(input, init);
      return bounded(await doFetch(request), maxResponseBytes);
    },
  });
  const serverURL = base.href.replace(/\/+$/, "");
  const client = new OPAClient(serverURL, {
    ...(options.headers === undefined ? {} : { headers: { ...options.headers } }),
    sdk: { httpClient },
  });
  const display = `${base.origin}${base.pathname.replace(/\/+$/, "")}`;

  return {
    name: `opa-rest ${display}`,
    async evaluate(input: OpaInput, evaluateOptions: OpaEvaluateOptions): Promise<unknown> {
      const path = options.path ?? evaluateOptions.entrypoint;
      checkPath(path);
      const signals = [evaluateOptions.signal];
      if (timeoutMs !== undefined) signals.push(AbortSignal.timeout(timeoutMs));
      const signal = signals.length === 1 ? evaluateOptions.signal : AbortSignal.any(signals);
      signal.throwIfAborted();
      try {
        return await client.evaluate<OpaInput, unknown>(path.replace(/^\/+|\/+$/g, ""), input, {
          fetchOptions: { signal },
          retries: { strategy: "none" },
        });
      } catch (error) {
        if (evaluateOptions.signal.aborted) throw evaluateOptions.signal.reason;
        if (signal.aborted) throw new Error(`request to ${display} timed out after ${timeoutMs} ms`);
        if (error instanceof Error) throw error;
        throw new Error(`OPA server ${display}: ${String(error)}`);
      }
    },
  };
}

function checkPath(path: string): void {
  const trimmed = typeof path === "string" ? path.replace(/^\/+|\/+$/g, "") : "";
  if (
    trimmed === "" ||
    /[?#%\\\s]/.test(trimmed) ||
    trimmed.split("/").some((segment) => segment === "" || segment === "." || segment === "..")
  ) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `invalid OPA data path ${JSON.stringify(path)}`);
  }
}

/** The response with its body read into memory, refusing more than `max` bytes. */
async function bounded(response: Response, max: number): Promise<Response> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > max) {
    await response.body?.cancel().catch(() => {});
    throw new BlobError("ERR_LIMIT_EXCEEDED", `OPA server response is ${declared} bytes, more than ${max}`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body !== null) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new BlobError("ERR_LIMIT_EXCEEDED", `OPA server response is more than ${max} bytes`);
      }
      chunks.push(value);
    }
  }
  const body = Buffer.concat(chunks);
  // The SDK parses JSON bodies in a way that leaves an unhandled rejection behind when they are malformed
  // (which would crash a Node process): refuse malformed JSON here, where errors are reported properly.
  if (/json/i.test(response.headers.get("content-type") ?? "")) {
    try {
      JSON.parse(body.toString("utf8"));
    } catch {
      throw new BlobError("ERR_NETWORK", `OPA server sent malformed JSON (HTTP ${response.status})`, {
        reason: "bad-response",
      });
    }
  }
  const nullBody = [101, 103, 204, 205, 304].includes(response.status);
  return new Response(nullBody ? null : body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
