// Cache hit latency vs a miss, 4 KiB and 1 MiB values: `DiskCache.get` and `RedisCache.get` (real
// redis-server from the test harness) vs fetching the same bytes from loopback nginx (a 4 KiB range GET of
// the data blob via undici). Then at the archive level: `archive.readFile` of a ~4 KiB file with a warm
// DiskCache (verified hit) vs without a cache (one range request through the registry).
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { DiskCache } from "@blobkit/cache-disk";
import { RedisCache } from "@blobkit/cache-redis";
import { Agent, request } from "undici";
import type { Context } from "../lib/context.ts";
import { openRegistry } from "../lib/readers.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { median, row } from "../lib/util.ts";

async function latencyUs(rounds: number, fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(100, rounds); i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return median(times);
}

export const cache: Comparison = {
  id: "cache",
  title: "cache: disk and Redis hit latency vs a miss",
  async run(ctx: Context): Promise<Result[]> {
    const rounds = ctx.quick ? 500 : 2000;
    const dir = await mkdtemp(join(ctx.work, "cache-"));
    const redisServer = await ctx.redis();
    const disk = await DiskCache.open({ dir });
    const redis = await RedisCache.open({ url: redisServer.url });
    const agent = new Agent({ connections: 4 });
    const { dataPath } = await ctx.blobkit("source");
    const dataUrl = ctx.url(dataPath);
    const results: Result[] = [];
    try {
      for (const size of [4096, 1024 * 1024]) {
        const value = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
        const key = `bench-${size}`;
        await disk.set(key, value);
        await redis.set(key, value);
        const check = await disk.get(key);
        if (check === undefined || check.byteLength !== size) throw new Error("disk cache miss");
        const diskHit = await latencyUs(rounds, () => disk.get(key));
        const redisHit = await latencyUs(rounds, () => redis.get(key));
        const miss = await latencyUs(rounds, async () => {
          const r = await request(dataUrl, { dispatcher: agent, headers: { range: `bytes=0-${size - 1}` } });
          const body = new Uint8Array(await r.body.arrayBuffer());
          if (body.byteLength !== size) throw new Error("short miss");
        });
        const label = `cache get of a ${size === 4096 ? "4 KiB" : "1 MiB"} value (median of ${rounds})`;
        results.push(
          row({
            id: `cache.disk.${size === 4096 ? "4k" : "1m"}`,
            metric: "hit latency",
            unit: "µs",
            label: `DiskCache ${label}`,
            blobkit: diskHit,
            peers: { "loopback HTTP miss (nginx range GET)": miss },
            runs: rounds,
            ...(size === 4096 ? { target: "≤ 100 µs", check: (b: number) => b <= 100 } : {}),
          }),
          row({
            id: `cache.redis.${size === 4096 ? "4k" : "1m"}`,
            metric: "hit latency",
            unit: "µs",
            label: `RedisCache ${label}`,
            blobkit: redisHit,
            peers: { "loopback HTTP miss (nginx range GET)": miss },
            runs: rounds,
          }),
        );
      }

      // Archive level: readFile of the source file closest to 4 KiB.
      const ds = await ctx.dataset("source");
      const file = ds.files.reduce((best, f) =>
        Math.abs(f.size - 4096) < Math.abs(best.size - 4096) ? f : best,
      ).path;
      const cached = await openRegistry(ctx, "source");
      const { Archive } = await import("@blobkit/core");
      const withCache = await Archive.open({
        index: cached.archive.index,
        source: cached.archive.source,
        cache: disk,
      });
      await withCache.readFile(file);
      const archiveHit = await latencyUs(rounds, () => withCache.readFile(file));
      const archiveMiss = await latencyUs(Math.min(rounds, 300), () => cached.archive.readFile(file));
      await withCache.close();
      await cached.close();
      results.push(
        row({
          id: "cache.archive-read.4k",
          metric: "readFile latency",
          unit: "µs",
          label: `archive.readFile of a ~4 KiB file: DiskCache hit (verified) vs no cache (1 range request via the registry)`,
          blobkit: archiveHit,
          peers: { "miss via registry": archiveMiss },
          runs: rounds,
        }),
      );
    } finally {
      await agent.close();
      await redis.close();
      await disk.close();
      await rm(dir, { recursive: true, force: true });
    }
    return results;
  },
};
