import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { DiskCache } from "@blobkit/cache-disk";
import { RedisCache } from "@blobkit/cache-redis";
import { HttpSource } from "@blobkit/http-source";
import { Client } from "@blobkit/registry";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedis } from "../../../packages/cache-redis/test/redis-server.ts";
import { type RunningRegistry, startRegistry } from "../../../packages/registry/test/registry-server.ts";
import { pseudoRandomBytes, writeTree } from "../../../packages/registry/test/support.ts";
import { envInt, recordResult } from "./support/results.ts";

// Resource hygiene: after close() no socket, file handle, timer or Redis connection of ours remains
// (process.getActiveResourcesInfo(), /proc/self/fd, Redis CLIENT LIST), and a long open → read → close loop
// shows no growth of heap, RSS, handles or fds.

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

type Counts = Record<string, number>;
function resources(): Counts {
  const counts: Counts = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  counts.fds = readdirSync("/proc/self/fd").length;
  return counts;
}
/** Types whose count is above the baseline. */
function excess(now: Counts, base: Counts): Counts {
  const out: Counts = {};
  for (const [type, n] of Object.entries(now)) if (n > (base[type] ?? 0)) out[type] = n - (base[type] ?? 0);
  return out;
}
/** Lets pending closes finish before a baseline is taken. */
async function quiesce(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 200));
  gc();
}
/** Waits (≤ 3 s) for resources to drop back to the baseline; returns what is still above it. */
async function settle(base: Counts): Promise<Counts> {
  let over: Counts = {};
  for (let i = 0; i < 60; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    gc();
    over = excess(resources(), base);
    if (Object.keys(over).length === 0) return over;
  }
  return over;
}

let registry: RunningRegistry;
let redis: RedisServer;
let work: string;
let src: string;
let admin: Redis;
const passed: string[] = [];
const figures: Record<string, unknown> = {};

async function redisClients(): Promise<number> {
  const list = (await admin.client("LIST")) as string;
  return list
    .trim()
    .split("\n")
    .filter((l) => l.length > 0).length;
}

beforeAll(async () => {
  [registry, redis] = await Promise.all([startRegistry(), startRedis()]);
  admin = new Redis(redis.url);
  work = await mkdtemp(join(tmpdir(), "blobkit-stress-hygiene-"));
  src = join(work, "src");
  await writeTree(src, [
    { path: "a.txt", content: "alpha\n".repeat(100) },
    { path: "b/c.bin", content: pseudoRandomBytes(300_000, 5) },
    ...Array.from({ length: 20 }, (_, i) => ({
      path: `many/f${i}.txt`,
      content: `file ${i}\n`.repeat(i + 1),
    })),
  ]);
  const client = new Client();
  await client.push(`${registry.host}/hygiene/app:v1`, src);
  await client.close();
}, 120_000);

