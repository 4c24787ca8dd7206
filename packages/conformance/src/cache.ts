import type { Cache } from "@blobkit/core";
import { describe, expect, it } from "vitest";
import {
  abortReason,
  call,
  drain,
  expectBytes,
  expectCode,
  expectRejectsWith,
  patternBytes,
  sameBytes,
  sleep,
  streamOf,
} from "./util.ts";

/**
 * What a {@link describeCache} factory returns: a fresh, empty cache and optional test hooks.
 *
 * @public
 */
export interface CacheFixture {
  /** The cache under test, empty; the suite closes it after each test. */
  cache: Cache;
  /**
   * Optional: damages the stored entry of `key` behind the cache's back (flip bytes in its file, truncate
   * it, overwrite the Redis value…). Enables the corruption tests.
   */
  corrupt?: ((key: string) => Promise<void>) | undefined;
  /**
   * Optional: moves the cache's clock forward by `ms` (an injected clock, fake timers). Lets the TTL tests
   * run instantly; without it they wait for real (about a second).
   */
  advanceTime?: ((ms: number) => Promise<void> | void) | undefined;
  /** Called after each test (after `cache.close()`), e.g. to delete a temp directory. */
  cleanup?: (() => Promise<void> | void) | undefined;
}

/** Options of {@link describeCache}. @public */
export interface DescribeCacheOptions {
  /** Size of the "large value" test; 0 skips it. Default 1 MiB. */
  largeSize?: number | undefined;
  /** Number of concurrent writers of one key. Default 20. */
  writers?: number | undefined;
  /** Size of each concurrent writer's value. Default 64 KiB. */
  writerValueSize?: number | undefined;
  /** When the fixture has no `advanceTime`, test TTLs with real waits (about 1 s). Default true. */
  realTimeTtl?: boolean | undefined;
}

type Factory = () => Promise<CacheFixture> | CacheFixture;

/** Keys a naive backend (file names, URL paths, case-insensitive stores, length limits) tends to mangle. */
const UNUSUAL_KEYS: readonly string[] = [
  "plain",
  "with/slash/es",
  "/leading-slash",
  "trailing-slash/",
  "trailing-slash",
  "a//double",
  "a/double",
  "colon:separated:key",
  "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "block/1048576/7/file:/tmp/data.blob:123:456",
  ".",
  "..",
  "./dot",
  "dot",
  "../escape",
  "dir/../other",
  "other",
  "with space",
  "tab\tand\nnewline",
  "back\\slash",
  "percent%2Fencoded",
  "percent/encoded",
  "question?hash#amp&eq=",
  "ünïcödé-ключ-鍵-🔑",
  "k".repeat(200),
  `${"k".repeat(199)}l`,
];

/**
 * Registers a vitest suite (`describe` block named `Cache conformance: <name>`) that checks a {@link Cache}
 * implementation against the contract: misses, byte-exact round trips (all byte values, empty, large),
 * overwrite, delete, unusual keys, no aliasing, `has`/`sizeBytes`/`prune`/streams when implemented, TTLs
 * when `supportsTtl`, no torn values under concurrent writers, damaged entries, aborts and `close()`.
 * `factory` is called once per test and must return an empty cache.
 *
 * @public
 */
