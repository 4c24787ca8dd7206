// One process of the multi-process stress test (src/multi-process.test.ts). Run with
// `node --conditions=source test/stress-worker.ts <dir> <maxBytes> <ops> <seed> [forever]`.
// Every value is derived from its key, so any read can be verified; prints a JSON summary on stdout.
import { DiskCache } from "../src/index.ts";
import { KEYS, streamOf, valueForKey } from "./stress-values.ts";

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

async function main(): Promise<void> {
  const [dir = "", maxBytesText = "", opsText = "", seedText = "", forever] = process.argv.slice(2);
  let seed = Number(seedText) >>> 0 || 1;
  const random = (max: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % max;
  };
  // pruneEvery 1: every write is followed by a scan that sees it, the strict multi-process bound.
  const cache = new DiskCache({ dir, maxBytes: Number(maxBytesText), pruneEvery: 1 });
  const stats = { gets: 0, hits: 0, corrupt: 0, sets: 0, errors: 0 };
  const ops = forever === "forever" ? Number.POSITIVE_INFINITY : Number(opsText);
  for (let i = 0; i < ops; i++) {
    const n = random(KEYS);
    const key = `k${n}`;
    const expected = valueForKey(n);
    const op = random(10);
    try {
      if (op < 5) {
        stats.gets++;
        const got = await cache.get(key);
        if (got !== undefined) {
          stats.hits++;
          if (!same(got, expected)) stats.corrupt++;
        }
      } else if (op < 6) {
        stats.gets++;
        const stream = await cache.getStream(key);
        if (stream !== undefined) {
          stats.hits++;
          const chunks: Uint8Array[] = [];
          for await (const chunk of stream) chunks.push(chunk);
          if (!same(Buffer.concat(chunks), expected)) stats.corrupt++;
        }
      } else if (op < 9) {
        stats.sets++;
        await cache.set(key, expected);
      } else {
        stats.sets++;
        const cut = random(expected.byteLength + 1);
        await cache.setStream(key, streamOf([expected.subarray(0, cut), expected.subarray(cut)]));
      }
    } catch (error) {
      stats.errors++;
      process.stderr.write(`${String(error)}\n`);
    }
  }
  await cache.close();
  process.stdout.write(`${JSON.stringify(stats)}\n`);
}

await main();
