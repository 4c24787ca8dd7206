import { createHash } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Agent } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../test/server.ts";
import { dispatchRequest } from "./response.ts";

const BIG = 64 * 1024 * 1024;
const BLOCK = Buffer.alloc(1024 * 1024);
for (let i = 0; i < BLOCK.length; i++) BLOCK[i] = (i * 7 + (i >>> 10)) & 0xff;

interface Served {
  origin: string;
  sockets: Socket[];
  closed: Promise<void>[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A server whose paths answer: /big (64 MiB), /small ("hello"), /hang (headers, then nothing). */
async function serve(): Promise<Served> {
  const served: Served = { origin: "", sockets: [], closed: [] };
  const server: Server = createServer((req, res: ServerResponse) => {
    if (req.url === "/small") {
      res.end("hello");
    } else if (req.url === "/hang") {
      res.writeHead(200, { "content-length": "10" });
      res.flushHeaders();
    } else {
      res.writeHead(200, { "content-length": String(BIG) });
      let sent = 0;
      const more = (): void => {
        while (sent < BIG) {
          sent += BLOCK.length;
          if (!res.write(BLOCK)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    }
  });
  server.on("connection", (socket) => {
    served.sockets.push(socket);
    served.closed.push(new Promise((resolve) => socket.once("close", () => resolve())));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  served.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return served;
}

function agent(): Agent {
  const a = new Agent();
  cleanups.push(() => a.destroy());
  return a;
}

const get = (origin: string, path: string) => ({ origin, path, method: "GET" as const });
const sha = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("dispatchRequest / ResponseBody", () => {
  it("holds only a little of a body nobody reads yet (the socket pauses), then delivers all of it", async () => {
    const s = await serve();
    const response = await dispatchRequest(agent(), get(s.origin, "/big"), new AbortController().signal);
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-length"]).toBe(String(BIG));
    await sleep(300);
    // Without the pause the client would have swallowed all 64 MiB by now; kernel buffers hold a few MiB.
    expect(s.sockets[0]!.bytesWritten).toBeLessThan(BIG / 2);
    const body = await response.body.readAll();
    expect(body?.byteLength).toBe(BIG);
    const expected = createHash("sha256");
    for (let i = 0; i < BIG / BLOCK.length; i++) expected.update(BLOCK);
    expect(sha(body!)).toBe(expected.digest("hex"));
  });

  it("readAll past its limit resolves undefined and drops the connection", async () => {
    const s = await serve();
    const response = await dispatchRequest(agent(), get(s.origin, "/big"), new AbortController().signal);
    expect(await response.body.readAll(1024 * 1024)).toBeUndefined();
    expect(response.body.settled).toBe(true);
    await s.closed[0];
  });

  it("readAll of a small body copies it out of the socket's read buffer", async () => {
    const s = await serve();
    const response = await dispatchRequest(agent(), get(s.origin, "/small"), new AbortController().signal);
    const body = await response.body.readAll();
    expect(Buffer.from(body!).toString()).toBe("hello");
    expect(body!.buffer.byteLength).toBe(5);
  });

  it("a second dump leaves the body to the first consumer; dump drops a long body", async () => {
    const s = await serve();
    const a = agent();
    const small = await dispatchRequest(a, get(s.origin, "/small"), new AbortController().signal);
    await Promise.all([small.body.dump(64), small.body.dump(64)]);
    expect(small.body.settled).toBe(true);
    const big = await dispatchRequest(a, get(s.origin, "/big"), new AbortController().signal);
    await big.body.dump(64 * 1024);
    await s.closed.at(-1); // the connection that carried the long body
    expect(big.body.settled).toBe(true);
    expect(() => big.body.pipe({ data() {}, end() {}, error() {} })).toThrow(/already has a consumer/);
  });

  it("an abort before the headers rejects with the signal's reason; after them it fails the body", async () => {
    const s = await serve();
    const a = agent();
    const early = new AbortController();
    const pending = dispatchRequest(a, get(s.origin, "/hang"), early.signal);
    early.abort(new Error("early"));
    await expect(pending).rejects.toThrow("early");

    const late = new AbortController();
    const response = await dispatchRequest(a, get(s.origin, "/hang"), late.signal);
    const body = response.body.readAll();
    late.abort(new Error("late"));
    await expect(body).rejects.toThrow("late");

    const already = new AbortController();
    already.abort(new Error("already"));
    await expect(dispatchRequest(a, get(s.origin, "/small"), already.signal)).rejects.toThrow("already");
  });

  it("an abort while the request waits for a busy connection rejects at once", async () => {
    const s = await serve();
    const one = new Agent({ connections: 1 });
    cleanups.push(() => one.destroy());
    const busy = await dispatchRequest(one, get(s.origin, "/hang"), new AbortController().signal);
    const controller = new AbortController();
    const queued = dispatchRequest(one, get(s.origin, "/small"), controller.signal);
    await sleep(50);
    controller.abort(new Error("gave up"));
    const outcome = await Promise.race([
      queued.then(
        () => "resolved",
        (e: Error) => e.message,
      ),
      sleep(1000),
    ]);
    expect(outcome).toBe("gave up");
    busy.body.destroy();
  });

  it("a connection error before the headers rejects with undici's error", async () => {
    const port = await freePort();
    await expect(
      dispatchRequest(agent(), get(`http://127.0.0.1:${port}`, "/"), new AbortController().signal),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("an invalid request rejects instead of throwing", async () => {
    const s = await serve();
    await expect(
      dispatchRequest(agent(), { ...get(s.origin, "no-slash") }, new AbortController().signal),
    ).rejects.toThrow(/path/);
  });
});
