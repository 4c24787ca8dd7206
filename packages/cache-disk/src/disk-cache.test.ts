import { pbkdf2 } from "node:crypto";
import {
  chmod,
  mkdir,
  mkdtemp,
  open,
  readdir,
  rm,
  stat,
  truncate,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlobError, isBlobError } from "@blobkit/core";
import { afterEach, describe, expect, it } from "vitest";
import { streamOf } from "../test/stress-values.ts";
import { DISK_CACHE_HEADER_BYTES, DiskCache, type DiskCacheOptions } from "./index.ts";

const dirs: string[] = [];
const caches: DiskCache[] = [];

afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-disk-test-"));
  dirs.push(dir);
  return dir;
}

async function openCache(options: DiskCacheOptions): Promise<DiskCache> {
  const cache = await DiskCache.open(options);
  caches.push(cache);
  return cache;
}

function bytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff;
  return out;
}

/** File size of an entry holding `valueBytes`. */
const entry = (valueBytes: number): number => DISK_CACHE_HEADER_BYTES + valueBytes;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail("expected a rejection"),
    (error: unknown) => error,
  );
}

describe("DiskCache layout and entries", () => {
  it("stores each key at <dir>/<sha256[0:2]>/<sha256> with a 64-byte header", async () => {
    const dir = await tempDir();
    const cache = await openCache({ dir });
    await cache.set("file/sha256:abc", bytes(100, 1));
    const path = cache.entryPath("file/sha256:abc");
    // sha256("file/sha256:abc")
    const { createHash } = await import("node:crypto");
    const hex = createHash("sha256").update("file/sha256:abc").digest("hex");
    expect(path).toBe(join(dir, hex.slice(0, 2), hex));
    expect((await stat(path)).size).toBe(entry(100));
    expect(await cache.sizeBytes()).toBe(entry(100));
    // No temp files are left behind.
    expect(await readdir(join(dir, hex.slice(0, 2)))).toEqual([hex]);
  });

  it("rejects keys with lone surrogates (they would collide once UTF-8 encoded)", async () => {
    const cache = await openCache({ dir: await tempDir() });
    const error = await rejection(cache.set("bad\uD800", bytes(1, 1)));
    expect(isBlobError(error, "ERR_INVALID_ARGUMENT")).toBe(true);
  });

  it("validates options", () => {
    expect(() => new DiskCache({ dir: "" })).toThrow(/dir/);
    expect(() => new DiskCache({ dir: "/tmp/x", maxBytes: -1 })).toThrow(/maxBytes/);
    expect(() => new DiskCache({ dir: "/tmp/x", pruneEvery: 0 })).toThrow(/pruneEvery/);
  });
});

