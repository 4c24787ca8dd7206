import type { ByteSource } from "@blobkit/core";
import { describe, expect, it } from "vitest";
import {
  abortReason,
  call,
  drain,
  expectBytes,
  expectCode,
  expectRejectsWith,
  patternBytes,
  randomInts,
} from "./util.ts";

/**
 * What a {@link describeByteSource} factory returns: the source under test and the bytes it must hold.
 *
 * @public
 */
export interface ByteSourceFixture {
  /** The source under test; the suite closes it after each test. */
  source: ByteSource;
  /**
   * The exact bytes the source holds. Usually the `bytes` the factory received; a factory over fixed content
   * (a remote object it cannot write) returns that content instead, and the suite adapts.
   */
  expected: Uint8Array;
  /** Called after each test (after `source.close()`), e.g. to delete a temp file or stop a server. */
  cleanup?: (() => Promise<void> | void) | undefined;
}

/** Options of {@link describeByteSource}. @public */
export interface DescribeByteSourceOptions {
  /** Size of the bytes most tests use. Default 100 003 (not a power of two, spans several 4 KiB pages). */
  size?: number | undefined;
  /** Size of the "large read" tests; 0 skips them. Default 8 MiB. */
  largeSize?: number | undefined;
  /**
   * `true`: the source must have `stream()` and it is tested; `false`: `stream()` is not tested; default:
   * tested when the source has it.
   */
  streams?: boolean | undefined;
}

type Factory = (bytes: Uint8Array) => Promise<ByteSourceFixture> | ByteSourceFixture;

/**
 * Registers a vitest suite (`describe` block named `ByteSource conformance: <name>`) that checks a
 * {@link ByteSource} implementation against the contract: sizes, ranged reads at boundaries, out-of-range and
 * invalid arguments, concurrency, large reads, `stream()`, aborts, independence of returned arrays and
 * `close()`. `factory` is called once per test with the bytes the source must hold.
 *
 * @public
 */
