// Read one 64 KiB file from the large (1 GiB) archive, cold and warm:
// blobkit (registry pull; HttpSource) vs zip.js HttpRangeReader vs downloading the .tar.gz and extracting
// that one file. Cold: nothing open (blobkit fetches manifest + index, zip.js the EOCD + central directory).
// Warm: the archive / zip reader is already open (index / central directory in memory), the file is read again.
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Context } from "../lib/context.ts";
import { LARGE_FILE_64K } from "../lib/datasets.ts";
import { assertSameAsTree, openHttp, openRegistry, openZip } from "../lib/readers.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { compareSides, medianOf, row, type Sample, sh } from "../lib/util.ts";

const FILE = LARGE_FILE_64K;

function rows(
  id: string,
  label: string,
  samples: Map<string, Sample[]>,
  main: string,
  peers: string[],
  runs: number,
  targets: {
    time?: [string, (r: Record<string, number>) => boolean];
    wire?: (b: number, req: number) => boolean;
  },
  storedSize: number,
): Result[] {
  const pick = (name: string, f: (s: Sample) => number | undefined) => medianOf(samples.get(name), f);
  const peerValues = (f: (s: Sample) => number | undefined) =>
    Object.fromEntries(peers.map((p) => [p, pick(p, f)]));
  const requests = pick(main, (s) => s.wire?.requests);
  const bytes = pick(main, (s) => s.wire?.bytesDown);
  const out: Result[] = [
    row({
      id,
      metric: "time",
      unit: "ms",
      label,
      blobkit: pick(main, (s) => s.ms),
      peers: peerValues((s) => s.ms),
      runs,
      ...(targets.time ? { target: targets.time[0], check: (_b, r) => targets.time![1](r) } : {}),
    }),
    row({
      id,
      metric: "requests",
      unit: "count",
      label,
      blobkit: requests,
      peers: peerValues((s) => s.wire?.requests),
      runs,
      ...(targets.wire ? { target: "1 request", check: (b) => b === 1 } : {}),
    }),
    row({
      id,
      metric: "bytes",
      unit: "B",
      label,
      blobkit: bytes,
      peers: peerValues((s) => s.wire?.bytesDown),
      runs,
      note: `stored size of the entry: ${storedSize} B`,
      ...(targets.wire ? { target: `= stored size (${storedSize} B)`, check: (b) => b === storedSize } : {}),
    }),
  ];
  return out;
}

export const readOne: Comparison = {
  id: "read-one",
  title: "read one 64 KiB file from the large archive, cold and warm",
  async run(ctx: Context): Promise<Result[]> {
    const runs = ctx.runs;
    const ds = await ctx.dataset("large");
    const tgz = await ctx.tarGz("large");
    await ctx.pushed("large");
    await ctx.zip("large");
    const dest = join(ctx.work, "read-one-tgz");

    // Correctness first, outside the timings.
    const check = await openRegistry(ctx, "large");
    const storedSize = (await check.archive.stat(FILE)).storedSize;
    await assertSameAsTree(ctx, "large", FILE, await check.archive.readFile(FILE));
    await check.close();
    const zcheck = await openZip(ctx, "large");
    await assertSameAsTree(ctx, "large", FILE, await zcheck.read(FILE));
    await zcheck.close();

    // --- cold
    const cold = await compareSides(
      [
        {
          name: "blobkit",
          run: async () => {
            const o = await openRegistry(ctx, "large");
            await o.archive.readFile(FILE);
            await o.close();
          },
        },
        {
          name: "blobkit (HttpSource)",
          run: async () => {
            const o = await openHttp(ctx, "large");
            await o.archive.readFile(FILE);
            await o.close();
          },
        },
        {
          name: "zip.js (HTTP range)",
          run: async () => {
            const z = await openZip(ctx, "large");
            await z.read(FILE);
            await z.close();
          },
        },
        {
          name: "curl | tar -xz (one file)",
          before: async () => {
            await rm(dest, { recursive: true, force: true });
            await mkdir(dest, { recursive: true });
          },
          run: () => sh(`curl -sf '${ctx.url(tgz)}' | tar -xzf - -C '${dest}' './${FILE}'`),
        },
      ],
      runs,
      { nginx: ctx.nginx, warmup: 1 },
    );
    await rm(dest, { recursive: true, force: true });

    // --- warm
    const reg = await openRegistry(ctx, "large");
    const http = await openHttp(ctx, "large");
    const zip = await openZip(ctx, "large");
    const warm = await compareSides(
      [
        { name: "blobkit", run: () => reg.archive.readFile(FILE) },
        { name: "blobkit (HttpSource)", run: () => http.archive.readFile(FILE) },
        { name: "zip.js (HTTP range)", run: () => zip.read(FILE) },
      ],
      Math.max(runs, 5) * 4,
      { nginx: ctx.nginx, warmup: 3 },
    );
    await reg.close();
    await http.close();
    await zip.close();

    const size = `${(ds.totalBytes / 2 ** 20).toFixed(0)} MiB`;
    return [
      ...rows(
        "read-one.cold",
        `read 1 file (64 KiB) from the ${size} set, cold: blobkit pull via registry`,
        cold,
        "blobkit",
        ["zip.js (HTTP range)", "curl | tar -xz (one file)", "blobkit (HttpSource)"],
        runs,
        {},
        storedSize,
      ),
      ...rows(
        "read-one.warm",
        `read 1 file (64 KiB) from the ${size} set, warm (index / central directory in memory): blobkit via registry`,
        warm,
        "blobkit",
        ["zip.js (HTTP range)", "blobkit (HttpSource)"],
        Math.max(runs, 5) * 4,
        { time: ["≥ 2× zip.js", (r) => (r["zip.js (HTTP range)"] ?? 0) >= 2], wire: () => true },
        storedSize,
      ),
      ...rows(
        "read-one.warm.http-source",
        `read 1 file (64 KiB) from the ${size} set, warm: blobkit over HttpSource (nginx static)`,
        warm,
        "blobkit (HttpSource)",
        ["zip.js (HTTP range)"],
        Math.max(runs, 5) * 4,
        { time: ["≥ 2× zip.js", (r) => (r["zip.js (HTTP range)"] ?? 0) >= 2], wire: () => true },
        storedSize,
      ),
    ];
  },
};