describe("DiskCache LRU and size bound", () => {
  it.each([true, false])(
    "a read refreshes recency: eviction removes the least recently used entry, not the oldest write (syncReads %s)",
    async (syncReads) => {
      const dir = await tempDir();
      const maxBytes = 3 * entry(1000);
      const cache = await openCache({
        dir,
        maxBytes,
        lowWaterBytes: maxBytes,
        touchIntervalMs: 0,
        syncReads,
      });
      await cache.set("a", bytes(1000, 1));
      await cache.set("b", bytes(1000, 2));
      await cache.set("c", bytes(1000, 3));
      expect(await cache.get("a")).toEqual(bytes(1000, 1)); // a is now the most recently used
      await cache.set("d", bytes(1000, 4)); // over budget: b goes
      expect(await cache.has("b")).toBe(false);
      expect(await cache.has("a")).toBe(true);
      expect(await cache.has("c")).toBe(true);
      expect(await cache.has("d")).toBe(true);
      await cache.get("c");
      await cache.set("e", bytes(1000, 5)); // now a is the LRU one (has() is not a use)
      expect(await cache.has("a")).toBe(false);
      expect(await cache.has("c")).toBe(true);
      expect(await cache.sizeBytes()).toBe(3 * entry(1000));
    },
  );

  it("by default a hit within touchIntervalMs of this process's last touch or write does not rewrite the mtime", async () => {
    const cache = await openCache({ dir: await tempDir(), touchIntervalMs: 60_000 });
    await cache.set("a", bytes(10, 1));
    const before = (await stat(cache.entryPath("a"))).mtimeMs;
    await cache.get("a");
    await cache.sizeBytes(); // waits for background recency updates
    expect((await stat(cache.entryPath("a"))).mtimeMs).toBe(before);
    const eager = await openCache({ dir: cache.dir, touchIntervalMs: 0 });
    await eager.get("a");
    await eager.sizeBytes();
    expect((await stat(cache.entryPath("a"))).mtimeMs).toBeGreaterThan(before);
  });

  it("getStream() also refreshes recency", async () => {
    const cache = await openCache({
      dir: await tempDir(),
      maxBytes: 2 * entry(10),
      lowWaterBytes: 2 * entry(10),
      touchIntervalMs: 0,
    });
    await cache.set("a", bytes(10, 1));
    await cache.set("b", bytes(10, 2));
    await drain((await cache.getStream("a"))!);
    await cache.set("c", bytes(10, 3));
    expect(await cache.has("a")).toBe(true);
    expect(await cache.has("b")).toBe(false);
  });

  it("prune(target) evicts least-recently-used entries until target bytes remain and reports bytes freed", async () => {
    const cache = await openCache({ dir: await tempDir(), touchIntervalMs: 0 });
    for (const [i, key] of ["a", "b", "c", "d"].entries()) await cache.set(key, bytes(500, i));
    await cache.get("a");
    await cache.get("b");
    expect(await cache.prune(2 * entry(500))).toBe(2 * entry(500));
    expect(await cache.has("c")).toBe(false);
    expect(await cache.has("d")).toBe(false);
    expect(await cache.get("a")).toEqual(bytes(500, 0));
    expect(await cache.get("b")).toEqual(bytes(500, 1));
    expect(await cache.prune(2 * entry(500))).toBe(0);
    expect(await cache.prune(0)).toBe(2 * entry(500));
    expect(await cache.sizeBytes()).toBe(0);
  });

  it("the total stays within maxBytes after every set", async () => {
    const maxBytes = 20_000;
    const cache = await openCache({ dir: await tempDir(), maxBytes, pruneEvery: 1000 });
    for (let i = 0; i < 60; i++) {
      await cache.set(`k${i % 25}`, bytes((i * 997) % 4000, i));
      expect(await cache.sizeBytes()).toBeLessThanOrEqual(maxBytes);
    }
  });

  it("pruning after writes goes down to lowWaterBytes, and only when the total exceeds maxBytes", async () => {
    const dir = await tempDir();
    const cache = await openCache({
      dir,
      maxBytes: 10 * entry(100),
      lowWaterBytes: 5 * entry(100),
      pruneEvery: 1,
    });
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, bytes(100, i));
    expect(await cache.sizeBytes()).toBe(10 * entry(100)); // at the bound, not over it: nothing evicted
    await cache.set("k10", bytes(100, 10));
    expect(await cache.sizeBytes()).toBe(5 * entry(100));
    for (let i = 6; i <= 10; i++) expect(await cache.has(`k${i}`)).toBe(true);
    expect(() => new DiskCache({ dir, maxBytes: 10, lowWaterBytes: 11 })).toThrow(/lowWaterBytes/);
  });

  it("an entry larger than maxBytes is not stored and drops the key's previous value", async () => {
    const cache = await openCache({ dir: await tempDir(), maxBytes: entry(1000) });
    await cache.set("k", bytes(1000, 1));
    await cache.set("k", bytes(1001, 2));
    expect(await cache.get("k")).toBeUndefined();
    await cache.set("k", bytes(1000, 3));
    await cache.setStream("k", streamOf([bytes(600, 1), bytes(600, 2)]));
    expect(await cache.get("k")).toBeUndefined();
    expect(await cache.sizeBytes()).toBe(0);
  });

  it("accounts for entries written by another cache instance on the same directory", async () => {
    const dir = await tempDir();
    const maxBytes = 4 * entry(1000);
    const one = await openCache({ dir, maxBytes, lowWaterBytes: maxBytes, pruneEvery: 1 });
    const two = await openCache({ dir, maxBytes, lowWaterBytes: maxBytes, pruneEvery: 1 });
    for (let i = 0; i < 10; i++) {
      await (i % 2 === 0 ? one : two).set(`k${i}`, bytes(1000, i));
      expect(await one.sizeBytes()).toBeLessThanOrEqual(maxBytes);
    }
    expect(await two.get("k9")).toEqual(bytes(1000, 9));
    expect(await one.get("k0")).toBeUndefined();
  });

  it("opening a directory already over the bound prunes it", async () => {
    const dir = await tempDir();
    const big = await openCache({ dir });
    for (let i = 0; i < 5; i++) await big.set(`k${i}`, bytes(1000, i));
    const small = await openCache({ dir, maxBytes: 2 * entry(1000), lowWaterBytes: 2 * entry(1000) });
    expect(await small.sizeBytes()).toBe(2 * entry(1000));
    expect(await small.has("k4")).toBe(true);
    expect(await small.has("k0")).toBe(false);
  });
});

