import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";

// A reverse proxy in front of the real registry that behaves like registries in the wild. Fault injection
// only: every byte still comes from docker-registry.

/** Behaviours the proxy can show. */
export interface WildProxyOptions {
  /** Drop `Range` from blob GETs, so the registry answers 200 with the whole blob (S3-streaming registries). */
  ignoreRange?: boolean;
  /** Answer blob GETs with a 307 to a second origin that serves the bytes (CDN / object storage). */
  redirectBlobs?: boolean;
  /** Answer this many of the first requests (after `burstAfter`) with 429 and `Retry-After: 0`. */
  burst429?: number;
  /** Requests let through before the 429 burst starts. */
  burstAfter?: number;
  /**
   * Paginate tag lists by `n` and `last` with a `Link: <…>; rel="next"` header, as ghcr.io and distribution 3
   * do (docker-registry 2.8 returns every tag at once).
   */
  paginateTags?: boolean;
  /** Drop the connection of the n-th upload PATCH (1-based) before it reaches the registry. */
  resetPatch?: number;
  /** Cut the body of this many GETs whose path matches `truncatePath` halfway (connection reset). */
  truncate?: number;
  truncatePath?: RegExp;
}

/** One request the proxy or the second origin saw. */
export interface SeenRequest {
  method: string;
  url: string;
  authorization: string | undefined;
  range: string | undefined;
  /** The request's `Content-Range` (upload chunks). */
  contentRange: string | undefined;
  /** Response body bytes sent back to the client. */
  bytes: number;
}

/** A running proxy. */
export interface WildProxy {
  /** `127.0.0.1:<port>` — use as the registry host of references. */
  host: string;
  /** Requests the proxy received. */
  seen: SeenRequest[];
  /** Requests the second (redirect target) origin received. */
  seenByMirror: SeenRequest[];
  /** 429s sent so far. */
  throttled(): number;
  /** Bodies cut so far. */
  truncated(): number;
  /** Upload PATCHes reset so far. */
  resets(): number;
  stop(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function record(req: IncomingMessage): SeenRequest {
  return {
    method: req.method ?? "",
    url: req.url ?? "",
    authorization: req.headers.authorization,
    range: req.headers.range,
    contentRange: req.headers["content-range"],
    bytes: 0,
  };
}

async function forward(
  upstream: string,
  req: IncomingMessage,
  res: ServerResponse,
  headers: Record<string, string>,
  seen: SeenRequest,
  cutAt?: (length: number) => number | undefined,
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const response = await request(`${upstream}${req.url}`, {
    method: req.method as "GET",
    headers,
    body:
      body.length > 0 || req.method === "PUT" || req.method === "PATCH" || req.method === "POST"
        ? body
        : undefined,
  });
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value === undefined || name === "transfer-encoding" || name === "connection" || name === "keep-alive")
      continue;
    out[name] = value;
  }
  res.writeHead(response.statusCode, out);
  const length = Number(response.headers["content-length"] ?? Number.NaN);
  const cut = Number.isFinite(length) ? cutAt?.(length) : undefined;
  for await (const chunk of response.body) {
    let piece = chunk as Buffer;
    if (cut !== undefined && seen.bytes + piece.length > cut) piece = piece.subarray(0, cut - seen.bytes);
    seen.bytes += piece.length;
    res.write(piece);
    if (cut !== undefined && seen.bytes >= cut) {
      // Let the half body reach the client, then reset the connection.
      await new Promise((resolve) => setTimeout(resolve, 20));
      res.destroy();
      await response.body.dump().catch(() => {});
      return;
    }
  }
  res.end();
}

function requestHeaders(req: IncomingMessage, drop: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    // `host` is kept: the registry builds upload Locations from it, and they must point at the proxy.
    if (value === undefined || drop.includes(name) || name === "connection") continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}

const BLOB_GET = /^\/v2\/.+\/blobs\/sha256:[a-f0-9]{64}$/;