afterAll(async () => {
  admin?.disconnect();
  await Promise.all([registry?.stop(), redis?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
  recordResult("hygiene", "summary", { checksPassed: passed.length, checks: passed, ...figures });
  console.log(`[hygiene] ${passed.length} leak checks passed: ${passed.join("; ")}`);
  console.log(`[hygiene] ${JSON.stringify(figures)}`);
});

describe("resource hygiene", () => {
  it("the detector sees an unclosed Client (sanity check of the method)", async () => {
    await quiesce();
    const base = resources();
    const client = new Client();
    const archive = await client.pull(`${registry.host}/hygiene/app:v1`, { skipCache: true });
    await archive.readFile("a.txt");
    await new Promise((resolve) => setTimeout(resolve, 100));
    const over = excess(resources(), base);
    await archive.close();
    await client.close();
    expect(Object.keys(over).length).toBeGreaterThan(0);
    expect(await settle(base)).toEqual({});
  });

  it("Client: push, pull, read, extract, close → no socket, handle or timer left", async () => {
    await quiesce();
    const base = resources();
    const redisBefore = await redisClients();
    const client = new Client();
    await client.push(`${registry.host}/hygiene/other:v1`, src);
    const archive = await client.pull(`${registry.host}/hygiene/app:v1`, { skipCache: true });
    await archive.readFile("b/c.bin");
    await archive.extract(join(work, "out-client"));
    await archive.close();
    await client.close();
    expect(await settle(base)).toEqual({});
    expect(await redisClients()).toBe(redisBefore);
    passed.push("Client push/pull/read/extract/close");
  });

  it("Client with a DiskCache and with a RedisCache → closed caches leave nothing (Redis CLIENT LIST too)", async () => {
    await quiesce();
    const base = resources();
    const redisBefore = await redisClients();
    const disk = new DiskCache({ dir: join(work, "disk-cache") });
    const red = new RedisCache({ url: redis.url });
    for (const cache of [disk, red]) {
      const client = new Client({ cache, blockCache: true });
      for (let i = 0; i < 3; i++) {
        const archive = await client.pull(`${registry.host}/hygiene/app:v1`);
        await archive.readFile("a.txt");
        await archive.readFile("many/f3.txt");
        await archive.close();
      }
      await client.close();
    }
    expect(await redisClients()).toBeGreaterThan(redisBefore);
    await disk.close();
    await red.close();
    expect(await settle(base)).toEqual({});
    for (let i = 0; i < 40 && (await redisClients()) > redisBefore; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(await redisClients()).toBe(redisBefore);
    passed.push("DiskCache open/use/close", "RedisCache open/use/close (CLIENT LIST back to baseline)");
  });

  it("HttpSource: reads then close → no socket left", async () => {
    const content = Buffer.from(pseudoRandomBytes(100_000, 9));
    const server = createServer((req, res) => {
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? "");
      if (m === null) {
        res.writeHead(200, { "content-length": content.length, etag: '"e"' });
        res.end(req.method === "HEAD" ? undefined : content);
        return;
      }
      const [s, e] = [Number(m[1]), Number(m[2])];
      res.writeHead(206, {
        "content-range": `bytes ${s}-${e}/${content.length}`,
        "content-length": e - s + 1,
        etag: '"e"',
      });
      res.end(content.subarray(s, e + 1));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    await quiesce();
    const base = resources();
    const source = new HttpSource(`http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`);
    for (let i = 0; i < 50; i++) await source.read((i * 997) % 90_000, 1000);
    await source.close();
    server.closeIdleConnections();
    const over = await settle(base);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    expect(over).toEqual({});
    passed.push("HttpSource reads/close");
  });

  it("long loop: open → pull → read → close shows no growth of heap, RSS, handles or fds", async () => {
    const iterations = envInt("STRESS_LEAK_ITERATIONS", 200);
    const disk = new DiskCache({ dir: join(work, "loop-cache") });
    const red = new RedisCache({ url: redis.url });
    await quiesce();
    const base = resources();
    const samples: { i: number; heap: number; rss: number; handles: number; fds: number }[] = [];
    for (let i = 0; i < iterations; i++) {
      const client = new Client({ cache: i % 2 === 0 ? disk : red, refTtlMs: 0 });
      const archive = await client.pull(`${registry.host}/hygiene/app:v1`, { skipCache: i % 3 === 0 });
      await archive.readFile(`many/f${i % 20}.txt`);
      await archive.readFile("b/c.bin");
      await archive.close();
      await client.close();
      if (i % 10 === 9) {
        gc();
        const r = resources();
        const mem = process.memoryUsage();
        samples.push({
          i,
          heap: mem.heapUsed,
          rss: mem.rss,
          handles: process.getActiveResourcesInfo().length,
          fds: r.fds ?? 0,
        });
      }
    }
    await disk.close();
    await red.close();
    const over = await settle(base);
    // Compare the second half with the first (after warm-up): growth must stay within tolerance.
    const half = Math.floor(samples.length / 2);
    const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const early = samples.slice(1, half);
    const late = samples.slice(half);
    const heapGrowth = avg(late.map((s) => s.heap)) - avg(early.map((s) => s.heap));
    const rssGrowth = avg(late.map((s) => s.rss)) - avg(early.map((s) => s.rss));
    const maxHandles = Math.max(...samples.map((s) => s.handles));
    const maxFds = Math.max(...samples.map((s) => s.fds));
    figures.loop = {
      iterations,
      heapGrowthMiB: Math.round((heapGrowth / 2 ** 20) * 100) / 100,
      rssGrowthMiB: Math.round((rssGrowth / 2 ** 20) * 100) / 100,
      handlesFirst: samples[0]?.handles,
      handlesMax: maxHandles,
      fdsFirst: samples[0]?.fds,
      fdsMax: maxFds,
      leftAfterClose: over,
    };
    expect(over).toEqual({});
    expect(heapGrowth).toBeLessThan(8 * 2 ** 20);
    expect(rssGrowth).toBeLessThan(48 * 2 ** 20);
    expect(maxHandles - (samples[0]?.handles ?? 0)).toBeLessThanOrEqual(4);
    expect(maxFds - (samples[0]?.fds ?? 0)).toBeLessThanOrEqual(4);
    passed.push(`${iterations}-iteration open/pull/read/close loop (heap, RSS, handles, fds flat)`);
  });
});