describe("DiskCache TTL", () => {
  it("expired entries read as misses and their files are removed", async () => {
    let now = 5_000;
    const cache = await openCache({ dir: await tempDir(), now: () => now });
    await cache.set("ref/x", bytes(20, 1), { ttlMs: 1000 });
    await cache.set("ref/y", bytes(20, 2), { ttlMs: 1000 });
    await cache.set("plain", bytes(20, 3));
    now += 999;
    expect(await cache.get("ref/x")).toEqual(bytes(20, 1));
    now += 1;
    expect(await cache.get("ref/x")).toBeUndefined();
    expect(await exists(cache.entryPath("ref/x"))).toBe(false);
    expect(await cache.getStream("ref/y")).toBeUndefined();
    expect(await exists(cache.entryPath("ref/y"))).toBe(false);
    expect(await cache.get("plain")).toEqual(bytes(20, 3));
    await cache.set("s", bytes(20, 4));
    await cache.setStream("s", streamOf([bytes(20, 5)]), { ttlMs: 10 });
    now += 10;
    expect(await cache.has("s")).toBe(false);
    expect(await exists(cache.entryPath("s"))).toBe(false);
  });

  it("rejects invalid ttlMs", async () => {
    const cache = await openCache({ dir: await tempDir() });
    for (const ttlMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(
        isBlobError(await rejection(cache.set("k", bytes(1, 1), { ttlMs })), "ERR_INVALID_ARGUMENT"),
      ).toBe(true);
    }
  });
});

