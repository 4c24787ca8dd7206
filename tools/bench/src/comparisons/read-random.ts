// Read 100 random files of the source-tree set (warm readers: index / central directory in memory),
// 8 reads in flight on every side: blobkit (registry; HttpSource) vs zip.js over HTTP range.
import type { Context } from "../lib/context.ts";
import { prng } from "../lib/generate.ts";
import { assertSameAsTree, openHttp, openRegistry, openZip } from "../lib/readers.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { compareSides, medianOf, pool, row, sample } from "../lib/util.ts";

const COUNT = 100;
const CONCURRENCY = 8;

export const readRandom: Comparison = {
  id: "read-random",
  title: "read 100 random files of the source-tree set (8 in flight)",
  async run(ctx: Context): Promise<Result[]> {
    const ds = await ctx.dataset("source");
    const reg = await openRegistry(ctx, "source");
    const http = await openHttp(ctx, "source");
    const zip = await openZip(ctx, "source");
    // A different deterministic sample per run (so no run re-reads what an earlier one read).
    const rounds = ctx.runs + 1;
    const samples = Array.from({ length: rounds }, (_, i) =>
      sample(
        ds.files.map((f) => f.path),
        COUNT,
        prng(7000 + i),
      ),
    );
    for (const path of samples[0]!.slice(0, 5)) {
      await assertSameAsTree(ctx, "source", path, await reg.archive.readFile(path));
      await assertSameAsTree(ctx, "source", path, await zip.read(path));
    }
    const next = new Map<string, number>();
    const paths = (side: string) => {
      const i = next.get(side) ?? 0;
      next.set(side, i + 1);
      return samples[i % rounds]!;
    };
    const stored = (i: number) =>
      samples[i]!.reduce((n, p) => n + reg.archive.index.storedSize(reg.archive.index.find(p)), 0);
    const out = await compareSides(
      [
        {
          name: "blobkit",
          run: () =>
            pool(paths("blobkit"), CONCURRENCY, async (p) => {
              await reg.archive.readFile(p);
            }),
        },
        {
          name: "zip.js (HTTP range)",
          run: () =>
            pool(paths("zip"), CONCURRENCY, async (p) => {
              await zip.read(p);
            }),
        },
        {
          name: "blobkit (HttpSource)",
          run: () =>
            pool(paths("http"), CONCURRENCY, async (p) => {
              await http.archive.readFile(p);
            }),
        },
      ],
      ctx.runs,
      { nginx: ctx.nginx, warmup: 1 },
    );
    await reg.close();
    await http.close();
    await zip.close();
    const label = `read ${COUNT} random files of the ${ds.files.length}-file source set, ${CONCURRENCY} in flight, warm`;
    const m = (name: string, f: Parameters<typeof medianOf>[1]) => medianOf(out.get(name), f);
    const peers = (f: Parameters<typeof medianOf>[1]) => ({
      "zip.js (HTTP range)": m("zip.js (HTTP range)", f),
      "blobkit (HttpSource)": m("blobkit (HttpSource)", f),
    });
    return [
      row({
        id: "read-random",
        metric: "time",
        unit: "ms",
        label,
        blobkit: m("blobkit", (s) => s.ms),
        peers: peers((s) => s.ms),
        runs: ctx.runs,
      }),
      row({
        id: "read-random",
        metric: "requests",
        unit: "count",
        label,
        blobkit: m("blobkit", (s) => s.wire?.requests),
        peers: peers((s) => s.wire?.requests),
        runs: ctx.runs,
      }),
      row({
        id: "read-random",
        metric: "bytes",
        unit: "B",
        label,
        blobkit: m("blobkit", (s) => s.wire?.bytesDown),
        peers: peers((s) => s.wire?.bytesDown),
        runs: ctx.runs,
        note: `stored bytes of the 100 files (first sample): ${stored(1)} B`,
      }),
    ];
  },
};
