import { getEventListeners } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { BlobError, isBlobError } from "@blobkit/core";
import { Agent } from "undici";
import { Agent as Agent6 } from "undici6";
import { afterEach, describe, expect, it } from "vitest";
import { type ServerOptions, startServer, type TestServer } from "../test/server.ts";
import { HttpSource, type HttpSourceOptions } from "./index.ts";

function pattern(size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = 0x12345;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const SIZE = 50_000;
const BYTES = pattern(SIZE);
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(options: ServerOptions = {}, bytes: Uint8Array = BYTES): Promise<TestServer> {
  const s = await startServer(bytes, options);
  cleanups.push(() => s.close());
  return s;
}

function source(url: string, options: HttpSourceOptions = {}): HttpSource {
  const src = new HttpSource(url, { retryDelayMs: 1, ...options });
  cleanups.push(() => src.close());
  return src;
}

async function code(promise: Promise<unknown>): Promise<BlobError> {
  try {
    await promise;
  } catch (error) {
    if (isBlobError(error)) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const expectSlice = (got: Uint8Array, offset: number, length: number): void => {
  expect(Buffer.from(got).equals(Buffer.from(BYTES.subarray(offset, offset + length)))).toBe(true);
};

describe("HttpSource: requests", () => {
  it("with a given size, size() sends nothing and a read is one range GET", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, headers: { "X-Test": "1" } });
    expect(await src.size()).toBe(SIZE);
    expect(s.requests).toHaveLength(0);
    expectSlice(await src.read(100, 1000), 100, 1000);
    expect(s.requests).toHaveLength(1);
    const [req] = s.requests;
    expect(req!.method).toBe("GET");
    expect(req!.headers.range).toBe("bytes=100-1099");
    expect(req!.headers["accept-encoding"]).toBe("identity");
    expect(req!.headers["x-test"]).toBe("1");
    expect(src.stats).toMatchObject({ requests: 1, retries: 0, bytes: 1000 });
  });

  it("discovers the size once with HEAD; concurrent size() calls share one request", async () => {
    const s = await server();
    const src = source(s.url);
    const sizes = await Promise.all([src.size(), src.size(), src.size()]);
    expect(sizes).toEqual([SIZE, SIZE, SIZE]);
    expect(await src.size()).toBe(SIZE);
    expect(s.requests.map((r) => r.method)).toEqual(["HEAD"]);
  });

  it("falls back to a one-byte range probe when HEAD fails; an empty object has size 0", async () => {
    const s = await server({ noHead: true });
    const src = source(s.url);
    expect(await src.size()).toBe(SIZE);
    expect(s.requests.map((r) => `${r.method} ${r.headers.range}`)).toEqual([
      "HEAD undefined",
      "GET bytes=0-0",
    ]);
    const empty = await server({ noHead: true }, new Uint8Array(0));
    const emptySource = source(empty.url);
    expect(await emptySource.size()).toBe(0);
    expect((await emptySource.read(0, 0)).length).toBe(0);
  });

  it("a read without a known size learns it from Content-Range; 416 is ERR_OUT_OF_RANGE", async () => {
    const s = await server();
    const src = source(s.url);
    expectSlice(await src.read(10, 10), 10, 10);
    expect(s.requests).toHaveLength(1);
    expect(await src.size()).toBe(SIZE);
    expect(s.requests).toHaveLength(1);
    const fresh = source(s.url);
    expect((await code(fresh.read(SIZE + 5, 1))).code).toBe("ERR_OUT_OF_RANGE");
    const partial = source(s.url);
    expect((await code(partial.read(SIZE - 5, 10))).code).toBe("ERR_OUT_OF_RANGE");
    // A 416 for a range inside the size we were told: the object shrank.
    const told = source(s.url, { size: SIZE + 100 });
    expect(await code(told.read(SIZE + 10, 10))).toMatchObject({
      code: "ERR_SOURCE_CHANGED",
      reason: "shrunk",
    });
  });

  it("a length-0 read sends no range request and is still checked against the size", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    expect((await src.read(SIZE, 0)).length).toBe(0);
    expect((await code(src.read(SIZE + 1, 0))).code).toBe("ERR_OUT_OF_RANGE");
    expect(s.requests).toHaveLength(0);
  });

  it("keeps at most maxConcurrency requests in flight", async () => {
    const s = await server({ delayMs: 20 });
    const src = source(s.url, { size: SIZE, maxConcurrency: 3 });
    const reads = Array.from({ length: 12 }, (_, i) => src.read(i * 100, 100));
    for (const [i, got] of (await Promise.all(reads)).entries()) expectSlice(got, i * 100, 100);
    expect(s.peakInFlight).toBeLessThanOrEqual(3);
  });

  it("rejects invalid constructor arguments", () => {
    expect(() => new HttpSource("ftp://example.com/x")).toThrow(BlobError);
    expect(() => new HttpSource("not a url")).toThrow(BlobError);
    expect(() => new HttpSource("http://x/", { size: -1 })).toThrow(BlobError);
    expect(() => new HttpSource("http://x/", { maxConcurrency: 0 })).toThrow(BlobError);
  });
});

