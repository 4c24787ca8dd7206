import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";

/** A misbehaviour the test server applies to one request. */
export type Fault =
  | { kind: "status"; status: number; retryAfter?: string }
  | { kind: "ignore-range" }
  | { kind: "wrong-range" }
  | { kind: "wrong-total" }
  | { kind: "short" }
  | { kind: "long" }
  | { kind: "destroy" }
  | { kind: "reset" }
  | { kind: "stall" }
  | { kind: "stall-body" }
  | { kind: "change-etag" }
  | { kind: "no-etag" }
  | { kind: "redirect"; to: string; status?: number };

/** What the server saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
}

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Answer HEAD with 405 (forces the range-probe fallback). */
  noHead?: boolean;
  /** Answer every GET with 200 and the whole object (a server without Range support). */
  ignoreRange?: boolean;
  /** Ignore If-Match. */
  ignoreIfMatch?: boolean;
  /** Picks a fault for a request that has none queued (fault-injection loop). */
  random?: (req: IncomingMessage) => Fault | undefined;
  /** Answer 401 (with a Bearer challenge) unless `Authorization` is exactly this. */
  auth?: string;
  /** Delay every answer by this many ms (concurrency tests). */
  delayMs?: number;
}

/** A node:http server on 127.0.0.1 serving `content` with Range, ETag and If-Match support. */
export interface TestServer {
  url: string;
  origin: string;
  content: Buffer;
  etag: string;
  requests: SeenRequest[];
  /** Requests being handled right now, and the most ever seen at once. */
  inFlight: number;
  peakInFlight: number;
  /** Faults applied, in order, to the next requests. */
  faults: Fault[];
  options: ServerOptions;
  close(): Promise<void>;
}

function parseRange(value: string | undefined, size: number): [number, number] | "bad" | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d+)-(\d*)$/.exec(value);
  if (m === null) return "bad";
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "bad";
  return [start, end];
}

/** Starts a test server; `close()` destroys every connection, including stalled ones. */
export async function startServer(content: Uint8Array, options: ServerOptions = {}): Promise<TestServer> {
  const buffer = Buffer.from(content);
  const stalled = new Set<ServerResponse>();
  let etagCounter = 1;
  const state: TestServer = {
    url: "",
    origin: "",
    content: buffer,
    etag: `"v${etagCounter}"`,
    requests: [],
    inFlight: 0,
    peakInFlight: 0,
    faults: [],
    options,
    close: async () => {},
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    state.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const fault = state.faults.shift() ?? state.options.random?.(req);
    const size = buffer.length;
    if (state.options.auth !== undefined && req.headers.authorization !== state.options.auth) {
      res.writeHead(401, { "www-authenticate": 'Bearer realm="test",scope="pull"' });
      res.end();
      return;
    }
    if (fault?.kind === "change-etag") {
      etagCounter++;
      state.etag = `"v${etagCounter}"`;
    }
    if (fault?.kind === "status") {
      const headers: Record<string, string> = { "content-type": "text/plain" };
      if (fault.retryAfter !== undefined) headers["retry-after"] = fault.retryAfter;
      res.writeHead(fault.status, headers);
      res.end(`status ${fault.status}`);
      return;
    }
    if (fault?.kind === "redirect") {
      res.writeHead(fault.status ?? 302, { location: `${fault.to}${req.url ?? "/"}` });
      res.end();
      return;
    }
    if (fault?.kind === "stall") {
      stalled.add(res);
      res.on("close", () => stalled.delete(res));
      return;
    }
    if (fault?.kind === "reset") {
      req.socket.destroy();
      return;
    }
    const validators: Record<string, string> = fault?.kind === "no-etag" ? {} : { etag: state.etag };
    if (req.method === "HEAD") {
      if (state.options.noHead) {
        res.writeHead(405);
        res.end();
        return;
      }
      res.writeHead(200, { "content-length": String(size), "accept-ranges": "bytes", ...validators });
      res.end();
      return;
    }
    const range = parseRange(req.headers.range, size);
    if (range === undefined || fault?.kind === "ignore-range" || state.options.ignoreRange) {
      res.writeHead(200, { "content-length": String(size), ...validators });
      res.end(buffer);
      return;
    }
    const ifMatch = req.headers["if-match"];
    if (ifMatch !== undefined && !state.options.ignoreIfMatch && ifMatch !== state.etag && ifMatch !== "*") {
      res.writeHead(412);
      res.end();
      return;
    }
    if (range === "bad") {
      res.writeHead(416, { "content-range": `bytes */${size}` });
      res.end();
      return;
    }
    let [start, end] = range;
    let total = size;
    if (fault?.kind === "wrong-range") {
      // Shifted by one byte: a proxy that mangled the range.
      if (end + 1 < size) {
        start++;
        end++;
      } else if (start > 0) {
        start--;
        end--;
      } else {
        end = Math.max(start, end - 1);
      }
    }
    if (fault?.kind === "wrong-total") total = size + 1;
    const slice = buffer.subarray(start, end + 1);
    const headers: Record<string, string> = {
      "content-range": `bytes ${start}-${end}/${total}`,
      ...validators,
    };
    if (fault?.kind === "short") {
      // Chunked (no Content-Length) and ends early: a clean but truncated body.
      res.writeHead(206, headers);
      res.end(slice.subarray(0, slice.length >> 1));
      return;
    }
    if (fault?.kind === "long") {
      res.writeHead(206, headers);
      res.end(Buffer.concat([slice, Buffer.from("extra")]));
      return;
    }
    res.writeHead(206, { ...headers, "content-length": String(slice.length) });
    if (fault?.kind === "destroy") {
      res.write(slice.subarray(0, slice.length >> 1), () => req.socket.destroy());
      return;
    }
    if (fault?.kind === "stall-body") {
      res.write(slice.subarray(0, slice.length >> 1));
      stalled.add(res);
      res.on("close", () => stalled.delete(res));
      return;
    }
    res.end(slice);
  };

  const server: Server = createServer((req, res) => {
    state.inFlight++;
    state.peakInFlight = Math.max(state.peakInFlight, state.inFlight);
    res.on("close", () => state.inFlight--);
    if (state.options.delayMs === undefined) handle(req, res);
    else setTimeout(() => handle(req, res), state.options.delayMs);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  state.origin = `http://127.0.0.1:${port}`;
  state.url = `${state.origin}/blob`;
  state.close = async () => {
    for (const res of stalled) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}

/** A free TCP port on 127.0.0.1 (for servers that cannot listen on port 0 and report it, like nginx). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