export function describeCache(name: string, factory: Factory, options: DescribeCacheOptions = {}): void {
  const largeSize = options.largeSize ?? 1024 * 1024;
  const writers = options.writers ?? 20;
  const writerValueSize = options.writerValueSize ?? 64 * 1024;
  const realTimeTtl = options.realTimeTtl ?? true;

  async function withCache(fn: (fixture: CacheFixture) => Promise<void>): Promise<void> {
    const fixture = await factory();
    try {
      await fn(fixture);
    } finally {
      try {
        await fixture.cache.close();
      } finally {
        await fixture.cleanup?.();
      }
    }
  }

  describe(`Cache conformance: ${name}`, () => {
    describe("get, set, delete", () => {
      it("get of a missing key resolves to undefined", async () => {
        await withCache(async ({ cache }) => {
          expect(await call("get", () => cache.get("missing"))).toBeUndefined();
        });
      });

      it("round-trips all 256 byte values", async () => {
        await withCache(async ({ cache }) => {
          const value = new Uint8Array(512);
          for (let i = 0; i < value.length; i++) value[i] = i & 0xff;
          value.subarray(256).reverse();
          await call("set", () => cache.set("bytes", value));
          expectBytes(await cache.get("bytes"), value, "get");
        });
      });

      it("round-trips an empty value", async () => {
        await withCache(async ({ cache }) => {
          await cache.set("empty", new Uint8Array(0));
          const got = await cache.get("empty");
          expect(got, "an empty value must read back as an empty array, not a miss").not.toBeUndefined();
          expectBytes(got, new Uint8Array(0), "get");
        });
      });

      it("round-trips a value that is a view into a larger buffer", async () => {
        await withCache(async ({ cache }) => {
          const backing = patternBytes(4096, 7);
          const view = backing.subarray(1000, 1100);
          await cache.set("view", view);
          expectBytes(await cache.get("view"), backing.slice(1000, 1100), "get");
        });
      });

      it.skipIf(largeSize === 0)(`round-trips a ${largeSize}-byte value`, async () => {
        await withCache(async ({ cache }) => {
          const value = patternBytes(largeSize, 99);
          await cache.set("large", value);
          expectBytes(await cache.get("large"), value, "get");
        });
      });

      it("set overwrites an existing value", async () => {
        await withCache(async ({ cache }) => {
          await cache.set("k", patternBytes(1000, 1));
          await cache.set("k", patternBytes(1000, 2));
          expectBytes(await cache.get("k"), patternBytes(1000, 2), "get after overwrite");
        });
      });

      it("overwriting with a shorter value leaves exactly the shorter value", async () => {
        await withCache(async ({ cache }) => {
          await cache.set("k", patternBytes(5000, 1));
          await cache.set("k", patternBytes(10, 2));
          expectBytes(await cache.get("k"), patternBytes(10, 2), "get after shorter overwrite");
          await cache.set("k", new Uint8Array(0));
          expectBytes(await cache.get("k"), new Uint8Array(0), "get after empty overwrite");
        });
      });

      it("delete removes a value and keys stay independent", async () => {
        await withCache(async ({ cache }) => {
          await cache.set("a", patternBytes(100, 1));
          await cache.set("b", patternBytes(100, 2));
          await call("delete", () => cache.delete("a"));
          expect(await cache.get("a")).toBeUndefined();
          expectBytes(await cache.get("b"), patternBytes(100, 2), "the other key");
          await cache.set("a", patternBytes(50, 3));
          expectBytes(await cache.get("a"), patternBytes(50, 3), "set again after delete");
        });
      });

      it("delete of an absent key resolves", async () => {
        await withCache(async ({ cache }) => {
          await call("delete", () => cache.delete("never-set"));
          await cache.set("gone", patternBytes(10, 1));
          await cache.delete("gone");
          await cache.delete("gone");
          expect(await cache.get("gone")).toBeUndefined();
        });
      });
    });

    describe("keys", () => {
      it("handles keys with unusual characters", async () => {
        await withCache(async ({ cache }) => {
          const values = UNUSUAL_KEYS.map((_, i) => patternBytes(64 + i, 1000 + i));
          for (const [i, key] of UNUSUAL_KEYS.entries()) await cache.set(key, values[i]!);
          for (const [i, key] of UNUSUAL_KEYS.entries()) {
            expectBytes(await cache.get(key), values[i]!, `get(${JSON.stringify(key)})`);
          }
          await cache.delete("..");
          expect(await cache.get("..")).toBeUndefined();
          expectBytes(
            await cache.get("."),
            values[UNUSUAL_KEYS.indexOf(".")]!,
            "get('.') after delete('..')",
          );
        });
      });

      it("keys differing only in case or by a prefix are distinct", async () => {
        await withCache(async ({ cache }) => {
          const keys = ["Key", "key", "KEY", "ke", "key/", "key/sub"];
          for (const [i, key] of keys.entries()) await cache.set(key, patternBytes(32, 500 + i));
          for (const [i, key] of keys.entries()) {
            expectBytes(await cache.get(key), patternBytes(32, 500 + i), `get(${JSON.stringify(key)})`);
          }
        });
      });
    });

    describe("no aliasing", () => {
      it("mutating the array passed to set() does not change the stored value", async () => {
        await withCache(async ({ cache }) => {
          const value = patternBytes(256, 5);
          const original = value.slice();
          await cache.set("k", value);
          value.fill(0);
          expectBytes(await cache.get("k"), original, "get after mutating the caller's array");
        });
      });

      it("mutating a returned array does not change the stored value", async () => {
        await withCache(async ({ cache }) => {
          const value = patternBytes(256, 6);
          await cache.set("k", value.slice());
          const first = await cache.get("k");
          first?.fill(0xee);
          expectBytes(await cache.get("k"), value, "get after mutating a returned array");
        });
      });
    });

    describe("optional operations", () => {
      it("has() reflects set and delete", async (ctx) => {
        await withCache(async ({ cache }) => {
          if (typeof cache.has !== "function") ctx.skip("the cache has no has()");
          expect(await call("has", () => cache.has!("k"))).toBe(false);
          await cache.set("k", patternBytes(10, 1));
          expect(await cache.has!("k")).toBe(true);
          await cache.set("empty", new Uint8Array(0));
          expect(await cache.has!("empty")).toBe(true);
          await cache.delete("k");
          expect(await cache.has!("k")).toBe(false);
        });
      });

      it("sizeBytes() counts at least the stored value bytes and shrinks on delete", async (ctx) => {
        await withCache(async ({ cache }) => {
          if (typeof cache.sizeBytes !== "function") ctx.skip("the cache has no sizeBytes()");
          const empty = await call("sizeBytes", () => cache.sizeBytes!());
          expect(Number.isSafeInteger(empty) && empty >= 0, `sizeBytes() = ${empty}`).toBe(true);
          await cache.set("a", patternBytes(10_000, 1));
          await cache.set("b", patternBytes(20_000, 2));
          const full = await cache.sizeBytes!();
          expect(full).toBeGreaterThanOrEqual(30_000);
          await cache.delete("b");
          expect(await cache.sizeBytes!()).toBeLessThan(full);
        });
      });

      it("prune(0) evicts every entry and reports the bytes freed", async (ctx) => {
        await withCache(async ({ cache }) => {
          if (typeof cache.prune !== "function") ctx.skip("the cache has no prune()");
          await cache.set("a", patternBytes(10_000, 1));
          await cache.set("b", patternBytes(20_000, 2));
          const freed = await call("prune", () => cache.prune!(0));
          expect(freed).toBeGreaterThanOrEqual(30_000);
          expect(await cache.get("a")).toBeUndefined();
          expect(await cache.get("b")).toBeUndefined();
          if (typeof cache.sizeBytes === "function") expect(await cache.sizeBytes()).toBe(0);
        });
      });

      it("prune() above the current size evicts nothing", async (ctx) => {
        await withCache(async ({ cache }) => {
          if (typeof cache.prune !== "function") ctx.skip("the cache has no prune()");
          await cache.set("a", patternBytes(1000, 1));
          expect(await cache.prune!(Number.MAX_SAFE_INTEGER)).toBe(0);
          expectBytes(await cache.get("a"), patternBytes(1000, 1), "get after prune(MAX)");
        });
      });

      it("setStream()/getStream() round-trip; a failed setStream() stores nothing", async (ctx) => {
        await withCache(async ({ cache }) => {
          if (typeof cache.getStream !== "function" || typeof cache.setStream !== "function") {
            ctx.skip("the cache has no getStream()/setStream()");
          }
          expect(await cache.getStream!("missing")).toBeUndefined();
          const value = patternBytes(300_000, 8);
          const chunks = [value.subarray(0, 1), value.subarray(1, 100_000), value.subarray(100_000)];
          await cache.setStream!("s", streamOf(chunks));
          expectBytes(await cache.get("s"), value, "get after setStream");
          const stream = await cache.getStream!("s");
          expect(stream).toBeDefined();
          expectBytes(await drain(stream!), value, "getStream");
          const failure = new Error("source failed");
          await expect(
            cache.setStream!("t", streamOf([value.subarray(0, 1000)], failure)),
          ).rejects.toBeDefined();
          expect(await cache.get("t"), "a failed setStream() must leave nothing visible").toBeUndefined();
        });
      });
    });

    describe("TTL", () => {
      it("set() with ttlMs stores the value (whether or not TTLs are supported)", async () => {
        await withCache(async ({ cache }) => {
          expect(typeof cache.supportsTtl).toBe("boolean");
          await cache.set("t", patternBytes(10, 1), { ttlMs: 60_000 });
          expectBytes(await cache.get("t"), patternBytes(10, 1), "get right after set with ttlMs");
        });
      });

      it("entries expire after their TTL; entries without one do not", async (ctx) => {
        await withCache(async ({ cache, advanceTime }) => {
          if (!cache.supportsTtl) ctx.skip("supportsTtl is false");
          if (advanceTime === undefined && !realTimeTtl)
            ctx.skip("no advanceTime() and realTimeTtl is false");
          const ttl = advanceTime === undefined ? 300 : 10_000;
          const wait = async (ms: number) => (advanceTime === undefined ? sleep(ms) : advanceTime(ms));
          await cache.set("ttl", patternBytes(10, 1), { ttlMs: ttl });
          await cache.set("no-ttl", patternBytes(10, 2));
          await cache.set("ttl-then-plain", patternBytes(10, 3), { ttlMs: ttl });
          await cache.set("ttl-then-plain", patternBytes(10, 4));
          await cache.set("ttl-long", patternBytes(10, 5), { ttlMs: ttl * 100 });
          if (advanceTime !== undefined) {
            await wait(ttl / 2);
            expectBytes(await cache.get("ttl"), patternBytes(10, 1), "get before the TTL elapsed");
          }
          await wait(advanceTime === undefined ? ttl + 900 : ttl);
          expect(await cache.get("ttl"), "an entry must expire after its TTL").toBeUndefined();
          if (typeof cache.has === "function") expect(await cache.has("ttl")).toBe(false);
          expectBytes(await cache.get("no-ttl"), patternBytes(10, 2), "an entry without TTL");
          expectBytes(
            await cache.get("ttl-then-plain"),
            patternBytes(10, 4),
            "an entry whose TTL a set removed",
          );
          expectBytes(await cache.get("ttl-long"), patternBytes(10, 5), "an entry with a longer TTL");
        });
      });
    });

    describe("concurrency", () => {
      const values = Array.from({ length: writers }, (_, i) => patternBytes(writerValueSize, 0xc0de + i));
      const describeMatch = (got: Uint8Array | undefined): string =>
        got === undefined ? "undefined" : `${got.length} bytes matching no writer's value (torn write?)`;

      it(`${writers} concurrent sets of one key leave one whole value`, async () => {
        await withCache(async ({ cache }) => {
          await Promise.all(values.map((v) => cache.set("contended", v)));
          const got = await cache.get("contended");
          expect(
            values.some((v) => sameBytes(got, v)),
            `final value: ${describeMatch(got)}`,
          ).toBe(true);
        });
      });

      it("gets during concurrent sets see a whole value or undefined", async () => {
        await withCache(async ({ cache }) => {
          const seen: (Uint8Array | undefined)[] = [];
          // Interleave a get after every set, then keep polling (yielding to timers and I/O) until the writers
          // are done, so slow backends are read mid-write too.
          const interleaved = values.flatMap((v) => [
            cache.set("contended", v),
            cache.get("contended").then((got) => {
              seen.push(got);
            }),
          ]);
          let done = false;
          const all = Promise.all(interleaved).finally(() => {
            done = true;
          });
          for (let i = 0; !done && i < 10_000; i++) {
            seen.push(await cache.get("contended"));
            await new Promise((resolve) => setImmediate(resolve));
          }
          await all;
          seen.push(await cache.get("contended"));
          for (const got of seen) {
            if (got === undefined) continue;
            expect(
              values.some((v) => sameBytes(got, v)),
              `a concurrent get saw ${describeMatch(got)}`,
            ).toBe(true);
          }
        });
      });
    });

    describe("damaged entries", () => {
      it("a corrupted entry reads as a miss or the original value, never other bytes", async (ctx) => {
        await withCache(async ({ cache, corrupt }) => {
          if (corrupt === undefined) ctx.skip("the fixture has no corrupt()");
          const value = patternBytes(4096, 77);
          await cache.set("victim", value);
          await cache.set("bystander", patternBytes(100, 78));
          await corrupt!("victim");
          let got: Uint8Array | undefined;
          try {
            got = await cache.get("victim");
          } catch (error) {
            expect.fail(`get() of a damaged entry must not throw (read it as a miss): ${String(error)}`);
          }
          if (got !== undefined) expectBytes(got, value, "get of a damaged entry");
          expectBytes(await cache.get("bystander"), patternBytes(100, 78), "an undamaged entry");
        });
      });

      it("a corrupted entry can be replaced by a new set()", async (ctx) => {
        await withCache(async ({ cache, corrupt }) => {
          if (corrupt === undefined) ctx.skip("the fixture has no corrupt()");
          await cache.set("victim", patternBytes(4096, 77));
          await corrupt!("victim");
          await cache.get("victim").catch(() => undefined);
          await cache.set("victim", patternBytes(2048, 79));
          expectBytes(await cache.get("victim"), patternBytes(2048, 79), "get after re-set");
        });
      });
    });

    describe("abort", () => {
      it("operations with an already-aborted signal reject with signal.reason", async () => {
        await withCache(async ({ cache }) => {
          const controller = new AbortController();
          const reason = abortReason("cache");
          controller.abort(reason);
          const signal = controller.signal;
          await expectRejectsWith(
            call("get", () => cache.get("k", { signal })),
            reason,
            "get",
          );
          await expectRejectsWith(
            call("set", () => cache.set("k", new Uint8Array(1), { signal })),
            reason,
            "set",
          );
          await expectRejectsWith(
            call("delete", () => cache.delete("k", { signal })),
            reason,
            "delete",
          );
        });
      });
    });

    describe("close()", () => {
      it("close() is idempotent", async () => {
        await withCache(async ({ cache }) => {
          await cache.close();
          await cache.close();
          await Promise.all([cache.close(), cache.close()]);
        });
      });

      it("operations after close() reject with ERR_CLOSED", async () => {
        await withCache(async ({ cache }) => {
          await cache.set("k", patternBytes(10, 1));
          await cache.close();
          await expectCode(
            call("get", () => cache.get("k")),
            "ERR_CLOSED",
            "get after close()",
          );
          await expectCode(
            call("set", () => cache.set("k", new Uint8Array(1))),
            "ERR_CLOSED",
            "set after close()",
          );
          await expectCode(
            call("delete", () => cache.delete("k")),
            "ERR_CLOSED",
            "delete after close()",
          );
          if (typeof cache.has === "function") {
            await expectCode(
              call("has", () => cache.has!("k")),
              "ERR_CLOSED",
              "has after close()",
            );
          }
          if (typeof cache.sizeBytes === "function") {
            await expectCode(
              call("sizeBytes", () => cache.sizeBytes!()),
              "ERR_CLOSED",
              "sizeBytes after close()",
            );
          }
          if (typeof cache.prune === "function") {
            await expectCode(
              call("prune", () => cache.prune!(0)),
              "ERR_CLOSED",
              "prune after close()",
            );
          }
        });
      });
    });
  });
}
