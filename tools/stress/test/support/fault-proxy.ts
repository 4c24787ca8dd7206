import { createHash, randomBytes } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";

// A fault-injecting reverse proxy in front of a real docker-registry (and of its token issuer), for the soak
// (issue item 3). Extends the idea of packages/registry/test/wild-proxy.ts (which stays untouched): every
// byte still comes from the registry (or, for redirected blob GETs, from its storage directory, like object
// storage behind a CDN), but each request is hit with one fault with probability `rate`:
//
// - reset-before-headers  the connection is destroyed before any answer
// - reset-after-headers   the registry's status and headers are sent, then the connection is destroyed
// - stall                 nothing is sent for `stallMs` (longer than the client's timeouts), then a reset
// - truncate              the body is cut at a random byte, then the connection is reset
// - bitflip               one bit of one body byte of a blob GET is flipped (the length stays right)
// - 5xx                   500 / 502 / 503 / 504 with a registry-style error body
// - 429                   429 with `Retry-After: 0`
// - redirect              a blob GET is answered 307 to the mirror origin with a URL that expires after
//                         `redirectTtlMs` (the mirror answers 403 afterwards, like an expired presigned URL)
//
// Token expiry mid-pull is real: the token requests go through the proxy too (the registry's
// `WWW-Authenticate` realm is rewritten to point at the proxy), the issuer mints tokens that the registry
// rejects after a few seconds, and the proxy tells the client they last 300 s (`expires_in` rewritten), so
// the client keeps sending tokens the registry answers 401 to and must re-authenticate mid-pull.