describe("DiskCache damaged entries", () => {
  async function damaged(damage: (path: string) => Promise<void>): Promise<void> {
    const errors: BlobError[] = [];
    const cache = await openCache({ dir: await tempDir(), onError: (error) => errors.push(error) });
    await cache.set("k", bytes(5000, 1));
    await cache.set("other", bytes(50, 2));
    const path = cache.entryPath("k");
    await damage(path);
    expect(await cache.get("k")).toBeUndefined();
    expect(await exists(path)).toBe(false);
    expect(errors.map((error) => error.code)).toEqual(["ERR_INTEGRITY"]);
    expect(cache.degraded).toBe(false);
    expect(await cache.get("other")).toEqual(bytes(50, 2));
  }

  const flip = async (path: string, position: number) => {
    const handle = await open(path, "r+");
    const byte = new Uint8Array(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = (byte[0] ?? 0) ^ 1;
    await handle.write(byte, 0, 1, position);
    await handle.close();
  };

  it("a flipped value bit → miss, file deleted", () => damaged((path) => flip(path, 3000)));
  it("a flipped header bit → miss, file deleted", () => damaged((path) => flip(path, 20)));
  it("a truncated entry → miss, file deleted", () => damaged((path) => truncate(path, 2000)));
  it("a truncated header → miss, file deleted", () => damaged((path) => truncate(path, 10)));
  it("an empty file → miss, file deleted", () => damaged((path) => truncate(path, 0)));
  it("an appended byte → miss, file deleted", () =>
    damaged(async (path) => {
      const handle = await open(path, "a");
      await handle.write(Uint8Array.of(0));
      await handle.close();
    }));

  it("getStream() of a damaged value errors with ERR_INTEGRITY before its end and deletes the entry", async () => {
    const cache = await openCache({ dir: await tempDir() });
    const value = bytes(1024 * 1024, 3);
    await cache.set("k", value);
    const ok = await drain((await cache.getStream("k"))!);
    expect(Buffer.compare(ok, value)).toBe(0);
    await flip(cache.entryPath("k"), DISK_CACHE_HEADER_BYTES + 1000);
    const stream = await cache.getStream("k");
    expect(stream).toBeDefined();
    const error = await rejection(drain(stream!));
    expect(isBlobError(error, "ERR_INTEGRITY")).toBe(true);
    expect(await exists(cache.entryPath("k"))).toBe(false);
    // A damaged header or length is caught before the stream starts: a miss.
    await cache.set("k", value);
    await truncate(cache.entryPath("k"), 5000);
    expect(await cache.getStream("k")).toBeUndefined();
    expect(await exists(cache.entryPath("k"))).toBe(false);
  });
});

describe("DiskCache streams", () => {
  it("setStream()/getStream() round-trip a multi-chunk value and empty values", async () => {
    const cache = await openCache({ dir: await tempDir() });
    const value = bytes(3 * 256 * 1024 + 17, 9);
    const chunks = [value.subarray(0, 1), value.subarray(1, 500_000), value.subarray(500_000)];
    await cache.setStream("big", streamOf(chunks));
    expect(Buffer.compare(await drain((await cache.getStream("big"))!), value)).toBe(0);
    expect(Buffer.compare((await cache.get("big"))!, value)).toBe(0);
    await cache.setStream("empty", streamOf([]));
    expect(await cache.get("empty")).toEqual(new Uint8Array(0));
    expect((await drain((await cache.getStream("empty"))!)).byteLength).toBe(0);
  });

  it("an abort during setStream() rejects with signal.reason, stores nothing and leaves no temp file", async () => {
    const dir = await tempDir();
    const cache = await openCache({ dir });
    const controller = new AbortController();
    const reason = new Error("stop");
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull: (c) => {
        if (++sent === 3) controller.abort(reason);
        c.enqueue(bytes(1000, sent));
      },
    });
    expect(await rejection(cache.setStream("k", stream, { signal: controller.signal }))).toBe(reason);
    expect(await cache.has("k")).toBe(false);
    const shard = cache.entryPath("k").split("/").at(-2)!;
    expect(await readdir(join(dir, shard))).toEqual([]);
  });

  it("aborting the signal while a getStream() is read errors the stream with signal.reason", async () => {
    const cache = await openCache({ dir: await tempDir() });
    await cache.set("k", bytes(1024 * 1024, 1));
    const controller = new AbortController();
    const stream = (await cache.getStream("k", { signal: controller.signal }))!;
    const reader = stream.getReader();
    await reader.read();
    const reason = new Error("enough");
    controller.abort(reason);
    expect(await rejection(reader.read().then(() => reader.read()))).toBe(reason);
    expect(await cache.get("k")).toEqual(bytes(1024 * 1024, 1)); // the entry is untouched
  });

  it("cancelling a getStream() is fine and the entry stays", async () => {
    const cache = await openCache({ dir: await tempDir() });
    await cache.set("k", bytes(1024 * 1024, 1));
    const stream = (await cache.getStream("k"))!;
    const reader = stream.getReader();
    await reader.read();
    await reader.cancel();
    expect(await cache.get("k")).toEqual(bytes(1024 * 1024, 1));
  });

  it("close() waits for a write under way, which then stores nothing (no entry, no temp file)", async () => {
    const dir = await tempDir();
    const cache = await DiskCache.open({ dir });
    let push: (chunk: Uint8Array | null) => void = () => {};
    const value = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (chunk) => (chunk === null ? controller.close() : controller.enqueue(chunk));
      },
    });
    const writing = cache.setStream("slow", value).catch((e: unknown) => e);
    push(bytes(1000, 7));
    await new Promise((resolve) => setTimeout(resolve, 20));
    let closed = false;
    const closing = cache.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The write is still running: close has not returned.
    expect(closed).toBe(false);
    push(bytes(500, 8));
    push(null);
    await closing;
    expect(isBlobError(await writing, "ERR_CLOSED")).toBe(true);
    const files: string[] = [];
    for (const sub of await readdir(dir)) {
      const info = await stat(join(dir, sub));
      if (info.isDirectory()) files.push(...(await readdir(join(dir, sub))));
      else files.push(sub);
    }
    expect(files).toEqual([]);
    const reopened = await openCache({ dir });
    expect(await reopened.get("slow")).toBeUndefined();
  });

  it("getStream()/setStream() after close() reject with ERR_CLOSED", async () => {
    const cache = await openCache({ dir: await tempDir() });
    await cache.close();
    expect(isBlobError(await rejection(cache.getStream("k")), "ERR_CLOSED")).toBe(true);
    expect(isBlobError(await rejection(cache.setStream("k", streamOf([]))), "ERR_CLOSED")).toBe(true);
  });
});