describe("HttpSource: identity", () => {
  it("the default id has no credentials or secret query parameters, and includes a given etag", async () => {
    const a = new HttpSource(
      "https://user:pw@cdn.example/blob?X-Amz-Signature=abc&token=t0k3n&version=2#frag",
    );
    expect(a.id).toMatch(/^url:https:\/\/cdn\.example\/blob\?sha256-[0-9a-f]{16}$/);
    for (const secret of ["user", "pw", "abc", "t0k3n", "frag"]) expect(a.id).not.toContain(secret);
    expect(a.subject).toBe("https://cdn.example/blob");
    // Re-signing keeps the id; a different object (or any other parameter) changes it.
    const resigned = new HttpSource("https://cdn.example/blob?version=2&token=t0k3n&X-Amz-Signature=zzz");
    expect(resigned.id).toBe(a.id);
    const objectA = new HttpSource("https://h.example/get?objectKey=a.tar");
    const objectB = new HttpSource("https://h.example/get?objectKey=b.tar");
    expect(objectA.id).not.toBe(objectB.id);
    expect(new HttpSource("https://h.example/get").id).toBe("url:https://h.example/get");
    await Promise.all([resigned.close(), objectA.close(), objectB.close()]);
    const b = new HttpSource("https://cdn.example/blob", { etag: '"abc"' });
    expect(b.id).toBe('url:https://cdn.example/blob#"abc"');
    const c = new HttpSource("https://cdn.example/blob", { id: "sha256:00" });
    expect(c.id).toBe("sha256:00");
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});

describe("HttpSource: server misbehaviour", () => {
  it("200 to a range request is ERR_RANGE_NOT_SUPPORTED, never the slice, not retried", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    s.faults.push({ kind: "ignore-range" });
    const error = await code(src.read(10, 10));
    expect(error.code).toBe("ERR_RANGE_NOT_SUPPORTED");
    expect(s.requests).toHaveLength(1);
    // Same for the size probe of a server without HEAD.
    const noHead = await server({ noHead: true });
    noHead.faults.push({ kind: "status", status: 405 }, { kind: "ignore-range" });
    expect((await code(source(noHead.url).size())).code).toBe("ERR_RANGE_NOT_SUPPORTED");
  });

  it("a wrong Content-Range is retried, then ERR_INTEGRITY content-range-mismatch", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 2 });
    s.faults.push({ kind: "wrong-range" });
    expectSlice(await src.read(500, 300), 500, 300);
    expect(src.stats.retries).toBe(1);
    s.faults.push({ kind: "wrong-range" }, { kind: "wrong-range" }, { kind: "wrong-range" });
    const error = await code(src.read(500, 300));
    expect(error.code).toBe("ERR_INTEGRITY");
    expect(error.reason).toBe("content-range-mismatch");
    expect(s.requests).toHaveLength(5);
  });

  it("a Content-Range total other than the known size is ERR_INTEGRITY", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 0 });
    s.faults.push({ kind: "wrong-total" });
    expect((await code(src.read(0, 10))).reason).toBe("content-range-mismatch");
  });

  it("a short body is retried, then ERR_INTEGRITY short-body", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 1 });
    s.faults.push({ kind: "short" });
    expectSlice(await src.read(0, 4000), 0, 4000);
    s.faults.push({ kind: "short" }, { kind: "short" });
    const error = await code(src.read(0, 4000));
    expect(error.code).toBe("ERR_INTEGRITY");
    expect(error.reason).toBe("short-body");
  });

  it("a body longer than the range is ERR_INTEGRITY long-body", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 0 });
    s.faults.push({ kind: "long" });
    expect((await code(src.read(0, 4000))).reason).toBe("long-body");
  });

  it("a connection destroyed mid-body or reset is retried, then ERR_NETWORK", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 2 });
    s.faults.push({ kind: "destroy" }, { kind: "reset" });
    expectSlice(await src.read(100, 20_000), 100, 20_000);
    expect(src.stats.retries).toBe(2);
    s.faults.push({ kind: "destroy" }, { kind: "destroy" }, { kind: "destroy" });
    const error = await code(src.read(100, 20_000));
    expect(error.code).toBe("ERR_NETWORK");
  });

  it("maps 404, 401 and 403 without retrying", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    const cases: [number, string][] = [
      [404, "ERR_NOT_FOUND"],
      [410, "ERR_NOT_FOUND"],
      [401, "ERR_UNAUTHORIZED"],
      [403, "ERR_DENIED"],
    ];
    for (const [status, expected] of cases) {
      s.faults.push({ kind: "status", status });
      expect((await code(src.read(0, 1))).code).toBe(expected);
    }
    expect(s.requests).toHaveLength(4);
    s.faults.push({ kind: "status", status: 404 });
    expect((await code(source(s.url).size())).code).toBe("ERR_NOT_FOUND");
  });

  it("retries a burst of 5xx, then gives up with ERR_NETWORK", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 3 });
    s.faults.push(
      { kind: "status", status: 500 },
      { kind: "status", status: 502 },
      { kind: "status", status: 503 },
    );
    expectSlice(await src.read(7, 70), 7, 70);
    expect(src.stats.retries).toBe(3);
    for (let i = 0; i < 4; i++) s.faults.push({ kind: "status", status: 500 });
    const error = await code(src.read(7, 70));
    expect(error.code).toBe("ERR_NETWORK");
    expect(error.reason).toBe("http-500");
    expect(s.requests).toHaveLength(8);
  });

  it("honours Retry-After on 429 and 503; a Retry-After beyond the limit fails at once", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, maxRetryDelayMs: 5_000 });
    s.faults.push({ kind: "status", status: 429, retryAfter: "1" });
    expectSlice(await src.read(0, 10), 0, 10);
    expect(s.requests).toHaveLength(2);
    s.faults.push({ kind: "status", status: 503, retryAfter: "3600" });
    const error = await code(src.read(0, 10));
    expect(error.code).toBe("ERR_NETWORK");
    expect(error.reason).toBe("http-503");
    expect(s.requests).toHaveLength(3);
  });

  it("does not retry other 4xx answers", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    s.faults.push({ kind: "status", status: 400 });
    expect((await code(src.read(0, 1))).reason).toBe("http-400");
    expect(s.requests).toHaveLength(1);
  });
});

