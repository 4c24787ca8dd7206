import { describe, expect, it } from "vitest";
import { Archive } from "./archive.ts";
import { withBlockCache } from "./block-cache.ts";
import { type Cache, cacheKeys } from "./cache.ts";
import { MemoryCache } from "./memory-cache.ts";
import { MemorySource } from "./sources.ts";
import { buildArchive, pseudoRandomBytes } from "./test-support/build-archive.ts";
import { CountingSource } from "./test-support/counting-source.ts";

const DATA = pseudoRandomBytes(10_000, 42);

function setup(options: { blockSize?: number; maxBlocksPerRead?: number; cache?: Cache } = {}) {
  const source = new CountingSource(new MemorySource(DATA, { id: "sha256:test" }));
  const cache = options.cache ?? new MemoryCache();
  const cached = withBlockCache(source, cache, {
    blockSize: options.blockSize ?? 1000,
    maxBlocksPerRead: options.maxBlocksPerRead ?? 4,
  });
  return { source, cache, cached };
}

function expectBytes(actual: Uint8Array, offset: number, length: number): void {
  expect(actual.byteLength).toBe(length);
  expect(Buffer.compare(Buffer.from(actual), Buffer.from(DATA.subarray(offset, offset + length)))).toBe(0);
}

describe("withBlockCache", () => {
  it("keeps the source id and size", async () => {
    const { cached } = setup();
    expect(cached.id).toBe("sha256:test");
    expect(await cached.size()).toBe(10_000);
  });

  it("fetches missing blocks in one read, then serves hits without the source", async () => {
    const { source, cache, cached } = setup();
    expectBytes(await cached.read(1500, 2000), 1500, 2000); // blocks 1..3
    expect(source.reads).toEqual([[1000, 3000]]);
    expect(await cache.has!(cacheKeys.block("sha256:test", 1000, 2))).toBe(true);
    source.reset();
    expectBytes(await cached.read(1000, 3000), 1000, 3000);
    expectBytes(await cached.read(2999, 2), 2999, 2);
    expect(source.requests).toBe(0);
    // Partly cached: only the missing run is fetched.
    expectBytes(await cached.read(3500, 1000), 3500, 1000); // blocks 3 (hit) and 4 (miss)
    expect(source.reads).toEqual([[4000, 1000]]);
  });

  it("handles the short last block", async () => {
    const { source, cached } = setup({ blockSize: 3000 });
    expectBytes(await cached.read(9500, 500), 9500, 500); // block 3 = 9000..10000
    expect(source.reads).toEqual([[9000, 1000]]);
    source.reset();
    expectBytes(await cached.read(9000, 1000), 9000, 1000);
    expect(source.requests).toBe(0);
  });

  it("reads spanning more than maxBlocksPerRead blocks bypass the cache", async () => {
    const { source, cache, cached } = setup();
    expectBytes(await cached.read(0, 5000), 0, 5000); // 5 blocks > 4
    expect(source.reads).toEqual([[0, 5000]]);
    expect(await cache.has!(cacheKeys.block("sha256:test", 1000, 0))).toBe(false);
  });

  it("a cached block of the wrong length is deleted and refetched", async () => {
    const { source, cache, cached } = setup();
    const key = cacheKeys.block("sha256:test", 1000, 5);
    await cache.set(key, new Uint8Array(10));
    expectBytes(await cached.read(5100, 100), 5100, 100);
    expect(source.reads).toEqual([[5000, 1000]]);
    expect((await cache.get(key))?.byteLength).toBe(1000);
  });

  it("a failing cache never fails a read", async () => {
    const broken: Cache = {
      supportsTtl: false,
      get: () => Promise.reject(new Error("down")),
      set: () => {
        throw new Error("down");
      },
      delete: () => Promise.reject(new Error("down")),
      close: async () => {},
    };
    const errors: string[] = [];
    const source = new CountingSource(new MemorySource(DATA, { id: "x" }));
    const cached = withBlockCache(source, broken, {
      blockSize: 1000,
      onCacheError: (_e, key) => errors.push(key),
    });
    expectBytes(await cached.read(100, 2500), 100, 2500);
    expectBytes(await cached.read(100, 2500), 100, 2500);
    expect(source.reads.length).toBe(2);
    expect(errors.length).toBeGreaterThan(0);
  });

  it("concurrent reads of the same blocks share one fetch", async () => {
    const { source, cached } = setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    source.beforeRead = () => gate;
    const reads = Array.from({ length: 5 }, () => cached.read(2000, 1500));
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    for (const bytes of await Promise.all(reads)) expectBytes(bytes, 2000, 1500);
    expect(source.reads).toEqual([[2000, 2000]]);
  });

  it("validates ranges and delegates stream() and close()", async () => {
    const { source, cached } = setup();
    await expect(cached.read(9990, 20)).rejects.toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    await expect(cached.read(-1, 2)).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
    expect((await cached.read(5, 0)).byteLength).toBe(0);
    expect(typeof cached.stream).toBe("function");
    const chunks: Uint8Array[] = [];
    for await (const chunk of cached.stream!(100, 50_00) as unknown as AsyncIterable<Uint8Array>)
      chunks.push(chunk);
    expectBytes(new Uint8Array(Buffer.concat(chunks)), 100, 5000);
    expect(source.streams).toEqual([[100, 5000]]);
    await cached.close();
    await cached.close();
    expect(source.closeCount).toBe(1);
    await expect(cached.read(0, 1)).rejects.toMatchObject({ code: "ERR_CLOSED" });
  });

  it("serves an Archive: second read of a file comes from the block cache", async () => {
    const built = await buildArchive([
      { path: "a.txt", content: "alpha".repeat(100), compression: "zstd" },
      { path: "b.txt", content: "beta".repeat(100) },
    ]);
    const source = new CountingSource(new MemorySource(built.data, { id: "sha256:arch" }), { stream: false });
    const cache = new MemoryCache();
    const archive = await Archive.open({
      index: built.index,
      source: withBlockCache(source, cache, { blockSize: 64 }),
    });
    expect(await archive.readFile("b.txt", { encoding: "utf8" })).toBe("beta".repeat(100));
    const before = source.requests;
    expect(before).toBeGreaterThan(0);
    expect(await archive.readFile("b.txt", { encoding: "utf8" })).toBe("beta".repeat(100));
    expect(source.requests).toBe(before);
  });
});
