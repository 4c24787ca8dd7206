import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeByteSource } from "@blobkit/conformance";
import { isBlobError } from "@blobkit/core";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startServer, type TestServer } from "../test/server.ts";
import { HttpSource } from "./index.ts";

// Real servers started by the test itself: Debian nginx (its own Range implementation) and docker-registry
// (CNCF distribution 2.8). A missing binary fails loudly with the install command; it never skips.
const NGINX = "/usr/sbin/nginx";
const REGISTRY = "/usr/bin/docker-registry";
for (const binary of [NGINX, REGISTRY]) {
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: apt-get install -y --no-install-recommends nginx docker-registry`);
  }
}

async function waitFor(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${log()}`);
    try {
      const response = await request(url);
      await response.body.dump();
      return;
    } catch (error) {
      if (Date.now() > until) throw new Error(`server did not start: ${String(error)} ${log()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(child.pid, "SIGTERM");
  await exited;
}

function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

let dir: string;
let nginx: ChildProcess | undefined;
let nginxOrigin: string;
let registry: ChildProcess | undefined;
let registryOrigin: string;
let recorder: TestServer;
let fileCounter = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "blobkit-http-"));
  // nginx workers run as an unprivileged user when started as root: the tree must be readable.
  await chmod(dir, 0o755);
  await mkdir(join(dir, "www"), { mode: 0o755 });
  await mkdir(join(dir, "tmp"), { mode: 0o755 });
  recorder = await startServer(pattern(5000, 9));
  const nginxPort = await freePort();
  nginxOrigin = `http://127.0.0.1:${nginxPort}`;
  const conf = `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${nginxPort};
    root ${dir}/www;
    location /elsewhere/ { return 302 ${recorder.origin}/blob; }
  }
}
`;
  await writeFile(join(dir, "nginx.conf"), conf);
  let nginxLog = "";
  nginx = spawn(NGINX, ["-c", join(dir, "nginx.conf"), "-p", dir, "-e", join(dir, "nginx-error.log")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  nginx.stderr?.on("data", (chunk: Buffer) => {
    nginxLog += chunk.toString();
  });
  await writeFile(join(dir, "www", "ready"), "ok");
  await waitFor(`${nginxOrigin}/ready`, nginx, () => nginxLog);

  const registryPort = await freePort();
  registryOrigin = `http://127.0.0.1:${registryPort}`;
  await writeFile(
    join(dir, "registry.yml"),
    `version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: ${dir}/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${registryPort}
`,
  );
  let registryLog = "";
  registry = spawn(REGISTRY, ["serve", join(dir, "registry.yml")], { stdio: ["ignore", "pipe", "pipe"] });
  registry.stdout?.on("data", (chunk: Buffer) => {
    registryLog += chunk.toString();
  });
  registry.stderr?.on("data", (chunk: Buffer) => {
    registryLog += chunk.toString();
  });
  await waitFor(`${registryOrigin}/v2/`, registry, () => registryLog);
}, 60_000);

afterAll(async () => {
  await stop(nginx);
  await stop(registry);
  await recorder?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Writes `bytes` as a fresh static file and returns its URL. */
async function serveFile(bytes: Uint8Array): Promise<{ url: string; path: string }> {
  fileCounter++;
  const path = join(dir, "www", `f${fileCounter}.bin`);
  await writeFile(path, bytes, { mode: 0o644 });
  return { url: `${nginxOrigin}/f${fileCounter}.bin`, path };
}

describe("nginx", () => {
  describeByteSource("HttpSource on nginx", async (bytes) => {
    const { url } = await serveFile(bytes);
    return { source: new HttpSource(url), expected: bytes };
  });

  describeByteSource(
    "HttpSource on nginx (size given)",
    async (bytes) => {
      const { url } = await serveFile(bytes);
      return { source: new HttpSource(url, { size: bytes.length }), expected: bytes };
    },
    { largeSize: 0 },
  );

  it("reads several ranges with one multipart/byteranges request", async () => {
    const bytes = pattern(200_000, 21);
    const { url } = await serveFile(bytes);
    const source = new HttpSource(url, { size: bytes.length });
    try {
      const ranges = [0, 50_000, 120_000, 199_990].map((offset) => ({ offset, length: 10 }));
      const got = await source.readRanges(ranges, { multipart: true, gapBytes: 0 });
      for (const [i, { offset, length }] of ranges.entries()) {
        expect(Buffer.from(got[i]!).equals(Buffer.from(bytes.subarray(offset, offset + length)))).toBe(true);
      }
      expect(source.stats.requests).toBe(1);
    } finally {
      await source.close();
    }
  });

  it("a 404 is ERR_NOT_FOUND; a read past the end is ERR_OUT_OF_RANGE", async () => {
    const source = new HttpSource(`${nginxOrigin}/missing.bin`);
    try {
      const error = await source.read(0, 1).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_NOT_FOUND")).toBe(true);
    } finally {
      await source.close();
    }
    const { url } = await serveFile(pattern(1000, 1));
    const past = new HttpSource(url);
    try {
      const error = await past.read(1000, 1).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_OUT_OF_RANGE")).toBe(true);
    } finally {
      await past.close();
    }
  });

  it("a file replaced between reads is ERR_SOURCE_CHANGED", async () => {
    const bytes = pattern(10_000, 2);
    const { url, path } = await serveFile(bytes);
    const source = new HttpSource(url);
    try {
      expect(Buffer.from(await source.read(0, 100)).equals(Buffer.from(bytes.subarray(0, 100)))).toBe(true);
      expect(source.etag).toBeDefined();
      // A different size changes nginx's ETag ("<mtime>-<size>") whatever the clock resolution.
      await writeFile(path, pattern(10_001, 3));
      const error = await source.read(0, 100).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_SOURCE_CHANGED")).toBe(true);
    } finally {
      await source.close();
    }
  });

  it("a redirect to another origin keeps Range and does not forward Authorization", async () => {
    const source = new HttpSource(`${nginxOrigin}/elsewhere/x`, {
      headers: { authorization: "Bearer secret" },
    });
    try {
      const got = await source.read(100, 200);
      expect(Buffer.from(got).equals(recorder.content.subarray(100, 300))).toBe(true);
      expect(source.stats.redirects).toBeGreaterThan(0);
      expect(recorder.requests.length).toBeGreaterThan(0);
      for (const seen of recorder.requests) expect(seen.headers.authorization).toBeUndefined();
      expect(recorder.requests.some((seen) => seen.headers.range === "bytes=100-299")).toBe(true);
    } finally {
      await source.close();
    }
  });
});

describe("docker-registry 2.8", () => {
  it("reads a registry blob by range, with the digest as id, and detects nothing changed", async () => {
    const bytes = pattern(3 * 1024 * 1024 + 7, 4);
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    const start = await request(`${registryOrigin}/v2/test/blob/blobs/uploads/`, { method: "POST" });
    await start.body.dump();
    expect(start.statusCode).toBe(202);
    const location = new URL(String(start.headers.location), registryOrigin);
    location.searchParams.set("digest", digest);
    const put = await request(location, {
      method: "PUT",
      body: bytes,
      headers: { "content-type": "application/octet-stream" },
    });
    await put.body.dump();
    expect(put.statusCode).toBe(201);

    const url = `${registryOrigin}/v2/test/blob/blobs/${digest}`;
    const source = new HttpSource(url, { id: digest });
    try {
      expect(await source.size()).toBe(bytes.length);
      for (const [offset, length] of [
        [0, 1],
        [1_000_000, 65_536],
        [bytes.length - 10, 10],
        [0, bytes.length],
      ] as const) {
        const got = await source.read(offset, length);
        expect(Buffer.from(got).equals(Buffer.from(bytes.subarray(offset, offset + length)))).toBe(true);
      }
      const chunks: Uint8Array[] = [];
      for await (const chunk of source.stream(123, 2_000_000)) chunks.push(chunk);
      expect(Buffer.concat(chunks).equals(Buffer.from(bytes.subarray(123, 2_000_123)))).toBe(true);
      const error = await source.read(bytes.length, 1).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_OUT_OF_RANGE")).toBe(true);
      expect(source.stats.retries).toBe(0);
      // Go's http.ServeContent answers multi-range requests with multipart/byteranges too.
      const before = source.stats.requests;
      const ranges = [7, 1_000_000, 3_000_000].map((offset) => ({ offset, length: 4096 }));
      const parts = await source.readRanges(ranges, { multipart: true, gapBytes: 0 });
      for (const [i, { offset, length }] of ranges.entries()) {
        expect(Buffer.from(parts[i]!).equals(Buffer.from(bytes.subarray(offset, offset + length)))).toBe(
          true,
        );
      }
      expect(source.stats.requests - before).toBe(1);
    } finally {
      await source.close();
    }
    const missing = new HttpSource(`${registryOrigin}/v2/test/blob/blobs/sha256:${"0".repeat(64)}`);
    try {
      const error = await missing.read(0, 1).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_NOT_FOUND")).toBe(true);
    } finally {
      await missing.close();
    }
  });
});
