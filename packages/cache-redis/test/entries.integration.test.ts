// Damaged entries, caller-provided clients, key prefixes, the byte budget and Redis Cluster, against a real
// redis-server.
import type { BlobError } from "@blobkit/core";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisCache } from "../src/index.ts";
import {
  chunkKeys,
  decodeFixedHeader,
  encodeChunk,
  encodeChunkedHeader,
  newGeneration,
  REDIS_CACHE_CHUNK_PREFIX_BYTES,
} from "../src/layout.ts";
import { type RedisServer, startRedis } from "./redis-server.ts";

let server: RedisServer;
let raw: Redis;
let n = 0;

beforeAll(async () => {
  server = await startRedis();
  raw = new Redis(server.url);
});

afterAll(async () => {
  raw?.disconnect();
  await server?.stop();
});

function pattern(size: number, seed: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: size }, (_, i) => (i * 7 + seed * 13 + (i >> 8)) & 0xff);
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** A cache with 1000-byte chunks and a fresh prefix, collecting what it reports. */
function chunkedCache(): { cache: RedisCache; errors: BlobError[] } {
  const errors: BlobError[] = [];
  const cache = new RedisCache({
    url: server.url,
    keyPrefix: `ent${n++}:`,
    chunkSize: 1000,
    timeoutMs: 2000,
    onError: (error) => errors.push(error),
  });
  return { cache, errors };
}

async function keysOf(cache: RedisCache, key: string): Promise<string[]> {
  const { header } = cache.entryKeys(key);
  return [...(await raw.keys(`${header}*`))].sort();
}

