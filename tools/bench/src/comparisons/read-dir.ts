// Read one directory of 500 files (the source-tree set's `src/components/`) to disk, warm readers:
// blobkit `archive.extract(dest, { prefix })` (contiguous entries fetched as one span, capped at
// maxRequestBytes) vs zip.js reading the entries one by one (sequentially, as the issue states, and 8 in
// flight, the best a zip reader can do) and writing them.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DEFAULT_MAX_REQUEST_BYTES } from "@blobkit/core";
import type { Context } from "../lib/context.ts";
import { SOURCE_DIR_500 } from "../lib/datasets.ts";
import { assertSameAsTree, openHttp, openRegistry, openZip } from "../lib/readers.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { compareSides, medianOf, pool, row } from "../lib/util.ts";

export const readDir: Comparison = {
  id: "read-dir",
  title: "read one directory of 500 files to disk",
  async run(ctx: Context): Promise<Result[]> {
    const ds = await ctx.dataset("source");
    const reg = await openRegistry(ctx, "source");
    const http = await openHttp(ctx, "source");
    const zip = await openZip(ctx, "source");
    const prefix = `${SOURCE_DIR_500}/`;
    const paths = [...zip.entries.keys()].filter((p) => p.startsWith(prefix));
    const stats = await reg.archive.dirStats(SOURCE_DIR_500);
    if (paths.length !== 500 || stats.fileCount !== 500) throw new Error(`expected 500 files in ${prefix}`);
    const dest = join(ctx.work, "read-dir");
    const fresh = async () => {
      await rm(dest, { recursive: true, force: true });
      await mkdir(join(dest, SOURCE_DIR_500), { recursive: true });
    };
    const zipTo = (concurrency: number) => () =>
      pool(paths, concurrency, async (p) => {
        const bytes = await zip.read(p);
        await mkdir(dirname(join(dest, p)), { recursive: true });
        await writeFile(join(dest, p), bytes);
      });
    // Correctness, outside the timings.
    await fresh();
    await reg.archive.extract(dest, { prefix: SOURCE_DIR_500 });
    const { readFile } = await import("node:fs/promises");
    await assertSameAsTree(ctx, "source", paths[123]!, await readFile(join(dest, paths[123]!)));
    const out = await compareSides(
      [
        {
          name: "blobkit",
          before: fresh,
          run: () => reg.archive.extract(dest, { prefix: SOURCE_DIR_500 }),
        },
        { name: "zip.js one by one", before: fresh, run: zipTo(1) },
        { name: "zip.js 8 in flight", before: fresh, run: zipTo(8) },
        {
          name: "blobkit (HttpSource)",
          before: fresh,
          run: () => http.archive.extract(dest, { prefix: SOURCE_DIR_500 }),
        },
      ],
      ctx.runs,
      { nginx: ctx.nginx, warmup: 1 },
    );
    await rm(dest, { recursive: true, force: true });
    await reg.close();
    await http.close();
    await zip.close();
    const cap = Math.ceil(stats.storedSize / DEFAULT_MAX_REQUEST_BYTES);
    const label = `read the 500 files of ${SOURCE_DIR_500}/ (${(stats.storedSize / 1024).toFixed(0)} KiB stored) to disk, warm; ${ds.files.length}-file source set`;
    const m = (name: string, f: Parameters<typeof medianOf>[1]) => medianOf(out.get(name), f);
    const peers = (f: Parameters<typeof medianOf>[1]) => ({
      "zip.js one by one": m("zip.js one by one", f),
      "zip.js 8 in flight": m("zip.js 8 in flight", f),
      "blobkit (HttpSource)": m("blobkit (HttpSource)", f),
    });
    return [
      row({
        id: "read-dir",
        metric: "time",
        unit: "ms",
        label,
        blobkit: m("blobkit", (s) => s.ms),
        peers: peers((s) => s.ms),
        runs: ctx.runs,
        target: "≥ 5× zip.js one by one",
        check: (_b, r) => (r["zip.js one by one"] ?? 0) >= 5,
      }),
      row({
        id: "read-dir",
        metric: "requests",
        unit: "count",
        label,
        blobkit: m("blobkit", (s) => s.wire?.requests),
        peers: peers((s) => s.wire?.requests),
        runs: ctx.runs,
        target: `1 request or capped chunks (⌈stored ÷ 4 MiB⌉ = ${cap})`,
        check: (b) => b <= Math.max(1, cap),
      }),
      row({
        id: "read-dir",
        metric: "bytes",
        unit: "B",
        label,
        blobkit: m("blobkit", (s) => s.wire?.bytesDown),
        peers: peers((s) => s.wire?.bytesDown),
        runs: ctx.runs,
        note: `stored size of the directory: ${stats.storedSize} B`,
      }),
    ];
  },
};