describe("HttpSource: change detection", () => {
  it("sends If-Match with the first ETag seen; 412 is ERR_SOURCE_CHANGED", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    await src.read(0, 10);
    expect(s.requests[0]!.headers["if-match"]).toBeUndefined();
    expect(src.etag).toBe('"v1"');
    await src.read(0, 10);
    expect(s.requests[1]!.headers["if-match"]).toBe('"v1"');
    s.faults.push({ kind: "change-etag" });
    const error = await code(src.read(0, 10));
    expect(error.code).toBe("ERR_SOURCE_CHANGED");
    expect(s.requests).toHaveLength(3);
  });

  it("a different ETag from a server that ignores If-Match is ERR_SOURCE_CHANGED", async () => {
    const s = await server({ ignoreIfMatch: true });
    const src = source(s.url);
    expect(await src.size()).toBe(SIZE);
    s.faults.push({ kind: "change-etag" });
    const error = await code(src.read(0, 10));
    expect(error.code).toBe("ERR_SOURCE_CHANGED");
    expect(error.reason).toBe("etag-changed");
  });

  it("a given ETag is sent on the first request", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, etag: '"other"' });
    expect((await code(src.read(0, 10))).code).toBe("ERR_SOURCE_CHANGED");
    expect(s.requests[0]!.headers["if-match"]).toBe('"other"');
  });
});

