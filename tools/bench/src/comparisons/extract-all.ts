// Extract everything: blobkit pull + extract (registry, fresh Node process) vs `curl … | tar -xz` and
// `curl … | zstd -d | tar -x` of the same tree, on the large set and on the source-tree set. Peak RSS of
// every side (blobkit: its own `maxRSS`; pipelines: GNU time, the largest process of the pipeline).
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Context } from "../lib/context.ts";
import type { DatasetName } from "../lib/datasets.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { compareSides, MiB, medianOf, row, runChild, shWithRss } from "../lib/util.ts";

const TGZ = "curl | tar -xz";
const TZST = "curl | zstd -d | tar -x";

async function extractRows(ctx: Context, name: DatasetName): Promise<Result[]> {
  const ds = await ctx.dataset(name);
  const ref = await ctx.pushed(name);
  const tgz = ctx.url(await ctx.tarGz(name));
  const tzst = ctx.url(await ctx.tarZst(name));
  const dest = join(ctx.work, `extract-${name}`);
  const fresh = async () => {
    await rm(dest, { recursive: true, force: true });
    await mkdir(dest, { recursive: true });
  };
  const runs = name === "large" ? ctx.heavyRuns : ctx.runs;
  const out = await compareSides(
    [
      {
        name: "blobkit",
        before: fresh,
        run: async () => (await runChild("pull-extract", [ref, dest])).maxRssKiB,
      },
      {
        name: TGZ,
        before: fresh,
        run: () => shWithRss(`curl -sf '${tgz}' | tar -xzf - -C '${dest}'`, ctx.work),
      },
      {
        name: TZST,
        before: fresh,
        run: () => shWithRss(`curl -sf '${tzst}' | zstd -d -q | tar -xf - -C '${dest}'`, ctx.work),
      },
    ],
    runs,
    { nginx: ctx.nginx, warmup: name === "large" ? 0 : 1 },
  );
  await rm(dest, { recursive: true, force: true });
  const label = `extract everything, ${name} set (${ds.files.length} files, ${(ds.totalBytes / MiB).toFixed(0)} MiB)`;
  const m = (n: string, f: Parameters<typeof medianOf>[1]) => medianOf(out.get(n), f);
  const peers = (f: Parameters<typeof medianOf>[1]) => ({ [TGZ]: m(TGZ, f), [TZST]: m(TZST, f) });
  const rss = m("blobkit", (s) => s.rssKiB) / 1024;
  return [
    row({
      id: `extract-all.${name}`,
      metric: "time",
      unit: "ms",
      label,
      blobkit: m("blobkit", (s) => s.ms),
      peers: peers((s) => s.ms),
      runs,
      target: `≥ 1.5× ${TGZ}, ≥ 1.0× ${TZST}`,
      check: (_b, r) => (r[TGZ] ?? 0) >= 1.5 && (r[TZST] ?? 0) >= 1.0,
      note: "blobkit runs in a fresh Node process (startup included), like the pipelines",
    }),
    row({
      id: `extract-all.${name}`,
      metric: "requests",
      unit: "count",
      label,
      blobkit: m("blobkit", (s) => s.wire?.requests),
      peers: peers((s) => s.wire?.requests),
      runs,
    }),
    row({
      id: `extract-all.${name}`,
      metric: "bytes",
      unit: "B",
      label,
      blobkit: m("blobkit", (s) => s.wire?.bytesDown),
      peers: peers((s) => s.wire?.bytesDown),
      runs,
    }),
    row({
      id: `extract-all.${name}`,
      metric: "peak-rss",
      unit: "MiB",
      label,
      blobkit: rss,
      peers: peers((s) => (s.rssKiB === undefined ? undefined : s.rssKiB / 1024)),
      runs,
      target: "≤ 256 MiB",
      check: (b) => b <= 256,
    }),
  ];
}

export const extractAll: Comparison = {
  id: "extract-all",
  title: "extract everything: blobkit pull vs curl | tar -xz and curl | zstd -d | tar -x",
  async run(ctx) {
    return [...(await extractRows(ctx, "source")), ...(await extractRows(ctx, "large"))];
  },
};