describe("DiskCache temp files", () => {
  it("leftover temp files older than staleTempMs are removed on open; fresh ones (live writers) are kept", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "ab"), { recursive: true });
    const stale = join(dir, "ab", ".tmp-123-deadbeef");
    const fresh = join(dir, "ab", ".tmp-456-cafebabe");
    await writeFile(stale, bytes(100, 1));
    await writeFile(fresh, bytes(100, 2));
    const old = (Date.now() - 5 * 60_000) / 1000;
    await utimes(stale, old, old);
    const cache = await openCache({ dir });
    expect(await exists(stale)).toBe(false);
    expect(await exists(fresh)).toBe(true);
    expect(await cache.sizeBytes()).toBe(0); // temp files are not entries
  });
});

describe("DiskCache failures degrade to misses", () => {
  it("a cache directory that cannot exist (its parent is a file): get → miss, set/delete → ERR_CACHE, degraded", async () => {
    const parent = await tempDir();
    const file = join(parent, "not-a-dir");
    await writeFile(file, "x");
    const errors: BlobError[] = [];
    const cache = await openCache({ dir: join(file, "cache"), onError: (error) => errors.push(error) });
    expect(cache.degraded).toBe(true);
    expect(await cache.get("k")).toBeUndefined();
    expect(await cache.has("k")).toBe(false);
    expect(await cache.getStream("k")).toBeUndefined();
    const setError = await rejection(cache.set("k", bytes(10, 1)));
    expect(isBlobError(setError, "ERR_CACHE")).toBe(true);
    expect((setError as BlobError).subject).toBe("k");
    expect(isBlobError(await rejection(cache.setStream("k", streamOf([bytes(1, 1)]))), "ERR_CACHE")).toBe(
      true,
    );
    expect(isBlobError(await rejection(cache.delete("k")), "ERR_CACHE")).toBe(true);
    expect(isBlobError(await rejection(cache.prune(0)), "ERR_CACHE")).toBe(true);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((error) => error.code === "ERR_CACHE")).toBe(true);
  });

  it("the directory replaced by a regular file while open: misses and ERR_CACHE; recovers when it is back", async () => {
    const dir = await tempDir();
    const cache = await openCache({ dir });
    await cache.set("k", bytes(10, 1));
    await rm(dir, { recursive: true });
    await writeFile(dir, "not a directory");
    expect(await cache.get("k")).toBeUndefined();
    expect(isBlobError(await rejection(cache.set("k", bytes(10, 2))), "ERR_CACHE")).toBe(true);
    expect(cache.degraded).toBe(true);
    await rm(dir);
    await cache.set("k", bytes(10, 3)); // directories are recreated on demand
    expect(cache.degraded).toBe(false);
    expect(await cache.get("k")).toEqual(bytes(10, 3));
  });

  it.skipIf(process.getuid?.() === 0)(
    "a read-only directory (chmod 0555): set → ERR_CACHE, get of existing entries still hits",
    async () => {
      const dir = await tempDir();
      const cache = await openCache({ dir });
      await cache.set("k", bytes(10, 1));
      const shard = join(cache.entryPath("k"), "..");
      await chmod(shard, 0o555);
      await chmod(dir, 0o555);
      try {
        expect(isBlobError(await rejection(cache.set("k", bytes(10, 2))), "ERR_CACHE")).toBe(true);
        expect(isBlobError(await rejection(cache.set("other", bytes(10, 2))), "ERR_CACHE")).toBe(true);
        expect(cache.degraded).toBe(true);
        expect(await cache.get("k")).toEqual(bytes(10, 1));
      } finally {
        await chmod(dir, 0o755);
        await chmod(shard, 0o755);
      }
    },
  );

  it("an unreadable entry (a directory where a file should be) is a miss and reported", async () => {
    const errors: BlobError[] = [];
    const cache = await openCache({ dir: await tempDir(), onError: (error) => errors.push(error) });
    await mkdir(cache.entryPath("k"), { recursive: true });
    expect(await cache.get("k")).toBeUndefined();
    expect(errors.map((error) => error.code)).toEqual(["ERR_CACHE"]);
    expect(cache.degraded).toBe(true);
  });

  it("a throwing onError listener does not break operations", async () => {
    const cache = await openCache({
      dir: await tempDir(),
      onError: () => {
        throw new Error("listener");
      },
    });
    await mkdir(cache.entryPath("k"), { recursive: true });
    expect(await cache.get("k")).toBeUndefined();
  });
});