describe("HttpSource: timeouts, aborts, close", () => {
  it("a stalled server times out (retried), then ERR_NETWORK timeout", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, timeoutMs: 150, retries: 1 });
    s.faults.push({ kind: "stall" }, { kind: "stall" });
    const error = await code(src.read(0, 10));
    expect(error.code).toBe("ERR_NETWORK");
    expect(error.reason).toBe("timeout");
    expect(s.requests).toHaveLength(2);
    expectSlice(await src.read(0, 10), 0, 10);
  });

  it("a body that stalls hits the idle timeout", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, idleTimeoutMs: 150, retries: 0 });
    s.faults.push({ kind: "stall-body" });
    expect((await code(src.read(0, 20_000))).code).toBe("ERR_NETWORK");
  });

  it("an abort while in flight or during a backoff rejects with exactly signal.reason", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    s.faults.push({ kind: "stall" });
    const controller = new AbortController();
    const pending = src.read(0, 10, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const reason = new Error("stop");
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    const slow = source(s.url, { size: SIZE, retryDelayMs: 10_000, maxRetryDelayMs: 20_000 });
    s.faults.push({ kind: "status", status: 500 });
    const c2 = new AbortController();
    const backingOff = slow.read(0, 10, { signal: c2.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    c2.abort("later");
    await expect(backingOff).rejects.toBe("later");
  });

  it("leaves no abort listeners behind on the caller's signal, whatever the outcome", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 1 });
    const controller = new AbortController();
    const { signal } = controller;
    for (let i = 0; i < 50; i++) expectSlice(await src.read(i * 100, 100, { signal }), i * 100, 100);
    await Promise.all(Array.from({ length: 50 }, (_, i) => src.read(i * 7, 7, { signal })));
    expect(await drain(src.stream(10, 20_000, { signal }))).toHaveLength(20_000);
    await src.readRanges(
      [
        { offset: 0, length: 10 },
        { offset: 40_000, length: 10 },
      ],
      { signal },
    );
    s.faults.push({ kind: "status", status: 500 }, { kind: "status", status: 500 });
    expect((await code(src.read(0, 10, { signal }))).code).toBe("ERR_NETWORK");
    s.faults.push({ kind: "short" }, { kind: "destroy" });
    expect((await code(src.read(0, 10, { signal }))).code).toMatch(/ERR_INTEGRITY|ERR_NETWORK/);
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("close() aborts requests in flight with ERR_CLOSED and is idempotent", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    s.faults.push({ kind: "stall" });
    const pending = code(src.read(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 30));
    await Promise.all([src.close(), src.close()]);
    expect((await pending).code).toBe("ERR_CLOSED");
    expect((await code(src.read(0, 1))).code).toBe("ERR_CLOSED");
    expect((await code(src.size())).code).toBe("ERR_CLOSED");
  });

  it("a caller's dispatcher is used and never closed by the source", async () => {
    const s = await server();
    const agent = new Agent();
    cleanups.push(() => agent.close());
    const src = new HttpSource(s.url, { size: SIZE, dispatcher: agent });
    expectSlice(await src.read(1, 2), 1, 2);
    await src.close();
    expect(agent.closed).toBe(false);
    const again = source(s.url, { size: SIZE, dispatcher: agent });
    expectSlice(await again.read(3, 4), 3, 4);
  });
});

describe("HttpSource: a caller's undici 6 dispatcher (legacy handler API)", () => {
  it("reads, streams with backpressure, maps errors and aborts like undici 8", async () => {
    const big = pattern(3 * 1024 * 1024);
    const s = await server({}, big);
    const agent = new Agent6();
    cleanups.push(() => agent.close());
    const src = source(s.url, {
      size: big.byteLength,
      dispatcher: agent as unknown as HttpSourceOptions["dispatcher"],
    });
    expect(Buffer.from(await src.read(100, 1000)).equals(big.subarray(100, 1100))).toBe(true);
    // A reader slower than the socket: the body pauses and resumes without losing or reordering bytes.
    const reader = src.stream(0, big.byteLength).getReader();
    const chunks: Uint8Array[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    s.faults.push({ kind: "status", status: 404 });
    expect((await code(src.read(0, 10))).code).toBe("ERR_NOT_FOUND");
    s.faults.push({ kind: "stall" });
    const controller = new AbortController();
    const pending = src.read(0, 10, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 30));
    controller.abort(new Error("stop"));
    await expect(pending).rejects.toThrow("stop");
    expect(agent.closed).toBe(false);
  });
});

