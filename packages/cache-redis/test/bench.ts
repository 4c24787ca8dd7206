// Hit latency of RedisCache vs DiskCache vs a miss served by a local HTTP server, for 4 KiB and 1 MiB values,
// in one run. Starts its own redis-server (127.0.0.1, random port, no persistence).
// Run: `node --conditions=source test/bench.ts` from packages/cache-redis. Prints medians and p99s.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskCache } from "@blobkit/cache-disk";
import { RedisCache } from "../src/index.ts";
import { startRedis } from "./redis-server.ts";

const ROUNDS = 2000;

interface Stats {
  median: number;
  p99: number;
}

async function measure(run: () => Promise<unknown>): Promise<Stats> {
  for (let i = 0; i < 100; i++) await run(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const start = process.hrtime.bigint();
    await run();
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(ROUNDS / 2)] ?? 0, p99: times[Math.floor(ROUNDS * 0.99)] ?? 0 };
}

const show = (s: Stats): string => `${s.median.toFixed(1)} / ${s.p99.toFixed(1)}`;

const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-redis-bench-"));
const values = new Map<string, Uint8Array>();
const server = createServer((request, response) => {
  const value = values.get(request.url ?? "");
  response.writeHead(value === undefined ? 404 : 200, { "content-length": value?.byteLength ?? 0 });
  response.end(value);
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as AddressInfo;
const redisServer = await startRedis();
const disk = await DiskCache.open({ dir });
const redis = await RedisCache.open({ url: redisServer.url });
try {
  console.log(
    "value    redis hit median / p99 (µs)   disk hit median / p99 (µs)   HTTP miss median / p99 (µs)   miss/redis",
  );
  for (const size of [4096, 1024 * 1024]) {
    const value = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
    values.set(`/v${size}`, value);
    await disk.set(`v${size}`, value);
    await redis.set(`v${size}`, value);
    const check = await redis.get(`v${size}`);
    if (check === undefined || !Buffer.from(check).equals(Buffer.from(value))) throw new Error("redis miss");
    const redisHit = await measure(() => redis.get(`v${size}`));
    const diskHit = await measure(() => disk.get(`v${size}`));
    const miss = await measure(async () => {
      const response = await fetch(`http://127.0.0.1:${port}/v${size}`);
      return new Uint8Array(await response.arrayBuffer());
    });
    console.log(
      String(size).padEnd(8),
      show(redisHit).padEnd(29),
      show(diskHit).padEnd(28),
      show(miss).padEnd(29),
      `${(miss.median / redisHit.median).toFixed(1)}×`,
    );
  }
} finally {
  await redis.close();
  await disk.close();
  await redisServer.stop();
  server.close();
  await rm(dir, { recursive: true, force: true });
}