describe("damaged entries read as a miss and are removed", () => {
  type Damage = (cache: RedisCache, key: string) => Promise<void>;
  const chunksOf = async (cache: RedisCache, key: string) => {
    const { header } = cache.entryKeys(key);
    const fixed = decodeFixedHeader((await raw.getBuffer(header))!)!;
    return { header, fixed, keys: chunkKeys(header, fixed.generation, fixed.chunks) };
  };
  // [name, damage, whether the damage is in a chunk's bytes (only found when the bytes are read)]
  const damages: [string, Damage, boolean][] = [
    [
      "header pointing at a missing chunk",
      async (cache, key) => {
        const { keys } = await chunksOf(cache, key);
        await raw.del(keys[2]!);
      },
      false,
    ],
    [
      "a chunk with the wrong length",
      async (cache, key) => {
        const { keys } = await chunksOf(cache, key);
        await raw.append(keys[1]!, "x");
      },
      false,
    ],
    [
      "a chunk with a wrong checksum",
      async (cache, key) => {
        const { keys } = await chunksOf(cache, key);
        await raw.setrange(keys[3]!, REDIS_CACHE_CHUNK_PREFIX_BYTES + 10, "\u0000\u0001");
      },
      true,
    ],
    [
      "a chunk of another generation (under the right key)",
      async (cache, key) => {
        const { keys } = await chunksOf(cache, key);
        await raw.set(keys[0]!, encodeChunk(newGeneration(), 0, pattern(1000, 1)));
      },
      true,
    ],
    [
      "a header switched to a generation whose chunks were never written",
      async (cache, key) => {
        const { header } = await chunksOf(cache, key);
        await raw.set(header, encodeChunkedHeader(newGeneration(), 4500, 1000));
      },
      false,
    ],
    [
      "a garbled header",
      async (cache, key) => {
        const { header } = cache.entryKeys(key);
        await raw.setrange(header, 0, "XXXX");
      },
      false,
    ],
  ];

  for (const [name, damage, inBytes] of damages) {
    it(`${name}: reads miss, the entry is deleted, prune() removes any chunk left`, async () => {
      const { cache, errors } = chunkedCache();
      try {
        for (const read of ["get", "getStream", "has"] as const) {
          const value = pattern(4500, 3);
          await cache.set("victim", value);
          const before = await keysOf(cache, "victim");
          expect(before).toHaveLength(6); // header + 5 chunks
          await damage(cache, "victim");
          errors.length = 0;
          if (read === "get") {
            expect(await cache.get("victim")).toBeUndefined();
          } else if (read === "has") {
            // has() checks the header and the chunks' sizes, not their bytes.
            expect(await cache.has("victim")).toBe(inBytes);
            if (inBytes) expect(await cache.get("victim")).toBeUndefined();
          } else if (!inBytes) {
            expect(await cache.getStream("victim")).toBeUndefined();
          } else {
            // Damaged bytes are found while streaming: the stream errors before delivering them.
            const stream = await cache.getStream("victim");
            await expect(drain(stream!)).rejects.toMatchObject({ code: "ERR_INTEGRITY" });
          }
          expect(errors.map((e) => e.code)).toContain("ERR_INTEGRITY");
          const header = cache.entryKeys("victim").header;
          expect(await raw.exists(header)).toBe(0);
          expect(await cache.get("victim")).toBeUndefined();
          // Chunks the damaged header no longer pointed at are orphans: prune() removes them at any target.
          await cache.prune(Number.MAX_SAFE_INTEGER);
          expect(await keysOf(cache, "victim")).toEqual([]);
          await cache.set("victim", value);
          expect(Buffer.from((await cache.get("victim"))!).equals(Buffer.from(value))).toBe(true);
          await cache.delete("victim");
          expect(await keysOf(cache, "victim")).toEqual([]);
        }
      } finally {
        await cache.close();
      }
    });
  }

  it("a chunk damaged after getStream started errors the stream with ERR_INTEGRITY before its bytes are delivered", async () => {
    const { cache } = chunkedCache();
    try {
      const value = pattern(4500, 4);
      await cache.set("s", value);
      const stream = (await cache.getStream("s"))!;
      const { keys } = await (async () => {
        const { header } = cache.entryKeys("s");
        const fixed = decodeFixedHeader((await raw.getBuffer(header))!)!;
        return { keys: chunkKeys(header, fixed.generation, fixed.chunks) };
      })();
      await raw.setrange(keys[4]!, REDIS_CACHE_CHUNK_PREFIX_BYTES, "!");
      const reader = stream.getReader();
      const delivered: Uint8Array[] = [];
      let failure: unknown;
      try {
        for (;;) {
          const { done, value: part } = await reader.read();
          if (done) break;
          delivered.push(part);
        }
      } catch (error) {
        failure = error;
      }
      expect((failure as BlobError | undefined)?.code).toBe("ERR_INTEGRITY");
      expect(Buffer.concat(delivered).equals(Buffer.from(value.subarray(0, 4000)))).toBe(true);
      expect(await keysOf(cache, "s")).toEqual([]);
    } finally {
      await cache.close();
    }
  });

  it("a write replaced while a reader holds the old header never yields a mix: old chunks are gone, read is a miss or a whole value", async () => {
    const { cache } = chunkedCache();
    try {
      const a = pattern(4500, 5);
      const b = pattern(4500, 6);
      await cache.set("k", a);
      const { keys: oldKeys } = await (async () => {
        const { header } = cache.entryKeys("k");
        const fixed = decodeFixedHeader((await raw.getBuffer(header))!)!;
        return { keys: chunkKeys(header, fixed.generation, fixed.chunks) };
      })();
      await cache.set("k", b);
      expect(await raw.exists(oldKeys)).toBe(0); // the previous generation was deleted by the switch
      const streams = await Promise.all(Array.from({ length: 20 }, () => cache.getStream("k")));
      const writes = Array.from({ length: 10 }, (_, i) => cache.set("k", i % 2 ? a : b));
      for (const stream of streams) {
        try {
          const got = await drain(stream!);
          expect(got.equals(Buffer.from(a)) || got.equals(Buffer.from(b))).toBe(true);
        } catch (error) {
          expect((error as BlobError).code).toBe("ERR_INTEGRITY");
        }
      }
      await Promise.all(writes);
      const final = Buffer.from((await cache.get("k"))!);
      expect(final.equals(Buffer.from(a)) || final.equals(Buffer.from(b))).toBe(true);
      // Exactly one generation is left: header + 5 chunks.
      expect(await keysOf(cache, "k")).toHaveLength(6);
    } finally {
      await cache.close();
    }
  });
});