export function describeByteSource(
  name: string,
  factory: Factory,
  options: DescribeByteSourceOptions = {},
): void {
  const size = options.size ?? 100_003;
  const largeSize = options.largeSize ?? 8 * 1024 * 1024;
  const bytes = patternBytes(size, 0x5eed);

  /** Runs `fn` with a fresh fixture, then closes the source and cleans up whatever happens. */
  async function withSource(
    content: Uint8Array,
    fn: (source: ByteSource, expected: Uint8Array) => Promise<void>,
  ): Promise<void> {
    const fixture = await factory(content.slice());
    try {
      // Snapshot the expectation: a source that hands out views of its own buffer must not be able to
      // change what it is compared with.
      await fn(fixture.source, fixture.expected.slice());
    } finally {
      try {
        await fixture.source.close();
      } finally {
        await fixture.cleanup?.();
      }
    }
  }

  /** A test that needs `stream()`: skipped when the source has none (unless `streams: true`). */
  function streamTest(title: string, fn: (source: ByteSource, expected: Uint8Array) => Promise<void>): void {
    it.skipIf(options.streams === false)(title, async (ctx) => {
      await withSource(bytes, async (source, expected) => {
        if (typeof source.stream !== "function") {
          if (options.streams === true)
            expect.fail("the source has no stream() but `streams: true` was given");
          ctx.skip("the source has no stream()");
        }
        await fn(source, expected);
      });
    });
  }

  /** `source.stream(...)` read to the end; a synchronous throw counts as the stream erroring. */
  async function streamAll(source: ByteSource, offset: number, length: number, signal?: AbortSignal) {
    const stream = source.stream!(offset, length, { signal });
    return drain(stream);
  }

  function asyncStreamAll(source: ByteSource, offset: number, length: number, signal?: AbortSignal) {
    return (async () => streamAll(source, offset, length, signal))();
  }

  describe(`ByteSource conformance: ${name}`, () => {
    describe("identity and size", () => {
      it("size() resolves to the number of bytes", async () => {
        await withSource(bytes, async (source, expected) => {
          expect(await call("size()", () => source.size())).toBe(expected.length);
          expect(await source.size(), "size() must be stable").toBe(expected.length);
        });
      });

      it("id is a non-empty, stable string", async () => {
        await withSource(bytes, async (source) => {
          expect(typeof source.id).toBe("string");
          expect(source.id.length).toBeGreaterThan(0);
          const first = source.id;
          await source.read(0, 1);
          expect(source.id).toBe(first);
        });
      });

      it("an empty source has size 0 and reads 0 bytes at offset 0", async () => {
        await withSource(new Uint8Array(0), async (source, expected) => {
          expect(await source.size()).toBe(expected.length);
          if (expected.length !== 0) return; // a fixed-content factory cannot be empty
          expectBytes(await source.read(0, 0), expected, "read(0, 0)");
          await expectCode(
            call("read(0, 1)", () => source.read(0, 1)),
            "ERR_OUT_OF_RANGE",
            "read(0, 1)",
          );
        });
      });
    });

    describe("ranged reads", () => {
      it("reads the whole source in one read", async () => {
        await withSource(bytes, async (source, expected) => {
          expectBytes(await call("read", () => source.read(0, expected.length)), expected, "read(0, size)");
        });
      });

      it("reads the first byte", async () => {
        await withSource(bytes, async (source, expected) => {
          expectBytes(await source.read(0, 1), expected.subarray(0, 1), "read(0, 1)");
        });
      });

      it("reads the last byte", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          expectBytes(await source.read(n - 1, 1), expected.subarray(n - 1), `read(${n - 1}, 1)`);
        });
      });

      it("reads a range ending exactly at the end", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          const start = Math.max(0, n - 4097);
          expectBytes(
            await source.read(start, n - start),
            expected.subarray(start),
            `read(${start}, ${n - start})`,
          );
        });
      });

      it("reads 0 bytes at the end and in the middle", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          for (const offset of [0, n >> 1, n]) {
            expectBytes(await source.read(offset, 0), new Uint8Array(0), `read(${offset}, 0)`);
          }
        });
      });

      it("reads at boundary offsets and lengths", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          const offsets = [0, 1, 2, 511, 512, 513, 4095, 4096, 4097, 65535, 65536, 65537, n - 2, n - 1, n];
          const lengths = [0, 1, 2, 3, 511, 4096, 4097, 65536];
          for (const offset of new Set(offsets.filter((o) => o >= 0 && o <= n))) {
            for (const length of lengths) {
              if (offset + length > n) continue;
              const got = await source.read(offset, length);
              expectBytes(got, expected.subarray(offset, offset + length), `read(${offset}, ${length})`);
            }
          }
        });
      });
    });

    describe("out-of-range reads", () => {
      it("rejects a read starting past the end with ERR_OUT_OF_RANGE", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          await expectCode(
            call("read", () => source.read(n + 1, 1)),
            "ERR_OUT_OF_RANGE",
            `read(${n + 1}, 1)`,
          );
          await expectCode(
            call("read", () => source.read(n + 1, 0)),
            "ERR_OUT_OF_RANGE",
            `read(${n + 1}, 0)`,
          );
          await expectCode(
            call("read", () => source.read(n * 4, 10)),
            "ERR_OUT_OF_RANGE",
            `read(${n * 4}, 10)`,
          );
        });
      });

      it("rejects a read ending one byte past the end with ERR_OUT_OF_RANGE", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          await expectCode(
            call("read", () => source.read(n - 1, 2)),
            "ERR_OUT_OF_RANGE",
            `read(${n - 1}, 2)`,
          );
          await expectCode(
            call("read", () => source.read(n, 1)),
            "ERR_OUT_OF_RANGE",
            `read(${n}, 1)`,
          );
        });
      });

      it("rejects a read of size + 1 bytes at offset 0 with ERR_OUT_OF_RANGE", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          await expectCode(
            call("read", () => source.read(0, n + 1)),
            "ERR_OUT_OF_RANGE",
            `read(0, ${n + 1})`,
          );
        });
      });
    });

    describe("invalid arguments", () => {
      const cases: [string, number, number][] = [
        ["a negative offset", -1, 1],
        ["a negative length", 0, -1],
        ["a NaN offset", Number.NaN, 1],
        ["a NaN length", 0, Number.NaN],
        ["a non-integer offset", 1.5, 1],
        ["a non-integer length", 0, 2.5],
        ["an infinite length", 0, Number.POSITIVE_INFINITY],
      ];
      for (const [what, offset, length] of cases) {
        it(`rejects ${what} with ERR_INVALID_ARGUMENT`, async () => {
          await withSource(bytes, async (source) => {
            await expectCode(
              call("read", () => source.read(offset, length)),
              "ERR_INVALID_ARGUMENT",
              `read(${offset}, ${length})`,
            );
          });
        });
      }
    });

    describe("concurrency", () => {
      it("50 concurrent random reads all return the right bytes", async () => {
        await withSource(bytes, async (source, expected) => {
          const n = expected.length;
          const random = randomInts(42);
          const ranges = Array.from({ length: 50 }, () => {
            const offset = random(n + 1);
            return [offset, random(Math.min(n - offset, 20_000) + 1)] as const;
          });
          const results = await Promise.all(ranges.map(([offset, length]) => source.read(offset, length)));
          results.forEach((got, i) => {
            const [offset, length] = ranges[i]!;
            expectBytes(
              got,
              expected.subarray(offset, offset + length),
              `concurrent read(${offset}, ${length})`,
            );
          });
        });
      });

      it("concurrent reads of the same range return equal, independent arrays", async () => {
        await withSource(bytes, async (source, expected) => {
          const want = expected.subarray(100, 1100);
          const results = await Promise.all(Array.from({ length: 10 }, () => source.read(100, 1000)));
          for (const got of results) expectBytes(got, want, "read(100, 1000)");
          results[0]!.fill(0);
          expectBytes(results[1], want, "a sibling result after mutating the first one");
        });
      });
    });

    describe("large reads", () => {
      it.skipIf(largeSize === 0)(`reads ${largeSize} bytes in one read`, async () => {
        await withSource(patternBytes(largeSize, 0x1a29e), async (source, expected) => {
          expectBytes(await source.read(0, expected.length), expected, `read(0, ${expected.length})`);
          const mid = expected.length >> 1;
          expectBytes(
            await source.read(mid, expected.length - mid),
            expected.subarray(mid),
            `read(${mid}, …end)`,
          );
        });
      });

      it.skipIf(largeSize === 0 || options.streams === false)(`streams ${largeSize} bytes`, async (ctx) => {
        await withSource(patternBytes(largeSize, 0x1a29e), async (source, expected) => {
          if (typeof source.stream !== "function") {
            if (options.streams === true)
              expect.fail("the source has no stream() but `streams: true` was given");
            ctx.skip("the source has no stream()");
          }
          expectBytes(await asyncStreamAll(source, 0, expected.length), expected, "stream(0, size)");
        });
      });
    });

    describe("stream()", () => {
      streamTest("stream() yields the same bytes as the whole source", async (source, expected) => {
        expectBytes(await asyncStreamAll(source, 0, expected.length), expected, "stream(0, size)");
      });

      streamTest(
        "stream() yields the bytes of an interior range and of the tail",
        async (source, expected) => {
          const n = expected.length;
          expectBytes(
            await asyncStreamAll(source, 7, n - 20),
            expected.subarray(7, n - 13),
            "stream(7, size - 20)",
          );
          expectBytes(
            await asyncStreamAll(source, n - 1, 1),
            expected.subarray(n - 1),
            "stream(size - 1, 1)",
          );
        },
      );

      streamTest("stream() of 0 bytes ends without data", async (source, expected) => {
        expectBytes(await asyncStreamAll(source, expected.length, 0), new Uint8Array(0), "stream(size, 0)");
      });

      streamTest("stream() past the end errors with ERR_OUT_OF_RANGE", async (source, expected) => {
        const n = expected.length;
        await expectCode(asyncStreamAll(source, n - 1, 2), "ERR_OUT_OF_RANGE", `stream(${n - 1}, 2)`);
        await expectCode(asyncStreamAll(source, n + 1, 0), "ERR_OUT_OF_RANGE", `stream(${n + 1}, 0)`);
      });

      streamTest("stream() with an aborted signal errors with signal.reason", async (source, expected) => {
        const controller = new AbortController();
        const reason = abortReason("stream-pre");
        controller.abort(reason);
        await expectRejectsWith(
          asyncStreamAll(source, 0, expected.length, controller.signal),
          reason,
          "stream()",
        );
      });

      streamTest("stream() aborted before it is read errors with signal.reason", async (source, expected) => {
        const controller = new AbortController();
        const reason = abortReason("stream-during");
        const stream = source.stream!(0, expected.length, { signal: controller.signal });
        controller.abort(reason);
        await expectRejectsWith(drain(stream), reason, "stream()");
      });
    });

    describe("abort", () => {
      it("a read with an already-aborted signal rejects with signal.reason", async () => {
        await withSource(bytes, async (source) => {
          const controller = new AbortController();
          const reason = abortReason("pre");
          controller.abort(reason);
          await expectRejectsWith(
            call("read", () => source.read(0, 10, { signal: controller.signal })),
            reason,
            "read",
          );
        });
      });

      it("a read whose signal is aborted while it is in flight rejects with signal.reason", async () => {
        await withSource(bytes, async (source, expected) => {
          const controller = new AbortController();
          const reason = abortReason("during");
          const pending = call("read", () => source.read(0, expected.length, { signal: controller.signal }));
          controller.abort(reason);
          await expectRejectsWith(pending, reason, "read");
        });
      });

      it("size() with an already-aborted signal rejects with signal.reason", async () => {
        await withSource(bytes, async (source) => {
          const controller = new AbortController();
          const reason = abortReason("size");
          controller.abort(reason);
          await expectRejectsWith(
            call("size", () => source.size({ signal: controller.signal })),
            reason,
            "size",
          );
        });
      });

      it("aborting one read does not disturb other reads", async () => {
        await withSource(bytes, async (source, expected) => {
          const controller = new AbortController();
          const aborted = source.read(0, 1000, { signal: controller.signal });
          const others = [source.read(0, 1000), source.read(500, 1000)];
          controller.abort(abortReason("one"));
          await aborted.catch(() => {});
          const [a, b] = await Promise.all(others);
          expectBytes(a, expected.subarray(0, 1000), "read(0, 1000)");
          expectBytes(b, expected.subarray(500, 1500), "read(500, 1000)");
          expectBytes(await source.read(0, 10), expected.subarray(0, 10), "a later read");
        });
      });
    });

    describe("returned arrays", () => {
      it("mutating a returned array does not change later reads", async () => {
        await withSource(bytes, async (source, expected) => {
          const first = await source.read(10, 100);
          first.fill(0xaa);
          first[0] = 0x55;
          expectBytes(await source.read(10, 100), expected.subarray(10, 110), "read(10, 100) after mutation");
          const whole = await source.read(0, expected.length);
          whole.reverse();
          expectBytes(await source.read(0, expected.length), expected, "read(0, size) after mutation");
        });
      });
    });

    describe("close()", () => {
      it("close() is idempotent", async () => {
        await withSource(bytes, async (source) => {
          await source.close();
          await source.close();
          await Promise.all([source.close(), source.close()]);
        });
      });

      it("read() after close() rejects with ERR_CLOSED", async () => {
        await withSource(bytes, async (source) => {
          await source.read(0, 1);
          await source.close();
          await expectCode(
            call("read", () => source.read(0, 1)),
            "ERR_CLOSED",
            "read(0, 1) after close()",
          );
        });
      });

      streamTest("stream() after close() errors with ERR_CLOSED", async (source) => {
        await source.close();
        await expectCode(asyncStreamAll(source, 0, 1), "ERR_CLOSED", "stream(0, 1) after close()");
      });
    });
  });
}
