import { describe, expect, it } from "vitest";
import { MemoryCache } from "./memory-cache.ts";

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

/** A cache with a clock the test moves by hand. */
function clocked(maxBytes?: number): { cache: MemoryCache; advance: (ms: number) => void } {
  let now = 5_000;
  return {
    cache: new MemoryCache({ maxBytes, now: () => now }),
    advance: (ms) => {
      now += ms;
    },
  };
}

async function present(cache: MemoryCache, keys: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const key of keys) if (await cache.has(key)) out.push(key);
  return out;
}

describe("MemoryCache", () => {
  it("evicts the least recently used entries when over maxBytes", async () => {
    const cache = new MemoryCache({ maxBytes: 300 });
    await cache.set("a", bytes(100));
    await cache.set("b", bytes(100));
    await cache.set("c", bytes(100));
    await cache.get("a"); // a is now the most recently used
    await cache.set("d", bytes(100));
    expect(await present(cache, ["a", "b", "c", "d"])).toEqual(["a", "c", "d"]);
    await cache.set("e", bytes(150)); // needs two evictions: c, then a
    expect(await present(cache, ["a", "c", "d", "e"])).toEqual(["d", "e"]);
    expect(await cache.sizeBytes()).toBe(250);
  });

  it("a set refreshes recency; has() does not", async () => {
    const cache = new MemoryCache({ maxBytes: 200 });
    await cache.set("a", bytes(100));
    await cache.set("b", bytes(100));
    await cache.has("a");
    await cache.set("c", bytes(100));
    expect(await present(cache, ["a", "b", "c"])).toEqual(["b", "c"]);
    await cache.set("b", bytes(100, 2));
    await cache.set("d", bytes(100));
    expect(await present(cache, ["b", "c", "d"])).toEqual(["b", "d"]);
  });

  it("does not store a value larger than maxBytes and drops the key's previous value", async () => {
    const cache = new MemoryCache({ maxBytes: 100 });
    await cache.set("k", bytes(50));
    await cache.set("other", bytes(10));
    await cache.set("k", bytes(101));
    expect(await cache.get("k")).toBeUndefined();
    expect(await cache.get("other")).toEqual(bytes(10));
    expect(await cache.sizeBytes()).toBe(10);
    await cache.set("exact", bytes(100));
    expect(await cache.get("exact")).toEqual(bytes(100));
    expect(await cache.get("other")).toBeUndefined();
  });

  it("keeps sizeBytes exact across overwrite and delete", async () => {
    const cache = new MemoryCache();
    await cache.set("a", bytes(100));
    await cache.set("a", bytes(30));
    await cache.set("b", bytes(0));
    expect(await cache.sizeBytes()).toBe(30);
    await cache.delete("a");
    await cache.delete("a");
    expect(await cache.sizeBytes()).toBe(0);
    expect(await cache.get("b")).toEqual(new Uint8Array(0));
  });

  it("copies values on set and on get", async () => {
    const cache = new MemoryCache();
    const value = bytes(8, 7);
    await cache.set("k", value);
    value.fill(0);
    const got = await cache.get("k");
    expect(got).toEqual(bytes(8, 7));
    got!.fill(9);
    expect(await cache.get("k")).toEqual(bytes(8, 7));
  });

  it("expires entries at exactly their TTL on the injected clock", async () => {
    const { cache, advance } = clocked();
    await cache.set("t", bytes(10), { ttlMs: 1000 });
    await cache.set("forever", bytes(5));
    advance(999);
    expect(await cache.get("t")).toEqual(bytes(10));
    expect(await cache.sizeBytes()).toBe(15);
    advance(1);
    expect(await cache.has("t")).toBe(false);
    expect(await cache.get("t")).toBeUndefined();
    expect(await cache.sizeBytes()).toBe(5);
    advance(1e9);
    expect(await cache.get("forever")).toEqual(bytes(5));
  });

  it("a later set replaces the TTL (or removes it)", async () => {
    const { cache, advance } = clocked();
    await cache.set("k", bytes(1), { ttlMs: 100 });
    await cache.set("k", bytes(2), { ttlMs: 1000 });
    advance(500);
    expect(await cache.get("k")).toEqual(bytes(2, 1));
    await cache.set("k", bytes(3));
    advance(10_000);
    expect(await cache.get("k")).toEqual(bytes(3, 1));
  });

  it("sizeBytes() and prune() drop expired entries first", async () => {
    const { cache, advance } = clocked();
    await cache.set("old", bytes(100));
    await cache.set("short", bytes(40), { ttlMs: 10 });
    await cache.set("new", bytes(100));
    advance(10);
    // Pruning to 200 needs no LRU eviction once the expired entry is gone.
    expect(await cache.prune(200)).toBe(40);
    expect(await present(cache, ["old", "short", "new"])).toEqual(["old", "new"]);
    expect(await cache.prune(150)).toBe(100);
    expect(await present(cache, ["old", "new"])).toEqual(["new"]);
    expect(await cache.prune(0)).toBe(100);
    expect(await cache.sizeBytes()).toBe(0);
  });

  it("prune() evicts in LRU order and reports the bytes freed", async () => {
    const cache = new MemoryCache();
    await cache.set("a", bytes(10));
    await cache.set("b", bytes(20));
    await cache.set("c", bytes(30));
    await cache.get("a");
    // Recency order is now b, c, a: evicting b leaves 40 > 35, so c goes as well.
    expect(await cache.prune(35)).toBe(50);
    expect(await present(cache, ["a", "b", "c"])).toEqual(["a"]);
    expect(await cache.prune(10)).toBe(0);
  });

  it("rejects invalid options and arguments with ERR_INVALID_ARGUMENT", async () => {
    expect(() => new MemoryCache({ maxBytes: -1 })).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
    );
    expect(() => new MemoryCache({ maxBytes: 1.5 })).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
    );
    const cache = new MemoryCache();
    for (const ttlMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(cache.set("k", bytes(1), { ttlMs })).rejects.toMatchObject({
        code: "ERR_INVALID_ARGUMENT",
      });
    }
    await expect(cache.set("k", "text" as unknown as Uint8Array)).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
    await expect(cache.prune(-1)).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
    expect(await cache.has("k")).toBe(false);
  });

  it("rejects aborted operations with signal.reason and closed ones with ERR_CLOSED", async () => {
    const cache = new MemoryCache();
    const reason = new Error("stop");
    const signal = AbortSignal.abort(reason);
    await expect(cache.get("k", { signal })).rejects.toBe(reason);
    await expect(cache.prune(0, { signal })).rejects.toBe(reason);
    await cache.set("k", bytes(1));
    await cache[Symbol.asyncDispose]();
    await cache.close();
    await expect(cache.get("k")).rejects.toMatchObject({ code: "ERR_CLOSED" });
    await expect(cache.sizeBytes()).rejects.toMatchObject({ code: "ERR_CLOSED" });
  });
});