describe("large values", () => {
  it("a 3.5 MiB value is stored in chunks of at most 1 MiB (set and setStream), read whole and streamed", async () => {
    const cache = new RedisCache({ url: server.url, keyPrefix: `large${n++}:`, timeoutMs: 2000 });
    try {
      const value = pattern(3.5 * 1024 * 1024, 42);
      for (const how of ["set", "setStream"] as const) {
        if (how === "set") await cache.set("big", value);
        else await cache.setStream("big", new Blob([value]).stream());
        const keys = await keysOf(cache, "big");
        expect(keys).toHaveLength(5); // header + 4 chunks
        for (const key of keys) {
          expect(await raw.strlen(key)).toBeLessThanOrEqual(1024 * 1024 + REDIS_CACHE_CHUNK_PREFIX_BYTES);
        }
        expect(Buffer.from((await cache.get("big"))!).equals(Buffer.from(value))).toBe(true);
        expect((await drain((await cache.getStream("big"))!)).equals(Buffer.from(value))).toBe(true);
      }
      // A value over maxEntryBytes is not stored and removes the previous one.
      const small = new RedisCache({ client: cache.client, keyPrefix: cache.keyPrefix, maxEntryBytes: 1000 });
      await small.set("big", pattern(1001, 1));
      expect(await cache.get("big")).toBeUndefined();
      expect(await keysOf(cache, "big")).toEqual([]);
      await small.close();
    } finally {
      await cache.close();
    }
  });
});

