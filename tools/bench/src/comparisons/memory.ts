// Memory while streaming one 64 MiB file out of the large archive: blobkit pull + `createReadStream`
// (fresh Node process, its own maxRSS) vs zip.js streaming the same entry over HTTP range. The peak RSS of
// whole-archive extraction and push is reported by extract-all and create-push.
import type { Context } from "../lib/context.ts";
import { LARGE_FILE_64M } from "../lib/datasets.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { compareSides, medianOf, row, runChild } from "../lib/util.ts";

export const memory: Comparison = {
  id: "memory",
  title: "peak RSS while streaming one 64 MiB file",
  async run(ctx: Context): Promise<Result[]> {
    const ref = await ctx.pushed("large");
    const zipUrl = ctx.url(await ctx.zip("large"));
    const bytes = new Map<string, number>();
    const child = (name: string, op: string, args: string[]) => async () => {
      const r = await runChild(op, args);
      bytes.set(name, r.bytes ?? 0);
      return r.maxRssKiB;
    };
    const out = await compareSides(
      [
        { name: "blobkit", run: child("blobkit", "stream", [ref, LARGE_FILE_64M]) },
        { name: "zip.js (HTTP range)", run: child("zip", "zip-stream", [zipUrl, LARGE_FILE_64M]) },
      ],
      ctx.heavyRuns,
      { nginx: ctx.nginx },
    );
    for (const [name, n] of bytes) if (n !== 64 * 2 ** 20) throw new Error(`${name} streamed ${n} bytes`);
    const label = "stream one 64 MiB file (incompressible) out of the large set, fresh process";
    const m = (n: string, f: Parameters<typeof medianOf>[1]) => medianOf(out.get(n), f);
    return [
      row({
        id: "memory.stream-64m",
        metric: "peak-rss",
        unit: "MiB",
        label,
        blobkit: m("blobkit", (s) => s.rssKiB) / 1024,
        peers: { "zip.js (HTTP range)": m("zip.js (HTTP range)", (s) => s.rssKiB) / 1024 },
        runs: ctx.heavyRuns,
      }),
      row({
        id: "memory.stream-64m",
        metric: "time",
        unit: "ms",
        label,
        blobkit: m("blobkit", (s) => s.ms),
        peers: { "zip.js (HTTP range)": m("zip.js (HTTP range)", (s) => s.ms) },
        runs: ctx.heavyRuns,
      }),
      row({
        id: "memory.stream-64m",
        metric: "requests",
        unit: "count",
        label,
        blobkit: m("blobkit", (s) => s.wire?.requests),
        peers: { "zip.js (HTTP range)": m("zip.js (HTTP range)", (s) => s.wire?.requests) },
        runs: ctx.heavyRuns,
      }),
    ];
  },
};
