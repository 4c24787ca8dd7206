import { isBlobError } from "@blobkit/core";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { RedisCache, redisClientOptions } from "./index.ts";
import {
  chunkCount,
  chunkKey,
  chunkKeys,
  chunkLength,
  decodeChunk,
  decodeFixedHeader,
  decodeHeader,
  encodeChunk,
  encodeChunkedHeader,
  encodeInlineHeader,
  entryKeys,
  GENERATION_BYTES,
  hashTagOf,
  newGeneration,
  REDIS_CACHE_CHUNK_PREFIX_BYTES,
  REDIS_CACHE_HEADER_BYTES,
} from "./layout.ts";

function bytes(size: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff);
}

describe("key layout", () => {
  it("every key of an entry shares one well-formed hash tag, whatever the cache key", () => {
    for (const key of ["plain", "a{b}c", "}{", "{", "{}", "ünïcödé 🔑", "x".repeat(10_000), "", "a\nb"]) {
      const { header, tag } = entryKeys("app:", key);
      expect(header).toBe(`app:${tag}`);
      expect(tag).toMatch(/^\{[0-9a-f]{64}\}$/);
      const tagText = hashTagOf(header);
      expect(tagText).toBe(tag.slice(1, -1));
      const gen = newGeneration();
      for (const index of [0, 1, 999]) expect(hashTagOf(chunkKey(header, gen, index))).toBe(tagText);
    }
  });

  it("distinct keys and distinct prefixes give distinct header keys", () => {
    const keys = ["Key", "key", "KEY", "key/", "ke", "a{b}", "a{c}"];
    const headers = new Set(keys.map((k) => entryKeys("p:", k).header));
    expect(headers.size).toBe(keys.length);
    expect(entryKeys("p1:", "k").header).not.toBe(entryKeys("p2:", "k").header);
    expect(entryKeys("p1:", "k").tag).toBe(entryKeys("p2:", "k").tag);
  });

  it("chunk keys carry the generation and the index", () => {
    const gen = new Uint8Array(GENERATION_BYTES).fill(0xab);
    expect(chunkKeys("p:{t}", gen, 2)).toEqual([`p:{t}:${"ab".repeat(16)}:0`, `p:{t}:${"ab".repeat(16)}:1`]);
    expect(newGeneration()).not.toEqual(newGeneration());
  });

  it("hashTagOf follows Redis Cluster's rule (first '{', next '}', non-empty)", () => {
    expect(hashTagOf("a{b}c{d}")).toBe("b");
    expect(hashTagOf("a{}b{c}")).toBeUndefined();
    expect(hashTagOf("abc")).toBeUndefined();
    expect(hashTagOf("a{bc")).toBeUndefined();
  });
});

describe("chunking", () => {
  it("chunk lengths cover the value exactly", () => {
    for (const [length, size] of [
      [1, 1],
      [10, 3],
      [1024, 1024],
      [1025, 1024],
      [5_000_000, 1_048_576],
    ] as const) {
      const n = chunkCount(length, size);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const len = chunkLength(length, size, i);
        expect(len).toBeGreaterThan(0);
        expect(len).toBeLessThanOrEqual(size);
        sum += len;
      }
      expect(sum).toBe(length);
    }
  });
});

describe("header codec", () => {
  it("round-trips inline headers, empty values included", () => {
    for (const size of [0, 1, 4096]) {
      const gen = newGeneration();
      const value = bytes(size, size);
      const encoded = encodeInlineHeader(gen, value);
      expect(encoded.byteLength).toBe(REDIS_CACHE_HEADER_BYTES + size);
      const decoded = decodeHeader(encoded);
      expect(decoded?.kind).toBe("inline");
      if (decoded?.kind !== "inline") return;
      expect(decoded.length).toBe(size);
      expect(Buffer.from(decoded.value).equals(Buffer.from(value))).toBe(true);
      expect(Buffer.from(decoded.generation).equals(Buffer.from(gen))).toBe(true);
    }
  });

  it("round-trips chunked headers", () => {
    const gen = newGeneration();
    const decoded = decodeHeader(encodeChunkedHeader(gen, 2_500_000, 1_048_576));
    expect(decoded).toMatchObject({ kind: "chunked", length: 2_500_000, chunkSize: 1_048_576, chunks: 3 });
  });

  it("detects every single-byte change of an inline entry (header or value)", () => {
    const encoded = encodeInlineHeader(newGeneration(), bytes(300, 1));
    for (let i = 0; i < encoded.byteLength; i++) {
      for (const flip of [0x01, 0x80]) {
        const damaged = Buffer.from(encoded);
        damaged[i]! ^= flip;
        expect(decodeHeader(damaged), `byte ${i} ^ ${flip}`).toBeUndefined();
      }
    }
  });

  it("detects every single-byte change of a chunked header, and truncation or extension", () => {
    const encoded = encodeChunkedHeader(newGeneration(), 10_000, 1000);
    for (let i = 0; i < encoded.byteLength; i++) {
      const damaged = Buffer.from(encoded);
      damaged[i]! ^= 0x04;
      expect(decodeFixedHeader(damaged), `byte ${i}`).toBeUndefined();
    }
    expect(decodeHeader(encoded.subarray(0, encoded.byteLength - 1))).toBeUndefined();
    expect(decodeHeader(Buffer.concat([encoded, Buffer.of(0)]))).toBeUndefined();
    const inline = encodeInlineHeader(newGeneration(), bytes(100, 2));
    expect(decodeHeader(inline.subarray(0, inline.byteLength - 1))).toBeUndefined();
    expect(decodeHeader(Buffer.concat([inline, Buffer.of(0)]))).toBeUndefined();
    // The fixed part alone is enough to find an inline entry's stored size (used by has()).
    expect(decodeFixedHeader(inline.subarray(0, REDIS_CACHE_HEADER_BYTES))?.storedBytes).toBe(
      inline.byteLength,
    );
    expect(decodeHeader(new Uint8Array(0))).toBeUndefined();
  });
});

