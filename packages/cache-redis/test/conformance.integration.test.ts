import { describeCache } from "@blobkit/conformance";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { RedisCache } from "../src/index.ts";
import { decodeFixedHeader, encodeChunk, newGeneration, REDIS_CACHE_HEADER_BYTES } from "../src/layout.ts";
import { type RedisServer, startRedis } from "./redis-server.ts";

let server: RedisServer;
let raw: Redis;
let caches = 0;

beforeAll(async () => {
  server = await startRedis();
  raw = new Redis(server.url);
});

afterAll(async () => {
  raw?.disconnect();
  await server?.stop();
});

/** The chunk keys of `header`'s current generation (empty for an inline entry). */
async function currentChunks(header: string): Promise<string[]> {
  const fixed = decodeFixedHeader((await raw.getBuffer(header)) ?? Buffer.alloc(0));
  const keys = await raw.keys(`${header}:*`);
  if (fixed?.kind !== "chunked") return [];
  const gen = Buffer.from(fixed.generation).toString("hex");
  return keys.filter((k) => k.includes(`:${gen}:`)).sort();
}

// Default chunk size: the 4 KiB victim is stored inline in its header key. Damage: a flipped value byte, a
// truncated entry, a flipped header byte.
describeCache("RedisCache (inline values: flipped, truncated, header-damaged)", () => {
  const cache = new RedisCache({ url: server.url, keyPrefix: `conf${caches++}:`, timeoutMs: 2000 });
  let count = 0;
  return {
    cache,
    corrupt: async (key) => {
      const { header } = cache.entryKeys(key);
      const value = (await raw.getBuffer(header))!;
      const mode = count++ % 3;
      if (mode === 0) value[value.length - 1]! ^= 0xff;
      else if (mode === 1)
        value.subarray(0, value.length - 1).copy(value); // shifted
      else value[REDIS_CACHE_HEADER_BYTES - 30]! ^= 0x01; // inside the generation: header CRC fails
      await raw.set(header, mode === 1 ? value.subarray(0, value.length - 1) : value, "KEEPTTL");
    },
  };
});

// Tiny chunks: the 4 KiB victim spans 5 chunks. Damage: a missing chunk, a flipped chunk byte, a chunk of
// another generation, a truncated chunk.
describeCache(
  "RedisCache (1000-byte chunks: missing, flipped, foreign-generation, truncated chunks)",
  () => {
    const cache = new RedisCache({
      url: server.url,
      keyPrefix: `conf${caches++}:`,
      timeoutMs: 2000,
      chunkSize: 1000,
    });
    let count = 0;
    return {
      cache,
      corrupt: async (key) => {
        const chunks = await currentChunks(cache.entryKeys(key).header);
        const victim = chunks[count % chunks.length]!;
        const stored = (await raw.getBuffer(victim))!;
        const mode = count++ % 4;
        if (mode === 0) await raw.del(victim);
        else if (mode === 1) {
          stored[stored.length - 1]! ^= 0x10;
          await raw.set(victim, stored);
        } else if (mode === 2) {
          const index = stored.readUInt32BE(16);
          await raw.set(victim, encodeChunk(newGeneration(), index, stored.subarray(24)));
        } else await raw.set(victim, stored.subarray(0, stored.length - 1));
      },
    };
  },
  { largeSize: 200_000 },
);
