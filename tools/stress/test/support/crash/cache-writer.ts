// Crash-consistency child (crash.test.ts): writes values derived from their keys into a DiskCache in <dir>,
// forever (set and setStream), until killed. Run with `node --conditions=source cache-writer.ts <dir> <seed>`.
import { DiskCache } from "@blobkit/cache-disk";
import { KEYS, streamOf, valueForKey } from "../../../../../packages/cache-disk/test/stress-values.ts";

const [dir = "", seedText = "1"] = process.argv.slice(2);
let seed = Number(seedText) >>> 0 || 1;
const random = (max: number): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % max;
};
const cache = await DiskCache.open({ dir, maxBytes: 40_000, pruneEvery: 4 });
process.stdout.write("start\n");
for (;;) {
  const n = random(KEYS);
  const value = valueForKey(n);
  if (random(3) === 0) {
    const cut = random(value.byteLength + 1);
    await cache.setStream(`k${n}`, streamOf([value.subarray(0, cut), value.subarray(cut)]));
  } else {
    await cache.set(`k${n}`, value);
  }
  if (random(8) === 0) await cache.delete(`k${random(KEYS)}`);
}