describe("chunk codec", () => {
  const gen = newGeneration();
  const data = bytes(1000, 9);
  const stored = encodeChunk(gen, 3, data);

  it("round-trips", () => {
    expect(stored.byteLength).toBe(REDIS_CACHE_CHUNK_PREFIX_BYTES + 1000);
    expect(Buffer.from(decodeChunk(stored, gen, 3, 1000)!).equals(Buffer.from(data))).toBe(true);
  });

  it("rejects a chunk of another generation, index or length, or with a changed byte", () => {
    expect(decodeChunk(stored, newGeneration(), 3, 1000)).toBeUndefined();
    expect(decodeChunk(stored, gen, 4, 1000)).toBeUndefined();
    expect(decodeChunk(stored, gen, 3, 999)).toBeUndefined();
    expect(decodeChunk(stored.subarray(0, stored.byteLength - 1), gen, 3, 999)).toBeUndefined();
    for (const i of [0, 15, 16, 20, 24, 500, stored.byteLength - 1]) {
      const damaged = Buffer.from(stored);
      damaged[i]! ^= 0x20;
      expect(decodeChunk(damaged, gen, 3, 1000), `byte ${i}`).toBeUndefined();
    }
  });
});

describe("RedisCache options", () => {
  function code(fn: () => unknown): string | undefined {
    try {
      fn();
    } catch (error) {
      return isBlobError(error) ? error.code : String(error);
    }
    return undefined;
  }

  it("rejects invalid options before connecting", () => {
    const url = "redis://127.0.0.1:1";
    expect(code(() => new RedisCache({}))).toBe("ERR_INVALID_ARGUMENT");
    const client = new Redis({ lazyConnect: true });
    try {
      expect(code(() => new RedisCache({ url, client }))).toBe("ERR_INVALID_ARGUMENT");
    } finally {
      client.disconnect();
    }
    expect(code(() => new RedisCache({ url, keyPrefix: "a{b}:" }))).toBe("ERR_INVALID_ARGUMENT");
    expect(code(() => new RedisCache({ url, timeoutMs: 0 }))).toBe("ERR_INVALID_ARGUMENT");
    expect(code(() => new RedisCache({ url, chunkSize: 128 * 1024 * 1024 }))).toBe("ERR_INVALID_ARGUMENT");
    expect(code(() => new RedisCache({ url, maxBytes: 100, lowWaterBytes: 200 }))).toBe(
      "ERR_INVALID_ARGUMENT",
    );
    expect(code(() => new RedisCache({ client: {} as Redis }))).toBe("ERR_INVALID_ARGUMENT");
  });

  it("rejects a client with its own keyPrefix (it would be applied twice)", () => {
    const client = new Redis({ lazyConnect: true, keyPrefix: "app:" });
    try {
      expect(code(() => new RedisCache({ client }))).toBe("ERR_INVALID_ARGUMENT");
    } finally {
      client.disconnect();
    }
  });

  it("redisClientOptions() bounds every wait", () => {
    const options = redisClientOptions(250);
    expect(options).toMatchObject({
      commandTimeout: 250,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    });
    const retry = options.retryStrategy!;
    const delays = [1, 2, 3, 10, 1000].map((n) => retry(n));
    for (const delay of delays) expect(delay).toBeGreaterThan(0);
    expect(Math.max(...(delays as number[]))).toBeLessThanOrEqual(1000);
  });
});
