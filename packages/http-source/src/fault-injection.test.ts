import { isBlobError } from "@blobkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Fault, startServer, type TestServer } from "../test/server.ts";
import { HttpSource } from "./index.ts";

/** Deterministic PRNG (mulberry32) so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SIZE = 200_003;
const BYTES = (() => {
  const random = prng(7);
  return Uint8Array.from({ length: SIZE }, () => Math.floor(random() * 256));
})();
const READS = 700;
const BATCH = 16;
const DEADLINE_MS = 10_000;
const ALLOWED = new Set([
  "ERR_NETWORK",
  "ERR_INTEGRITY",
  "ERR_RANGE_NOT_SUPPORTED",
  "ERR_NOT_FOUND",
  "ERR_UNAUTHORIZED",
  "ERR_DENIED",
  "ERR_OUT_OF_RANGE",
  // A read redirected to the mirror while it sends no ETag cannot be proven to be the same object.
  "ERR_SOURCE_CHANGED",
]);

describe("HttpSource under fault injection", () => {
  let primary: TestServer;
  let mirror: TestServer;
  const random = prng(20261123);

  /** Misbehaves on about a third of the GETs (HEADs are left alone so the size is learned correctly). */
  function pickFault(method: string | undefined): Fault | undefined {
    if (method !== "GET") return undefined;
    const r = random();
    if (r > 0.36) return undefined;
    const faults: Fault[] = [
      { kind: "status", status: 500 },
      { kind: "status", status: 503 },
      { kind: "status", status: 429, retryAfter: "0" },
      { kind: "status", status: 408 },
      { kind: "status", status: 404 },
      { kind: "status", status: 403 },
      { kind: "ignore-range" },
      { kind: "wrong-range" },
      { kind: "wrong-total" },
      { kind: "short" },
      { kind: "long" },
      { kind: "destroy" },
      { kind: "reset" },
      { kind: "no-etag" },
      { kind: "redirect", to: mirror.origin },
    ];
    if (r < 0.005) return { kind: "stall" };
    if (r < 0.01) return { kind: "stall-body" };
    return faults[Math.floor(random() * faults.length)];
  }

  beforeAll(async () => {
    primary = await startServer(BYTES, { random: (req) => pickFault(req.method) });
    mirror = await startServer(BYTES, { random: (req) => pickFault(req.method) });
  });

  afterAll(async () => {
    await primary.close();
    await mirror.close();
  });

  const configs = [
    { name: "size given", sizeKnown: true, discard: false },
    { name: "size discovered", sizeKnown: false, discard: false },
    { name: "size given, onRangeIgnored: discard", sizeKnown: true, discard: true },
  ];
  for (const { name, sizeKnown, discard } of configs) {
    it(`${READS} random reads and streams (${name}) return the right bytes or a BlobError`, async () => {
      const source = new HttpSource(primary.url, {
        size: sizeKnown ? SIZE : undefined,
        retries: 3,
        retryDelayMs: 1,
        timeoutMs: 300,
        idleTimeoutMs: 300,
        redirectTtlMs: 0,
        maxConcurrency: 8,
        onRangeIgnored: discard ? "discard" : "error",
        maxDiscardBytes: SIZE,
      });
      const outcomes = { ok: 0, errors: new Map<string, number>() };
      try {
        if (!sizeKnown) expect(await source.size()).toBe(SIZE);
        for (let done = 0; done < READS; done += BATCH) {
          await Promise.all(
            Array.from({ length: BATCH }, async () => {
              const offset = Math.floor(random() * SIZE);
              const length = Math.min(SIZE - offset, Math.floor(random() * 40_000));
              const viaStream = random() < 0.25;
              const work = viaStream
                ? (async () => {
                    const chunks: Uint8Array[] = [];
                    for await (const chunk of source.stream(offset, length)) chunks.push(chunk);
                    return Buffer.concat(chunks);
                  })()
                : source.read(offset, length);
              let timer: NodeJS.Timeout | undefined;
              const deadline = new Promise<never>((_, reject) => {
                timer = setTimeout(() => reject(new Error(`read(${offset}, ${length}) hung`)), DEADLINE_MS);
              });
              try {
                const got = await Promise.race([work, deadline]);
                const want = BYTES.subarray(offset, offset + length);
                expect(Buffer.from(got).equals(Buffer.from(want)), `bytes of ${offset}+${length}`).toBe(true);
                outcomes.ok++;
              } catch (error) {
                if (!isBlobError(error)) throw error;
                expect(ALLOWED.has(error.code), `unexpected ${error.code}`).toBe(true);
                if (discard) expect(error.code).not.toBe("ERR_RANGE_NOT_SUPPORTED");
                outcomes.errors.set(error.code, (outcomes.errors.get(error.code) ?? 0) + 1);
              } finally {
                clearTimeout(timer);
              }
            }),
          );
        }
      } finally {
        await source.close();
      }
      // Most reads survive thanks to retries; the non-retryable faults surface as typed errors.
      expect(outcomes.ok).toBeGreaterThan(READS / 2);
      expect(outcomes.errors.size).toBeGreaterThan(0);
      expect(source.stats.retries).toBeGreaterThan(0);
    });
  }
});