describe("DiskCache abort and close", () => {
  it("every operation rejects with signal.reason when already aborted", async () => {
    const cache = await openCache({ dir: await tempDir() });
    const reason = { custom: true };
    const signal = AbortSignal.abort(reason);
    expect(await rejection(cache.get("k", { signal }))).toBe(reason);
    expect(await rejection(cache.getStream("k", { signal }))).toBe(reason);
    expect(await rejection(cache.has("k", { signal }))).toBe(reason);
    expect(await rejection(cache.setStream("k", streamOf([]), { signal }))).toBe(reason);
    expect(await rejection(cache.sizeBytes({ signal }))).toBe(reason);
    expect(await rejection(cache.prune(0, { signal }))).toBe(reason);
  });

  it("Symbol.asyncDispose closes", async () => {
    const cache = await openCache({ dir: await tempDir() });
    await cache[Symbol.asyncDispose]();
    expect(isBlobError(await rejection(cache.get("k")), "ERR_CLOSED")).toBe(true);
  });
});

describe("DiskCache synchronous reads", () => {
  /** Occupies every thread-pool thread for a while; resolves when the first one is free again. */
  function blockThreadPool(): Promise<void> {
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    return Promise.race(
      Array.from(
        { length: threads },
        () =>
          new Promise<void>((resolve, reject) =>
            pbkdf2("x", "salt", 1_000_000, 32, "sha256", (error) => (error ? reject(error) : resolve())),
          ),
      ),
    );
  }

  it("a small hit does not wait for the thread pool (syncReads default); with syncReads false it does", async () => {
    const value = bytes(4096, 9);
    for (const syncReads of [true, false]) {
      const cache = await openCache({ dir: await tempDir(), syncReads });
      await cache.set("k", value);
      const order: string[] = [];
      const blocked = blockThreadPool().then(() => order.push("a pool thread free"));
      const hit = cache.get("k").then((got) => {
        expect(got).toEqual(value);
        order.push("hit");
      });
      await Promise.all([blocked, hit]);
      expect(order).toEqual(syncReads ? ["hit", "a pool thread free"] : ["a pool thread free", "hit"]);
    }
  });

  it("a large hit reads its first 64 KiB synchronously and the rest on the thread pool, intact", async () => {
    const cache = await openCache({ dir: await tempDir() });
    for (const size of [64 * 1024 - DISK_CACHE_HEADER_BYTES, 64 * 1024, 3 * 1024 * 1024 + 5]) {
      await cache.set(`v${size}`, bytes(size, size));
      expect(await cache.get(`v${size}`)).toEqual(bytes(size, size));
    }
  });

  it.each([true, false])(
    "a read that fails is a reported miss and leaks no descriptor (syncReads %s)",
    async (syncReads) => {
      const errors: BlobError[] = [];
      const cache = await openCache({ dir: await tempDir(), syncReads, onError: (e) => errors.push(e) });
      await cache.set("k", bytes(100, 1));
      const path = cache.entryPath("k");
      await rm(path);
      await mkdir(path); // opening a directory works, reading it fails (EISDIR)
      const fds = (await readdir("/proc/self/fd")).length;
      for (let i = 0; i < 20; i++) expect(await cache.get("k")).toBeUndefined();
      expect((await readdir("/proc/self/fd")).length).toBeLessThanOrEqual(fds);
      expect(errors.length).toBeGreaterThan(0);
      expect(errors[0]).toMatchObject({ code: "ERR_CACHE" });
    },
  );

  it("rejects a syncReads that is not a boolean", () => {
    expect(() => new DiskCache({ dir: "/tmp/x", syncReads: "yes" as unknown as boolean })).toThrow(
      /syncReads must be a boolean/,
    );
  });
});