describe("clients and prefixes", () => {
  it("a caller-provided client is used, not closed by close(), and keeps no listener of the cache", async () => {
    const client = new Redis(server.url);
    const listeners = { error: client.listenerCount("error"), ready: client.listenerCount("ready") };
    const cache = new RedisCache({ client, keyPrefix: "shared:" });
    expect(cache.client).toBe(client);
    await cache.set("k", pattern(100, 1));
    expect(Buffer.from((await cache.get("k"))!).equals(Buffer.from(pattern(100, 1)))).toBe(true);
    await cache.close();
    await cache.close();
    expect(client.status).toBe("ready");
    expect(await client.ping()).toBe("PONG");
    expect(client.listenerCount("error")).toBe(listeners.error);
    expect(client.listenerCount("ready")).toBe(listeners.ready);
    await expect(cache.get("k")).rejects.toMatchObject({ code: "ERR_CLOSED" });
    client.disconnect();
  });

  it("a cache created from a URL closes its own client", async () => {
    const cache = await RedisCache.open({ url: server.url, keyPrefix: "own:" });
    expect(cache.client.status).toBe("ready");
    await cache.close();
    expect(["end", "close"]).toContain(cache.client.status);
  });

  it("two prefixes in one Redis are isolated (values, delete, sizeBytes, prune)", async () => {
    const client = new Redis(server.url);
    const a = new RedisCache({ client, keyPrefix: "iso-a:", chunkSize: 1000 });
    const b = new RedisCache({ client, keyPrefix: "iso-b:", chunkSize: 1000 });
    try {
      await a.set("same", pattern(3000, 1));
      await b.set("same", pattern(50, 2));
      expect(Buffer.from((await a.get("same"))!).equals(Buffer.from(pattern(3000, 1)))).toBe(true);
      expect(Buffer.from((await b.get("same"))!).equals(Buffer.from(pattern(50, 2)))).toBe(true);
      const sizeA = await a.sizeBytes();
      const sizeB = await b.sizeBytes();
      expect(sizeA).toBeGreaterThanOrEqual(3000);
      expect(sizeB).toBeGreaterThanOrEqual(50);
      expect(sizeB).toBeLessThan(1000);
      expect(await a.prune(0)).toBe(sizeA);
      expect(await a.get("same")).toBeUndefined();
      expect(await b.sizeBytes()).toBe(sizeB);
      await b.delete("same");
      expect(await b.sizeBytes()).toBe(0);
    } finally {
      await a.close();
      await b.close();
      client.disconnect();
    }
  });

  it("prune() evicts the least recently used entries first and removes orphaned chunks", async () => {
    const { cache } = chunkedCache();
    try {
      for (const key of ["old", "mid", "new"]) await cache.set(key, pattern(2500, 1));
      // Orphans: chunks of an entry whose header vanished (as if Redis evicted the header alone).
      await cache.set("orphaned", pattern(2500, 2));
      await raw.del(cache.entryKeys("orphaned").header);
      // Redis' LRU clock has a 1-second resolution: make the idle times differ.
      await new Promise((resolve) => setTimeout(resolve, 2100));
      await cache.get("mid");
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await cache.get("new");
      const total = await cache.sizeBytes();
      // The three live entries are alike: each holds as many bytes as the keys of "mid".
      let entryBytes = 0;
      for (const key of await raw.keys(`${cache.entryKeys("mid").header}*`)) {
        entryBytes += Number(await raw.memory("USAGE", key, "SAMPLES", "0"));
      }
      const freed = await cache.prune(2 * entryBytes);
      expect(freed).toBe(total - 2 * entryBytes); // the orphaned chunks and "old", nothing else
      expect(await cache.sizeBytes()).toBe(2 * entryBytes);
      expect(await cache.get("old")).toBeUndefined();
      expect(await cache.has("mid")).toBe(true);
      expect(await cache.has("new")).toBe(true);
      expect(await raw.keys(`${cache.entryKeys("orphaned").header}*`)).toEqual([]);
    } finally {
      await cache.close();
    }
  });

  it("maxBytes: writes trigger a background prune that keeps the prefix within the budget", async () => {
    const cache = new RedisCache({
      url: server.url,
      keyPrefix: `budget${n++}:`,
      maxBytes: 20_000,
      pruneEvery: 5,
    });
    try {
      for (let i = 0; i < 40; i++) await cache.set(`k${i}`, pattern(1000, i));
      await cache.close(); // waits for the background prune
      const check = new RedisCache({ url: server.url, keyPrefix: cache.keyPrefix });
      const size = await check.sizeBytes();
      await check.close();
      // Unbounded, 40 entries of 1044 bytes would be 41 760. With the budget: at most 20 000 after a check,
      // plus the writes since (fewer than 2 × pruneEvery when a check was still running).
      expect(size).toBeLessThanOrEqual(20_000 + 9 * 1044);
      expect(size).toBeGreaterThan(0);
    } finally {
      await cache.close();
    }
  });
});

describe("Redis Cluster", () => {
  let cluster: RedisServer;
  beforeAll(async () => {
    cluster = await startRedis({ cluster: true });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("works with an ioredis Cluster client: chunked values, streams, delete, has, sizeBytes, prune (no CROSSSLOT)", async () => {
    const client = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
    await new Promise<void>((resolve, reject) => {
      client.once("ready", resolve);
      client.once("error", reject);
    });
    const cache = new RedisCache({ client, chunkSize: 1000, keyPrefix: "c:" });
    try {
      const value = pattern(10_500, 9);
      for (const key of ["a", "b{c}d", "x/y"]) {
        await cache.set(key, value, { ttlMs: 60_000 });
        expect(Buffer.from((await cache.get(key))!).equals(Buffer.from(value))).toBe(true);
        expect(await cache.has(key)).toBe(true);
      }
      await cache.setStream("s", new Blob([value]).stream());
      expect((await drain((await cache.getStream("s"))!)).equals(Buffer.from(value))).toBe(true);
      await cache.set("a", pattern(10, 1)); // switch from chunked to inline: old chunks deleted atomically
      await cache.delete("x/y");
      expect(await cache.get("x/y")).toBeUndefined();
      expect(await cache.sizeBytes()).toBeGreaterThan(2 * value.byteLength);
      expect(await cache.prune(0)).toBeGreaterThan(2 * value.byteLength);
      expect(await cache.sizeBytes()).toBe(0);
    } finally {
      await cache.close();
      client.disconnect();
    }
  });
});
