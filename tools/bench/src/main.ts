/**
 * `pnpm bench` — blobkit side by side with the tools users would pick instead, in one run, on the same
 * deterministic data, over loopback, as ratios (issue #9).
 *
 *   node --conditions=source tools/bench/src/main.ts [--quick] [--only id,id…] [--list] [--keep]
 *
 * Datasets are generated once into `bench/.data/` (git-ignored, keyed by a hash of their parameters) with
 * their zip / tar.gz / tar.zst / blobkit archives. Every run starts its own docker-registry (test harness),
 * nginx (static files + registry proxy; requests and bytes counted from its access log) and, for the cache
 * comparison, redis-server. Results: a table on stdout, `bench/results/latest.json`, `bench/results/latest.md`.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startRegistry } from "../../../packages/registry/test/registry-server.ts";
import { cache } from "./comparisons/cache.ts";
import { createPush } from "./comparisons/create-push.ts";
import { extractAll } from "./comparisons/extract-all.ts";
import { index } from "./comparisons/index.ts";
import { memory } from "./comparisons/memory.ts";
import { readDir } from "./comparisons/read-dir.ts";
import { readOne } from "./comparisons/read-one.ts";
import { readRandom } from "./comparisons/read-random.ts";
import { Context } from "./lib/context.ts";
import { datasetSpecs } from "./lib/datasets.ts";
import { describeMachine } from "./lib/machine.ts";
import { markdown, type Report, stdoutTable } from "./lib/report.ts";
import { startNginx } from "./lib/servers.ts";
import type { Comparison, Result } from "./lib/types.ts";

const COMPARISONS: Comparison[] = [
  index,
  cache,
  readOne,
  readRandom,
  readDir,
  memory,
  extractAll,
  createPush,
];

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const keep = args.includes("--keep");
const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? (args[onlyAt + 1] ?? "").split(",").filter(Boolean) : undefined;
if (args.includes("--list")) {
  for (const c of COMPARISONS) console.log(`${c.id.padEnd(14)} ${c.title}`);
  process.exit(0);
}
const unknown = only?.filter((id) => !COMPARISONS.some((c) => c.id === id)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown comparison(s): ${unknown.join(", ")}; --list shows them`);
  process.exit(2);
}
const selected = COMPARISONS.filter((c) => only === undefined || only.includes(c.id));

const root = resolve(import.meta.dirname, "../../..");
const dataRoot = join(root, "bench", ".data");
const resultsDir = join(root, "bench", "results");
const started = performance.now();
const log = (s: string) =>
  console.error(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${s}`);
const machine = describeMachine();
const runs = Number(process.env.BENCH_RUNS ?? (quick ? 3 : 7));
const heavyRuns = Number(process.env.BENCH_HEAVY_RUNS ?? (quick ? 3 : 5));
log(
  `${quick ? "quick" : "full"} run: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAverage.join(" ")}`,
);

await mkdir(dataRoot, { recursive: true });
const work = await mkdtemp(join(tmpdir(), "blobkit-bench-"));
const registry = await startRegistry();
let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
let ctx: Context | undefined;
const cleanup = async () => {
  await ctx?.stopRedis().catch(() => {});
  await nginx?.stop().catch(() => {});
  await registry.stop().catch(() => {});
  if (!keep) await rm(work, { recursive: true, force: true });
};
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping servers`);
    void cleanup().finally(() => process.exit(130));
  });
}

const results: Result[] = [];
const errors: Report["errors"] = [];
try {
  nginx = await startNginx(work, dataRoot, registry.origin);
  const specs = datasetSpecs(quick);
  ctx = new Context({ quick, runs, heavyRuns, root, dataRoot, work, nginx, registry, specs, log });
  for (const comparison of selected) {
    const t = performance.now();
    log(`${comparison.id}: ${comparison.title}`);
    try {
      const rows = await comparison.run(ctx);
      results.push(...rows);
      console.log(`\n${stdoutTable(rows)}`);
    } catch (error) {
      errors.push({ comparison: comparison.id, error: String((error as Error)?.stack ?? error) });
      log(`${comparison.id} FAILED: ${String((error as Error)?.stack ?? error)}`);
    }
    log(`${comparison.id}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const datasets: Report["datasets"] = {};
  for (const name of ["source", "large", "small"] as const) {
    // Only the datasets this run used.
    const ds = await ctx.datasetIfLoaded(name);
    if (ds !== undefined) datasets[name] = { files: ds.files.length, totalBytes: ds.totalBytes, key: ds.key };
  }
  const report: Report = {
    machine,
    date: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    runs,
    heavyRuns,
    durationSeconds: Math.round((performance.now() - started) / 1000),
    datasets,
    ...(only === undefined ? {} : { only }),
    results,
    errors,
  };
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(join(resultsDir, "latest.md"), markdown(report));
  console.log(`\n${stdoutTable(results)}`);
  const missed = results.filter((r) => r.met === false);
  console.log(
    `\n${results.filter((r) => r.met === true).length} targets met, ${missed.length} missed` +
      `${errors.length > 0 ? `, ${errors.length} comparison(s) failed` : ""}; ${report.durationSeconds} s. ` +
      "Written bench/results/latest.json and latest.md.",
  );
} finally {
  await cleanup();
}
if (errors.length > 0) process.exitCode = 1;
