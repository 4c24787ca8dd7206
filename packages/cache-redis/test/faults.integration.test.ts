// Redis killed, restarted, frozen (SIGSTOP) and absent, under reads through a core Archive with a source
// fallback: every read returns the right bytes, cache operations fail within the bound, hits resume.
import {
  Archive,
  type BlobError,
  type Cache,
  type CacheOptions,
  type CacheSetOptions,
  createArchive,
  MemorySource,
} from "@blobkit/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisCache } from "../src/index.ts";
import { freePort, type RedisServer, startRedis } from "./redis-server.ts";

const TIMEOUT_MS = 250;
/** Slack for timers and a loaded 2-core CI machine. */
const SLACK_MS = 400;

/** Counts hits (a `get` that returned a value) of the wrapped cache. */
class CountingCache implements Cache {
  readonly supportsTtl = true;
  hits = 0;
  misses = 0;
  failures = 0;
  readonly inner: RedisCache;
  constructor(inner: RedisCache) {
    this.inner = inner;
  }
  async get(key: string, options?: CacheOptions): Promise<Uint8Array | undefined> {
    try {
      const value = await this.inner.get(key, options);
      if (value === undefined) this.misses++;
      else this.hits++;
      return value;
    } catch (error) {
      this.failures++;
      throw error;
    }
  }
  set(key: string, value: Uint8Array, options?: CacheSetOptions): Promise<void> {
    return this.inner.set(key, value, options);
  }
  delete(key: string, options?: CacheOptions): Promise<void> {
    return this.inner.delete(key, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function pattern(size: number, seed: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: size }, (_, i) => (i * 7 + seed * 131 + (i >> 9)) & 0xff);
}

const files = Array.from({ length: 24 }, (_, i) => ({
  path: `dir${i % 3}/file${i}.bin`,
  content: pattern(1000 + ((i * 7919) % 30_000), i),
}));

let archiveIndex: Uint8Array;
let archiveData: Uint8Array;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);

beforeAll(async () => {
  const chunks: Uint8Array[] = [];
  const result = await createArchive(
    files,
    new WritableStream<Uint8Array>({ write: (chunk) => void chunks.push(chunk.slice()) }),
  );
  archiveIndex = result.index;
  archiveData = Buffer.concat(chunks);
  process.on("unhandledRejection", onUnhandled);
});

afterAll(() => {
  process.off("unhandledRejection", onUnhandled);
});

afterEach(() => {
  expect(unhandled, "unhandled rejections").toEqual([]);
});

async function openArchive(cache: Cache): Promise<Archive> {
  return Archive.open({ index: archiveIndex, source: new MemorySource(archiveData), cache });
}

/** Reads `count` random files with `workers` concurrent readers; checks every byte; returns the slowest read (ms). */
async function readMany(archive: Archive, count: number, workers = 4): Promise<number> {
  let left = count;
  let slowest = 0;
  let seed = count;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (left-- > 0) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const file = files[seed % files.length]!;
        const start = performance.now();
        const got = await archive.readFile(file.path);
        slowest = Math.max(slowest, performance.now() - start);
        expect(Buffer.from(got).equals(Buffer.from(file.content)), file.path).toBe(true);
      }
    }),
  );
  return slowest;
}