/**
 * Starts the proxy in front of `upstream` (`http://127.0.0.1:<port>` of a docker-registry). `mirrorAuth` is
 * the `Authorization` the second origin uses towards the registry (as object storage would hold its own
 * credentials): the client's credentials must never reach the second origin.
 */
export async function startWildProxy(
  upstream: string,
  options: WildProxyOptions,
  mirrorAuth?: string,
): Promise<WildProxy> {
  const seen: SeenRequest[] = [];
  const seenByMirror: SeenRequest[] = [];
  let throttled = 0;
  let truncated = 0;
  let resetPatches = 0;
  let patches = 0;
  let count = 0;
  const mirror = createServer((req, res) => {
    const entry = record(req);
    seenByMirror.push(entry);
    const headers = requestHeaders(req, ["authorization"]);
    if (mirrorAuth !== undefined) headers.authorization = mirrorAuth;
    forward(upstream, req, res, headers, entry).catch(() => res.destroy());
  });
  const mirrorPort = await listen(mirror);
  const proxy = createServer((req, res) => {
    const entry = record(req);
    seen.push(entry);
    count++;
    const burst = options.burst429 ?? 0;
    if (burst > 0 && count > (options.burstAfter ?? 0) && throttled < burst) {
      throttled++;
      req.resume();
      res.writeHead(429, { "retry-after": "0", "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "slow down" }] }));
      return;
    }
    const tagList = /^(\/v2\/.+\/tags\/list)(\?.*)?$/.exec(req.url ?? "");
    if (options.paginateTags === true && req.method === "GET" && tagList !== null) {
      const query = new URLSearchParams(tagList[2]?.slice(1) ?? "");
      const n = Number(query.get("n") ?? 100);
      const last = query.get("last");
      request(`${upstream}${tagList[1]}`, { headers: requestHeaders(req, ["host"]) })
        .then(async (response) => {
          const body = (await response.body.json()) as { name: string; tags: string[] };
          const all = [...body.tags].sort();
          const from = last === null ? 0 : all.findIndex((t) => t > last);
          const page = from < 0 ? [] : all.slice(from, from + n);
          const headers: Record<string, string> = { "content-type": "application/json" };
          if (from >= 0 && from + n < all.length) {
            headers.link = `<${tagList[1]}?n=${n}&last=${encodeURIComponent(page.at(-1) ?? "")}>; rel="next"`;
          }
          const out = JSON.stringify({ name: body.name, tags: page });
          entry.bytes += out.length;
          res.writeHead(200, headers);
          res.end(out);
        })
        .catch(() => res.destroy());
      return;
    }
    if (req.method === "PATCH" && ++patches === options.resetPatch) {
      // The connection drops before the chunk reaches the registry: the upload stays where the previous
      // chunk left it, and the client must ask (GET on its newest Location) and resume from there.
      resetPatches++;
      req.socket.destroy();
      return;
    }
    const isBlobGet = req.method === "GET" && BLOB_GET.test(req.url ?? "");
    if (isBlobGet && options.redirectBlobs === true) {
      // Like a presigned object-storage URL: the secret is in the query, never in a header.
      req.resume();
      res.writeHead(307, { location: `http://127.0.0.1:${mirrorPort}${req.url}?X-Amz-Signature=presigned` });
      res.end();
      return;
    }
    const drop = isBlobGet && options.ignoreRange === true ? ["range", "if-range"] : [];
    const cutAt = (length: number): number | undefined => {
      if (req.method !== "GET" || !(options.truncatePath?.test(req.url ?? "") ?? false)) return undefined;
      if (truncated >= (options.truncate ?? 0) || length < 2) return undefined;
      truncated++;
      return Math.floor(length / 2);
    };
    forward(upstream, req, res, requestHeaders(req, drop), entry, cutAt).catch(() => res.destroy());
  });
  const port = await listen(proxy);
  const close = (server: Server): Promise<void> =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    host: `127.0.0.1:${port}`,
    seen,
    seenByMirror,
    throttled: () => throttled,
    truncated: () => truncated,
    resets: () => resetPatches,
    stop: async () => {
      await close(proxy);
      await close(mirror);
    },
  };
}