export const FAULT_KINDS = [
  "reset-before-headers",
  "reset-after-headers",
  "stall",
  "truncate",
  "bitflip",
  "5xx",
  "429",
  "redirect",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultProxyOptions {
  /** docker-registry origin, `http://127.0.0.1:<port>`. */
  upstream: string;
  /** Token issuer realm (`http://127.0.0.1:<port>/token`), proxied at `/token` of the proxy. */
  realm?: string;
  /** Path of a blob's data file in the registry storage (the mirror serves these). */
  blobPath: (digest: string) => string;
  /** Probability of a fault per request (proxy and mirror). */
  rate: number;
  /** How long a stall lasts before the reset, in ms. */
  stallMs: number;
  /** How long a redirect URL is valid, in ms. */
  redirectTtlMs: number;
  /** `expires_in` the client is told for every token (the real lifetime is the issuer's). */
  advertisedExpiresIn?: number;
  /** Seeded random in [0, 1). */
  random: () => number;
}

export interface FaultStats {
  requests: number;
  mirrorRequests: number;
  tokenRequests: number;
  faults: Record<FaultKind, number>;
  /** 401s the registry answered to a token it had accepted before (expired tokens mid-pull). */
  registry401: number;
  /** Mirror answers 403 to expired redirect URLs. */
  expiredRedirects: number;
}

export interface FaultProxy {
  host: string;
  origin: string;
  stats: FaultStats;
  /** Faults on/off (setup and checks run without). */
  enabled: boolean;
  totalFaults(): number;
  stop(): Promise<void>;
}

const BLOB_GET = /^\/v2\/.+\/blobs\/(sha256:[a-f0-9]{64})$/;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === "connection" || name === "keep-alive") continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function errorBody(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: `injected ${status}` }] });
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length, ...headers });
  res.end(body);
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const stats: FaultStats = {
    requests: 0,
    mirrorRequests: 0,
    tokenRequests: 0,
    faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>,
    registry401: 0,
    expiredRedirects: 0,
  };
  const timers = new Set<NodeJS.Timeout>();
  const secret = randomBytes(16).toString("hex");
  const state = { enabled: true };
  let proxyOrigin = "";
  let mirrorOrigin = "";

  const pick = (applicable: readonly FaultKind[]): FaultKind | undefined => {
    if (!state.enabled || options.random() >= options.rate) return undefined;
    return applicable[Math.floor(options.random() * applicable.length)];
  };

  const stall = (res: ServerResponse): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      res.destroy();
    }, options.stallMs);
    timers.add(timer);
  };

  /** Sends `status`/`headers`, then `body` with the fault applied. */
  const sendWithFault = async (
    res: ServerResponse,
    status: number,
    headers: Record<string, string | string[]>,
    body: AsyncIterable<Uint8Array> | Uint8Array,
    length: number,
    fault: FaultKind | undefined,
  ): Promise<void> => {
    if (fault === "reset-after-headers") {
      res.writeHead(status, headers);
      res.flushHeaders();
      await new Promise((resolve) => setTimeout(resolve, 5));
      res.destroy();
      return;
    }
    const cut = fault === "truncate" && length >= 2 ? Math.floor(options.random() * length) : undefined;
    const flip = fault === "bitflip" && length >= 1 ? Math.floor(options.random() * length) : undefined;
    const bit = 1 << Math.floor(options.random() * 8);
    res.writeHead(status, headers);
    let sent = 0;
    const chunks = body instanceof Uint8Array ? [body] : body;
    for await (const raw of chunks) {
      let piece = Buffer.from(raw);
      if (flip !== undefined && flip >= sent && flip < sent + piece.length) {
        piece = Buffer.from(piece);
        piece[flip - sent] = (piece[flip - sent] ?? 0) ^ bit;
      }
      if (cut !== undefined && sent + piece.length > cut) piece = piece.subarray(0, cut - sent);
      sent += piece.length;
      if (res.destroyed) return;
      if (!res.write(piece)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
      if (cut !== undefined && sent >= cut) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        res.destroy();
        return;
      }
    }
    res.end();
  };

  // The mirror: serves blob bytes (with Range) from the registry's storage, for signed, expiring URLs.
  const mirror = createServer((req, res) => {
    stats.mirrorRequests++;
    const url = new URL(req.url ?? "/", "http://mirror");
    const digest = /^\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname)?.[1];
    const expires = Number(url.searchParams.get("X-Expires"));
    const signature = url.searchParams.get("X-Signature");
    const expected = createHash("sha256").update(`${secret}:${digest}:${expires}`).digest("hex");
    req.resume();
    if (digest === undefined || signature !== expected) return errorBody(res, 403);
    if (Date.now() > expires) {
      stats.expiredRedirects++;
      return errorBody(res, 403);
    }
    const fault = pick(FAULT_KINDS.filter((k) => k !== "redirect"));
    if (fault !== undefined) stats.faults[fault]++;
    if (fault === "reset-before-headers") return void res.destroy();
    if (fault === "stall") return stall(res);
    if (fault === "5xx") return errorBody(res, 503);
    if (fault === "429") return errorBody(res, 429, { "retry-after": "0" });
    serveFile(res, digest, options.blobPath(digest), req.headers.range, fault).catch(() => res.destroy());
  });

  const serveFile = async (
    res: ServerResponse,
    digest: string,
    path: string,
    range: string | undefined,
    fault: FaultKind | undefined,
  ): Promise<void> => {
    const size = (await stat(path)).size;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const m = range === undefined ? null : /^bytes=(\d+)-(\d*)$/.exec(range);
    if (m !== null) {
      start = Number(m[1]);
      end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
      if (start >= size) {
        res.writeHead(416, { "content-range": `bytes */${size}` });
        res.end();
        return;
      }
      status = 206;
    }
    const length = end - start + 1;
    // A mirror of the same object: the registry's strong ETag (the quoted digest), as a CDN in front of it.
    const headers: Record<string, string> = {
      etag: `"${digest}"`,
      "content-length": String(length),
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
    };
    if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${size}`;
    const handle = await open(path, "r");
    try {
      const body = handle.createReadStream({ start, end, autoClose: false });
      await sendWithFault(res, status, headers, body, length, fault);
    } finally {
      await handle.close();
    }
  };

  const proxy = createServer((req, res) => {
    const url = req.url ?? "/";
    if (url.startsWith("/token")) {
      stats.tokenRequests++;
      handleToken(req, res).catch(() => res.destroy());
      return;
    }
    stats.requests++;
    const blob = req.method === "GET" ? BLOB_GET.exec(url)?.[1] : undefined;
    const applicable: FaultKind[] = ["reset-before-headers", "reset-after-headers", "stall", "5xx", "429"];
    if (req.method === "GET") applicable.push("truncate");
    if (blob !== undefined) applicable.push("bitflip", "redirect");
    const fault = pick(applicable);
    if (fault !== undefined) stats.faults[fault]++;
    if (fault === "reset-before-headers") return void req.socket.destroy();
    if (fault === "stall") {
      req.resume();
      return stall(res);
    }
    if (fault === "5xx") {
      req.resume();
      return errorBody(res, [500, 502, 503, 504][Math.floor(options.random() * 4)] ?? 503);
    }
    if (fault === "429") {
      req.resume();
      return errorBody(res, 429, { "retry-after": "0" });
    }
    if (fault === "redirect" && blob !== undefined) {
      req.resume();
      const expires = Date.now() + options.redirectTtlMs;
      const signature = createHash("sha256").update(`${secret}:${blob}:${expires}`).digest("hex");
      res.writeHead(307, {
        location: `${mirrorOrigin}/blobs/${blob}?X-Expires=${expires}&X-Signature=${signature}`,
        "content-length": "0",
      });
      res.end();
      return;
    }
    forward(req, res, fault).catch(() => res.destroy());
  });

  const forward = async (req: IncomingMessage, res: ServerResponse, fault: FaultKind | undefined) => {
    const body = await readBody(req);
    const method = req.method ?? "GET";
    const response = await request(`${options.upstream}${req.url}`, {
      method: method as "GET",
      headers: headersOf(req),
      body: body.length > 0 || ["PUT", "PATCH", "POST"].includes(method) ? body : undefined,
    });
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined || ["transfer-encoding", "connection", "keep-alive"].includes(name)) continue;
      out[name] = value;
    }
    if (response.statusCode === 401 && req.headers.authorization?.startsWith("Bearer ")) stats.registry401++;
    const challenge = out["www-authenticate"];
    if (typeof challenge === "string" && options.realm !== undefined) {
      out["www-authenticate"] = challenge.replace(options.realm, `${proxyOrigin}/token`);
    }
    const length = Number(response.headers["content-length"] ?? Number.NaN);
    if (!Number.isFinite(length) && (fault === "truncate" || fault === "bitflip")) {
      // Unknown length: fall back to a reset after the headers.
      stats.faults[fault]--;
      stats.faults["reset-after-headers"]++;
      fault = "reset-after-headers";
    }
    await sendWithFault(res, response.statusCode, out, response.body, length, fault);
    await response.body.dump().catch(() => {});
  };

  const handleToken = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const fault = pick(["reset-before-headers", "5xx", "429", "stall"]);
    if (fault !== undefined) stats.faults[fault]++;
    const body = await readBody(req);
    if (fault === "reset-before-headers") return void req.socket.destroy();
    if (fault === "stall") return stall(res);
    if (fault === "5xx") return errorBody(res, 503);
    if (fault === "429") return errorBody(res, 429, { "retry-after": "0" });
    const realm = new URL(options.realm ?? "");
    const target = `${realm.origin}${req.url}`;
    const response = await request(target, {
      method: (req.method ?? "GET") as "GET",
      headers: headersOf(req),
      body: body.length > 0 ? body : undefined,
    });
    let text = await response.body.text();
    if (response.statusCode === 200 && options.advertisedExpiresIn !== undefined) {
      const json = JSON.parse(text) as Record<string, unknown>;
      json.expires_in = options.advertisedExpiresIn;
      text = JSON.stringify(json);
    }
    res.writeHead(response.statusCode, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  };

  const mirrorPort = await listen(mirror);
  mirrorOrigin = `http://127.0.0.1:${mirrorPort}`;
  const port = await listen(proxy);
  proxyOrigin = `http://127.0.0.1:${port}`;
  const close = (server: Server): Promise<void> =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    host: `127.0.0.1:${port}`,
    origin: proxyOrigin,
    stats,
    get enabled() {
      return state.enabled;
    },
    set enabled(value: boolean) {
      state.enabled = value;
    },
    totalFaults: () => Object.values(stats.faults).reduce((a, b) => a + b, 0),
    stop: async () => {
      for (const timer of timers) clearTimeout(timer);
      await close(proxy);
      await close(mirror);
    },
  };
}

/** xorshift32: a small seeded PRNG in [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}