async function until(condition: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Time (ms) `promise` takes to settle, and how it settled. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const start = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

describe("Redis failures", () => {
  let server: RedisServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it("SIGKILL during a read-heavy Archive run: every read is right; after a restart on the same port hits resume", async () => {
    server = await startRedis();
    const errors: BlobError[] = [];
    const redis = await RedisCache.open({
      url: server.url,
      timeoutMs: TIMEOUT_MS,
      onError: (error) => errors.push(error),
    });
    const cache = new CountingCache(redis);
    const archive = await openArchive(cache);
    try {
      // Warm: first reads miss and fill the cache (the Archive's sets are not awaited), then reads hit.
      await readMany(archive, files.length, 1);
      await until(async () => (await redis.sizeBytes()) > 0 && cache.hits + cache.misses > 0, 5000, "sets");
      await readMany(archive, 200);
      const hitsBeforeKill = cache.hits;
      expect(hitsBeforeKill).toBeGreaterThan(100);

      // Kill Redis while readers are running.
      const running = readMany(archive, 600);
      await until(() => cache.hits > hitsBeforeKill + 50, 5000, "hits during the run");
      server.signal("SIGKILL");
      await running; // every read still returned the right bytes
      await server.exited();
      const hitsAtDeath = cache.hits;
      const failuresAtDeath = cache.failures;
      const slowestWhileDown = await readMany(archive, 200);
      expect(cache.hits, "no hits while Redis is down").toBe(hitsAtDeath);
      expect(cache.failures).toBeGreaterThan(failuresAtDeath);
      expect(slowestWhileDown, "reads while down wait at most one cache timeout").toBeLessThan(
        TIMEOUT_MS + SLACK_MS,
      );
      expect(errors.some((e) => e.code === "ERR_CACHE")).toBe(true);
      expect(redis.degraded).toBe(true);

      // Restart on the same port (empty: no persistence). The client reconnects; the cache refills; hits rise.
      await server.restart();
      await until(() => redis.client.status === "ready", 5000, "the client to reconnect");
      const hitsAfterRestart = cache.hits;
      await until(
        async () => {
          await readMany(archive, 50);
          return cache.hits > hitsAfterRestart + 100;
        },
        10_000,
        "hits to resume",
      );
      expect(redis.degraded).toBe(false);
      // One error listener (the cache's) however many failures there were: no listener leak.
      expect(redis.client.listenerCount("error")).toBe(1);
    } finally {
      await archive.close();
      await redis.close();
    }
  });

  it("SIGSTOP (Redis frozen): operations reject with ERR_CACHE within the bound, reads fall back; SIGCONT recovers", async () => {
    server = await startRedis();
    const redis = await RedisCache.open({ url: server.url, timeoutMs: TIMEOUT_MS, chunkSize: 4096 });
    const cache = new CountingCache(redis);
    const archive = await openArchive(cache);
    try {
      const big = pattern(50_000, 1);
      await redis.set("small", pattern(100, 1));
      await redis.set("big", big);
      await readMany(archive, files.length, 1);
      await until(async () => (await redis.sizeBytes()) > 50_000, 5000, "sets");

      server.signal("SIGSTOP");
      const ops: [string, () => Promise<unknown>][] = [
        ["get", () => redis.get("small")],
        ["get (chunked)", () => redis.get("big")],
        ["set", () => redis.set("x", pattern(10, 1))],
        ["set (chunked)", () => redis.set("y", big)],
        ["setStream", () => redis.setStream("z", new Blob([big]).stream())],
        ["getStream", () => redis.getStream("big")],
        ["has", () => redis.has("small")],
        ["delete", () => redis.delete("small")],
        ["sizeBytes", () => redis.sizeBytes()],
        ["prune", () => redis.prune(0)],
      ];
      const results = await Promise.all(ops.map(([, op]) => timed(op())));
      for (const [i, result] of results.entries()) {
        const name = ops[i]![0];
        expect((result.error as BlobError | undefined)?.code, name).toBe("ERR_CACHE");
        expect(result.ms, name).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
        expect(result.ms, name).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      }
      // An abort does not wait for the timeout.
      const controller = new AbortController();
      const reason = new Error("caller gave up");
      setTimeout(() => controller.abort(reason), 30);
      const aborted = await timed(redis.get("small", { signal: controller.signal }));
      expect(aborted.error).toBe(reason);
      expect(aborted.ms).toBeLessThan(TIMEOUT_MS);
      // Reads through the Archive still return the right bytes, each within about one timeout.
      expect(await readMany(archive, 40)).toBeLessThan(TIMEOUT_MS + SLACK_MS);

      server.signal("SIGCONT");
      await until(
        async () => (await redis.get("big").catch(() => undefined)) !== undefined,
        5000,
        "recovery",
      );
      expect(Buffer.from((await redis.get("big"))!).equals(Buffer.from(big))).toBe(true);
      // Hits resume (the first reads after the freeze may still meet commands that timed out meanwhile).
      const hits = cache.hits;
      await until(
        async () => {
          await readMany(archive, 20);
          return cache.hits > hits + 50;
        },
        10_000,
        "hits after SIGCONT",
      );
    } finally {
      server.signal("SIGCONT");
      await archive.close();
      await redis.close();
    }
  });

  it("Redis absent at start: operations fail fast with ERR_CACHE; once Redis starts, the cache works", async () => {
    const port = await freePort();
    const errors: BlobError[] = [];
    const redis = new RedisCache({
      url: `redis://127.0.0.1:${port}`,
      timeoutMs: TIMEOUT_MS,
      onError: (error) => errors.push(error),
    });
    try {
      for (let i = 0; i < 3; i++) {
        const result = await timed(redis.get("k"));
        expect((result.error as BlobError | undefined)?.code).toBe("ERR_CACHE");
        expect(result.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      }
      // The first operation waits up to one timeout for the first connection; later ones fail at once.
      const fast = await timed(redis.set("k", pattern(10, 1)));
      expect((fast.error as BlobError | undefined)?.code).toBe("ERR_CACHE");
      expect(fast.ms).toBeLessThan(50);
      expect(errors.length).toBeGreaterThan(0);

      server = await startRedis({ port });
      await until(
        async () =>
          await redis.set("k", pattern(10, 2)).then(
            () => true,
            () => false,
          ),
        5000,
        "Redis",
      );
      expect(Buffer.from((await redis.get("k"))!).equals(Buffer.from(pattern(10, 2)))).toBe(true);
    } finally {
      await redis.close();
    }
  });
});