describe("HttpSource: stream()", () => {
  it("streams a range with one request", async () => {
    const s = await server();
    const src = source(s.url);
    expectSlice(await drain(src.stream(1000, 30_000)), 1000, 30_000);
    expect(s.requests).toHaveLength(1);
  });

  it("checks the status before the first byte (retrying) and errors on a bad body", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    s.faults.push({ kind: "status", status: 503 }, { kind: "wrong-range" });
    expectSlice(await drain(src.stream(5, 20_000)), 5, 20_000);
    s.faults.push({ kind: "ignore-range" });
    expect((await code(drain(src.stream(0, 10)))).code).toBe("ERR_RANGE_NOT_SUPPORTED");
    expect((await code(drain(src.stream(SIZE, 1)))).code).toBe("ERR_OUT_OF_RANGE");
    // Without retries a broken or short body errors the stream.
    const strict = source(s.url, { size: SIZE, retries: 0 });
    s.faults.push({ kind: "destroy" });
    expect((await code(drain(strict.stream(0, 40_000)))).code).toBe("ERR_NETWORK");
    s.faults.push({ kind: "short" });
    expect((await code(drain(strict.stream(0, 40_000)))).reason).toBe("short-body");
  });

  it("resumes a body that breaks off or ends early from the first byte not yet delivered", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    for (const kind of ["destroy", "short"] as const) {
      s.requests.length = 0;
      s.faults.push({ kind });
      expectSlice(await drain(src.stream(100, 40_000)), 100, 40_000);
      const ranges = s.requests.map((r) => r.headers.range);
      expect(ranges[0]).toBe("bytes=100-40099");
      // The second request starts after what the first delivered (half of the slice), not at 100 again.
      expect(ranges).toHaveLength(2);
      const resumedAt = Number(/^bytes=([0-9]+)-40099$/.exec(ranges[1] ?? "")?.[1]);
      expect(resumedAt).toBeGreaterThan(100);
      expect(resumedAt).toBeLessThanOrEqual(100 + 20_000);
    }
    // The object changed between the two requests: the stream fails instead of splicing two versions.
    s.faults.push({ kind: "destroy" }, { kind: "change-etag" });
    expect((await code(drain(src.stream(0, 40_000)))).code).toBe("ERR_SOURCE_CHANGED");
  });

  it("without a strong ETag a broken body is not resumed (two versions could splice), unless immutable", async () => {
    // A server with no validators whose object is replaced after the first request broke off.
    const versions = [Buffer.alloc(SIZE, 0xaa), Buffer.alloc(SIZE, 0xbb)];
    let served = 0;
    const plain = createServer((req, res) => {
      const body = versions[Math.min(served, 1)]!;
      const [start, end] = (/bytes=(\d+)-(\d+)/.exec(req.headers.range ?? "") ?? []).slice(1).map(Number) as [
        number,
        number,
      ];
      const slice = body.subarray(start, end + 1);
      res.writeHead(206, {
        "content-range": `bytes ${start}-${end}/${SIZE}`,
        "content-length": String(slice.length),
      });
      if (served++ === 0) res.write(slice.subarray(0, slice.length >> 1), () => req.socket.destroy());
      else res.end(slice);
    });
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/x`;
    try {
      const mutable = source(url, { size: SIZE });
      expect((await code(drain(mutable.stream(0, 40_000)))).code).toBe("ERR_NETWORK");
      served = 0;
      versions[1] = versions[0]!; // content-addressed: the bytes really cannot change
      const pinned = source(url, { size: SIZE, immutable: true });
      expect(
        Buffer.from(await drain(pinned.stream(0, 40_000))).equals(versions[0]!.subarray(0, 40_000)),
      ).toBe(true);
      expect(served).toBe(2);
    } finally {
      plain.closeAllConnections();
      await new Promise((resolve) => plain.close(resolve));
    }
  });

  it("close() or an abort in the middle of a stream errors it with ERR_CLOSED / signal.reason", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    s.faults.push({ kind: "stall-body" });
    const reader = src.stream(0, 40_000).getReader();
    expect((await reader.read()).done).toBe(false);
    const pending = code(reader.read());
    await src.close();
    expect((await pending).code).toBe("ERR_CLOSED");
    const other = source(s.url, { size: SIZE });
    s.faults.push({ kind: "stall-body" });
    const controller = new AbortController();
    const r2 = other.stream(0, 40_000, { signal: controller.signal }).getReader();
    expect((await r2.read()).done).toBe(false);
    const reading = r2.read();
    const reason = new Error("enough");
    controller.abort(reason);
    await expect(reading).rejects.toBe(reason);
  });

  it("a cancelled stream frees its request slot", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, maxConcurrency: 1 });
    const reader = src.stream(0, SIZE).getReader();
    await reader.read();
    await reader.cancel();
    expectSlice(await src.read(0, 100), 0, 100);
  });

  it("a stream cancelled while its request is still opening frees its slot too", async () => {
    const s = await server({ delayMs: 30 });
    const src = source(s.url, { size: SIZE, maxConcurrency: 1 });
    for (let i = 0; i < 3; i++) await src.stream(0, SIZE).cancel(); // before any response arrived
    const read = src.read(0, 100);
    const settled = await Promise.race([
      read,
      new Promise((resolve) => setTimeout(() => resolve("stuck"), 3000)),
    ]);
    expect(settled).not.toBe("stuck");
    expectSlice(await read, 0, 100);
  });
});

describe("HttpSource: redirects", () => {
  it("bytes from a new redirect target are ERR_SOURCE_CHANGED unless it has the same strong ETag", async () => {
    const origin = await server();
    const cdn1 = await server();
    const mirror = await server(); // same bytes, same ETag: a mirror of the same object
    const other = await server({}, new Uint8Array(BYTES.length).fill(7)); // another object, another ETag
    other.etag = '"other"';
    const src = source(origin.url, { size: SIZE, redirectTtlMs: 0, etag: origin.etag });
    origin.faults.push({ kind: "redirect", to: cdn1.origin });
    expectSlice(await src.read(0, 8), 0, 8);
    origin.faults.push({ kind: "redirect", to: mirror.origin });
    expectSlice(await src.read(8, 8), 8, 8);
    origin.faults.push({ kind: "redirect", to: other.origin });
    await expect(src.read(16, 8)).rejects.toMatchObject({
      code: "ERR_SOURCE_CHANGED",
      reason: "location-changed",
    });
  });

  it("no caller header follows a chain that left the origin, even when it comes back", async () => {
    const origin = await server();
    const cdn = await server();
    const src = source(origin.url, {
      size: SIZE,
      redirectTtlMs: 0,
      headers: { authorization: "Bearer secret", "x-api-key": "k3y", "user-agent": "blobkit-test" },
    });
    origin.faults.push({ kind: "redirect", to: cdn.origin });
    cdn.faults.push({ kind: "redirect", to: origin.origin }); // A → B → A
    expectSlice(await src.read(0, 8), 0, 8);
    expect(cdn.requests[0]!.headers["x-api-key"]).toBeUndefined();
    expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
    expect(cdn.requests[0]!.headers["user-agent"]).toBe("blobkit-test");
    const back = origin.requests[1]!;
    expect(back.headers.authorization).toBeUndefined();
    expect(back.headers["x-api-key"]).toBeUndefined();
    // A request that stays on the origin keeps its credentials.
    expectSlice(await src.read(8, 8), 8, 8);
    expect(origin.requests[2]!.headers.authorization).toBe("Bearer secret");
  });

  it("follows a redirect to another origin without Authorization, keeping Range, and remembers it", async () => {
    const cdn = await server();
    const origin = await server();
    const src = source(origin.url, {
      size: SIZE,
      headers: { Authorization: "Bearer secret", Cookie: "a=b" },
    });
    origin.faults.push({ kind: "redirect", to: cdn.origin, status: 307 });
    expectSlice(await src.read(10, 20), 10, 20);
    expect(origin.requests[0]!.headers.authorization).toBe("Bearer secret");
    expect(cdn.requests).toHaveLength(1);
    expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
    expect(cdn.requests[0]!.headers.cookie).toBeUndefined();
    expect(cdn.requests[0]!.headers.range).toBe("bytes=10-29");
    expect(src.stats.redirects).toBe(1);
    // Remembered: the next read goes straight to the CDN.
    expectSlice(await src.read(30, 5), 30, 5);
    expect(origin.requests).toHaveLength(1);
    expect(cdn.requests).toHaveLength(2);
    // The remembered location answers 403 (signature expired): the origin is asked again.
    cdn.faults.push({ kind: "status", status: 403 });
    origin.faults.push({ kind: "redirect", to: cdn.origin });
    expectSlice(await src.read(40, 5), 40, 5);
    expect(origin.requests).toHaveLength(2);
    expect(cdn.requests).toHaveLength(4);
  });

  it("keeps ETags per answering location: a CDN's ETag is not compared with the origin's", async () => {
    const cdn = await server();
    const origin = await server();
    cdn.etag = '"cdn-1"';
    const src = source(origin.url);
    expect(await src.size()).toBe(SIZE);
    expect(src.etag).toBe('"v1"');
    origin.faults.push({ kind: "redirect", to: cdn.origin });
    expectSlice(await src.read(0, 10), 0, 10);
    expect(origin.requests[1]!.headers["if-match"]).toBe('"v1"');
    expect(cdn.requests[0]!.headers["if-match"]).toBeUndefined();
    expectSlice(await src.read(10, 10), 10, 10);
    expect(cdn.requests[1]!.headers["if-match"]).toBe('"cdn-1"');
    cdn.etag = '"cdn-2"';
    expect((await code(src.read(0, 10))).code).toBe("ERR_SOURCE_CHANGED");
  });

  it("turns URL credentials into Basic auth for the own origin only", async () => {
    const cdn = await server();
    const s = await server({ auth: `Basic ${Buffer.from("u ser:p@ss").toString("base64")}` });
    const url = new URL(s.url);
    url.username = "u%20ser";
    url.password = "p%40ss";
    const src = source(url.href, { size: SIZE });
    expect(src.id).not.toContain("ss");
    expectSlice(await src.read(0, 10), 0, 10);
    s.faults.push({ kind: "redirect", to: cdn.origin });
    expectSlice(await src.read(0, 10), 0, 10);
    expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
  });

  it("keeps Authorization on a same-origin redirect; a redirect loop is ERR_NETWORK", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, headers: { authorization: "Basic x" }, redirectTtlMs: 0 });
    s.faults.push({ kind: "redirect", to: s.origin, status: 301 });
    expectSlice(await src.read(0, 3), 0, 3);
    expect(s.requests[1]!.headers.authorization).toBe("Basic x");
    for (let i = 0; i < 10; i++) s.faults.push({ kind: "redirect", to: s.origin });
    const error = await code(src.read(0, 3));
    expect(error.reason).toBe("too-many-redirects");
  });
});

describe("HttpSource: auth hooks and deadline", () => {
  it("getHeaders is asked per request to the own origin; a 401 calls onUnauthorized, then one retry", async () => {
    const cdn = await server();
    const s = await server({ auth: "Bearer fresh" });
    let token = "stale";
    const seen: string[] = [];
    const challenges: (string | undefined)[] = [];
    const src = source(s.url, {
      size: SIZE,
      getHeaders: ({ url }) => {
        seen.push(url.origin);
        return { Authorization: `Bearer ${token}` };
      },
      onUnauthorized: ({ wwwAuthenticate }) => {
        challenges.push(wwwAuthenticate);
        token = "fresh";
        return true;
      },
    });
    expectSlice(await src.read(0, 10), 0, 10);
    expect(challenges).toEqual(['Bearer realm="test",scope="pull"']);
    expect(s.requests.map((r) => r.headers.authorization)).toEqual(["Bearer stale", "Bearer fresh"]);
    // Redirected to another origin: the hook is not asked for it and nothing leaks.
    s.faults.push({ kind: "redirect", to: cdn.origin });
    expectSlice(await src.read(5, 10), 5, 10);
    expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
    expect(seen.every((origin) => origin === s.origin)).toBe(true);
  });

  it("onUnauthorized returning false, or a failing hook, is ERR_UNAUTHORIZED", async () => {
    const s = await server({ auth: "Bearer right" });
    const refused = source(s.url, { size: SIZE, onUnauthorized: () => false });
    expect((await code(refused.read(0, 1))).code).toBe("ERR_UNAUTHORIZED");
    const failing = source(s.url, {
      size: SIZE,
      getHeaders: () => {
        throw new Error("no credentials");
      },
    });
    expect((await code(failing.read(0, 1))).code).toBe("ERR_UNAUTHORIZED");
    // Still 401 after the refresh: not asked twice.
    let calls = 0;
    const wrong = source(s.url, {
      size: SIZE,
      onUnauthorized: () => {
        calls++;
        return true;
      },
    });
    expect((await code(wrong.read(0, 1))).code).toBe("ERR_UNAUTHORIZED");
    expect(calls).toBe(1);
  });

  it("deadlineMs bounds retries and backoff", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE, retries: 10, retryDelayMs: 100, deadlineMs: 250 });
    for (let i = 0; i < 20; i++) s.faults.push({ kind: "status", status: 500 });
    const error = await code(src.read(0, 1));
    expect(error.code).toBe("ERR_NETWORK");
    expect(s.requests.length).toBeLessThan(11);
  });
});

describe("HttpSource: onRangeIgnored", () => {
  it('"discard" drops the bytes before the range of a 200 answer and keeps the range', async () => {
    const s = await server({ ignoreRange: true });
    const src = source(s.url, { onRangeIgnored: "discard", maxDiscardBytes: 30_000 });
    expectSlice(await src.read(20_000, 5_000), 20_000, 5_000);
    expectSlice(await drain(src.stream(29_999, 20_001)), 29_999, 20_001);
    const error = await code(src.read(30_001, 10));
    expect(error.code).toBe("ERR_RANGE_NOT_SUPPORTED");
    expect(error.reason).toBe("discard-limit");
    expect((await code(src.read(SIZE - 1, 2))).code).toBe("ERR_OUT_OF_RANGE");
  });

  it('"discard" still checks the whole body against the known size', async () => {
    const s = await server({ ignoreRange: true });
    const src = source(s.url, { size: SIZE + 1, onRangeIgnored: "discard" });
    const error = await code(src.read(0, 10));
    expect(error.code).toBe("ERR_INTEGRITY");
    expect(error.reason).toBe("size-mismatch");
    const short = await server();
    const shortSource = source(short.url, { size: SIZE, onRangeIgnored: "discard", retries: 0 });
    short.faults.push({ kind: "ignore-range" });
    expectSlice(await shortSource.read(100, 100), 100, 100);
  });
});

describe("HttpSource: readRanges", () => {
  it("coalesces nearby ranges into one request and returns independent arrays in order", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    const ranges = [
      { offset: 30_000, length: 100 },
      { offset: 10, length: 90 },
      { offset: 50, length: 100 },
      { offset: 200, length: 0 },
      { offset: 1_000, length: 10 },
    ];
    const got = await src.readRanges(ranges, { gapBytes: 4096 });
    for (const [i, { offset, length }] of ranges.entries()) expectSlice(got[i]!, offset, length);
    // [10, 1010) in one request, [30000, 30100) in another; the empty range needs none.
    expect(s.requests.map((r) => r.headers.range).sort()).toEqual(["bytes=10-1009", "bytes=30000-30099"]);
    got[1]!.fill(0);
    expectSlice(got[2]!, 50, 100);
  });

  it("never coalesces beyond maxSpanBytes; errors are typed", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    const ranges = [0, 1000, 2000, 3000].map((offset) => ({ offset, length: 500 }));
    const got = await src.readRanges(ranges, { gapBytes: 1000, maxSpanBytes: 1500 });
    for (const [i, { offset, length }] of ranges.entries()) expectSlice(got[i]!, offset, length);
    expect(s.requests).toHaveLength(2);
    expect((await code(src.readRanges([{ offset: SIZE, length: 1 }]))).code).toBe("ERR_OUT_OF_RANGE");
    expect((await code(src.readRanges([{ offset: -1, length: 1 }]))).code).toBe("ERR_INVALID_ARGUMENT");
    expect(await src.readRanges([])).toEqual([]);
  });

  it("multipart: a server without multi-range support gets single ranges, and is remembered", async () => {
    const s = await server();
    const src = source(s.url, { size: SIZE });
    const ranges = [0, 10_000, 20_000].map((offset) => ({ offset, length: 100 }));
    const got = await src.readRanges(ranges, { multipart: true, gapBytes: 0 });
    for (const [i, { offset, length }] of ranges.entries()) expectSlice(got[i]!, offset, length);
    // One refused multi-range request (416 here), then one request per span.
    expect(s.requests.map((r) => r.headers.range)).toEqual([
      "bytes=0-99,10000-10099,20000-20099",
      "bytes=0-99",
      "bytes=10000-10099",
      "bytes=20000-20099",
    ]);
    s.requests.length = 0;
    await src.readRanges(ranges, { multipart: true, gapBytes: 0 });
    expect(s.requests).toHaveLength(3);
    expect((await code(src.readRanges(ranges, { multipart: true, maxParts: 1 }))).code).toBe(
      "ERR_INVALID_ARGUMENT",
    );
  });
});
