// The index: bytes per entry (vs the zip central directory of the same tree), open + full validation
// (`ArchiveIndex.open`, vs zip.js listing the same entries from an in-memory zip), and path lookup
// (`index.find`, vs a JS `Map` built from the zip's entries) at 10 000 (source set) and 100 000 entries
// (many-small-files set). In-process, medians of repeated timings after warm-up.
import { readFile } from "node:fs/promises";
import { ArchiveIndex } from "@blobkit/core";
import { configure, Uint8ArrayReader, ZipReader } from "@zip.js/zip.js";
import type { Context } from "../lib/context.ts";
import type { DatasetName } from "../lib/datasets.ts";
import { prng } from "../lib/generate.ts";
import { zipCentralDirectorySize } from "../lib/readers.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { median, row, sample } from "../lib/util.ts";

configure({ useWebWorkers: false });

function timeMs(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** Mean ns per lookup of `lookups` probes (cycled), median over `reps` repetitions. */
function lookupNs(find: (p: string) => number, probes: string[], lookups: number, reps: number): number {
  const mask = probes.length;
  let found = 0;
  for (let i = 0; i < Math.min(lookups, 200_000); i++) found += find(probes[i % mask]!) >= 0 ? 1 : 0;
  const out: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    for (let i = 0; i < lookups; i++) found += find(probes[i % mask]!) >= 0 ? 1 : 0;
    out.push(((performance.now() - t) * 1e6) / lookups);
  }
  if (found === 0) throw new Error("lookups failed");
  return median(out);
}

async function indexRows(ctx: Context, name: DatasetName, target: boolean): Promise<Result[]> {
  const ds = await ctx.dataset(name);
  const { indexPath } = await ctx.blobkit(name);
  const zipPath = await ctx.zip(name);
  const bytes = new Uint8Array(await readFile(indexPath));
  const cd = await zipCentralDirectorySize(zipPath);
  const n = ds.files.length;
  const label = `index of the ${name} set (${n} entries)`;
  const reps = ctx.quick ? 15 : 31;

  // open + validate
  for (let i = 0; i < 10; i++) ArchiveIndex.open(bytes);
  const open = median(Array.from({ length: reps }, () => timeMs(() => ArchiveIndex.open(bytes))));
  // zip.js listing the entries of the zip, from memory (no I/O).
  const zipBytes = new Uint8Array(await readFile(zipPath));
  const zipList = async () => {
    const reader = new ZipReader(new Uint8ArrayReader(zipBytes));
    const entries = await reader.getEntries();
    await reader.close();
    return entries;
  };
  const entries = await zipList();
  const zipTimes: number[] = [];
  for (let i = 0; i < (ctx.quick ? 3 : 5); i++) {
    const t = performance.now();
    await zipList();
    zipTimes.push(performance.now() - t);
  }

  // lookups: 4 096 hot paths (as in docs/benchmarks.md), and every path in random order.
  const index = ArchiveIndex.open(bytes);
  const paths = ds.files.map((f) => f.path);
  const hot = sample(paths, 4096, prng(1));
  const all = sample(paths, paths.length, prng(2));
  const map = new Map(entries.map((e, i) => [e.filename, i]));
  const mapFind = (p: string) => map.get(p) ?? -1;
  const find = (p: string) => index.find(p);
  const lookups = ctx.quick ? 500_000 : 2_000_000;
  const lr = ctx.quick ? 3 : 5;
  const hotNs = lookupNs(find, hot, lookups, lr);
  const hotMap = lookupNs(mapFind, hot, lookups, lr);
  const allNs = lookupNs(find, all, lookups, lr);
  const allMap = lookupNs(mapFind, all, lookups, lr);

  const bpe = bytes.byteLength / n;
  const rows: Result[] = [
    row({
      id: `index.${name}`,
      metric: "bytes-per-entry",
      unit: "B",
      label,
      blobkit: bpe,
      peers: { "zip central directory": cd.size / cd.entries },
      runs: 1,
      target: "≤ 110 B (Go tool: 108)",
      check: (b) => b <= 110,
      note: `index ${bytes.byteLength} B; central directory ${cd.size} B for ${cd.entries} entries (incl. directories)`,
    }),
    row({
      id: `index.${name}`,
      metric: "open+validate",
      unit: "ms",
      label,
      blobkit: open,
      peers: { "zip.js getEntries (in memory)": median(zipTimes) },
      runs: reps,
      ...(target ? { target: "≤ 2 ms", check: (b: number) => b <= 2 } : {}),
    }),
    row({
      id: `index.${name}`,
      metric: "lookup (4 096 hot paths)",
      unit: "ns",
      label,
      blobkit: hotNs,
      peers: { "Map<path, entry>": hotMap },
      runs: lr,
      ...(name === "small" ? { target: "≤ 150 ns", check: (b: number) => b <= 150 } : {}),
    }),
    row({
      id: `index.${name}`,
      metric: "lookup (every path, random order)",
      unit: "ns",
      label,
      blobkit: allNs,
      peers: { "Map<path, entry>": allMap },
      runs: lr,
      ...(name === "small" ? { target: "≤ 150 ns", check: (b: number) => b <= 150 } : {}),
    }),
  ];
  return rows;
}

export const index: Comparison = {
  id: "index",
  title: "index: bytes per entry, open + validate, lookup at 10 000 and 100 000 entries",
  async run(ctx) {
    return [
      ...(await indexRows(ctx, "source", ctx.specs.source.files === 10_000)),
      ...(await indexRows(ctx, "small", false)),
    ];
  },
};
