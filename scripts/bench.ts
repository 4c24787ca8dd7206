/**
 * `pnpm bench` — core benchmarks, side by side in one run, reported as ratios against the reference tools.
 *
 * 1. Index: open + full validation at 10 000 and 100 000 entries; exact path lookup at 100 000.
 * 2. Create: `createLocalArchive` vs `tar -cf - DIR | zstd -3` on the same generated tree.
 * 3. Extract: `archive.extract` vs `zstd -dc | tar -x` of that tree.
 *    Both sides run as commands: blobkit in a fresh Node process (`bench-child.mjs`, startup included).
 * 4. Peak RSS of create and extract (each in a fresh child process, `bench-child.mjs`) on a 2 GiB tree.
 *
 * Everything runs against the built package (`packages/core/dist`), as applications do.
 *
 * Environment: BENCH_TREE_MIB (default 256) size of the throughput tree; BENCH_RSS_GIB (default 2; 0 skips)
 * size of the RSS tree; BENCH_RUNS (default 3) timed runs per side (median reported). Work files go to
 * `.bench-tmp/` (git-ignored) and are removed at the end unless BENCH_KEEP=1.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
// The built package, as applications run it (`pnpm bench` builds it first).
import { ArchiveIndex, encodeIndex } from "../packages/core/dist/index.js";

const MiB = 1024 * 1024;
const tmp = resolve(".bench-tmp");
const childScript = new URL("bench-child.mjs", import.meta.url).pathname;

// --- deterministic data generator ---------------------------------------------------------------------------
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const words = Array.from({ length: 4096 }, (_, i) => `w${(i * 2654435761) % 1000003}`.slice(0, 3 + (i % 9)));
/** Source-code-like text: compresses about 3–4× with zstd -3, like real configs and sources. */
function textBlock(size: number, rand: () => number): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < size) {
    const line = `${"  ".repeat(Math.floor(rand() * 4))}${words[Math.floor(rand() * words.length)]} = ${words[Math.floor(rand() * words.length)]}(${Math.floor(rand() * 1e6)});\n`;
    parts.push(line);
    n += line.length;
  }
  return Buffer.from(parts.join("")).subarray(0, size);
}
function randomBlock(size: number, rand: () => number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((rand() * 4294967296) >>> 0, i);
  return b;
}

/** Writes a mixed tree of about `totalBytes`: mostly small text files, some big ones, a tenth incompressible. */
async function generateTree(dir: string, totalBytes: number, seed: number): Promise<{ files: number }> {
  const rand = prng(seed);
  let written = 0;
  let files = 0;
  while (written < totalBytes) {
    const kind = rand();
    const size =
      kind < 0.8
        ? 512 + Math.floor(rand() * 32 * 1024)
        : kind < 0.99
          ? 64 * 1024 + Math.floor(rand() * MiB)
          : 4 * MiB + Math.floor(rand() * 12 * MiB);
    // One file in ten, of any size, is incompressible (media, archives, already-compressed assets).
    const incompressible = rand() < 0.1;
    const bytes = incompressible ? randomBlock(size, rand) : textBlock(size, rand);
    const sub = join(dir, `pkg${files % 17}`, `mod${files % 131}`);
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `file-${files}${incompressible ? ".bin" : ".ts"}`), bytes);
    written += size;
    files++;
  }
  return { files };
}

// `node scripts/bench.ts --generate DIR MIB`: only write a tree (for profiling by hand).
if (process.argv[2] === "--generate") {
  const { files } = await generateTree(resolve(process.argv[3] as string), Number(process.argv[4]) * MiB, 42);
  console.log(`${files} files`);
  process.exit(0);
}

// --- helpers ------------------------------------------------------------------------------------------------
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
async function timeIt(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}
function sh(command: string): void {
  execFileSync("bash", ["-o", "pipefail", "-c", command], { stdio: "inherit" });
}
/** Runs `bench-child.mjs` (create or extract) in a fresh Node process; returns its peak RSS. */
function runChild(op: "create" | "extract", from: string, to: string): { maxRssKiB: number } {
  const child = spawnSync(process.execPath, [childScript, op, from, to], { encoding: "utf8" });
  if (child.status !== 0) throw new Error(`bench child ${op} failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").at(-1) as string) as { maxRssKiB: number };
}
const runs = Number(process.env.BENCH_RUNS ?? 3);
const rows: string[][] = [];
const report = (what: string, ours: string, ref: string, ratio: string, target: string) =>
  rows.push([what, ours, ref, ratio, target]);

// --- 1. index -----------------------------------------------------------------------------------------------
function buildIndex(n: number): { bytes: Uint8Array; paths: string[] } {
  const hash = new Uint8Array(32).fill(7);
  const entries = [];
  const paths: string[] = [];
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const path = `pkg${i % 97}/mod${i % 389}/file-${i}.ts`;
    paths.push(path);
    entries.push({
      path,
      offset,
      storedSize: 1000,
      size: 3000,
      sha256: hash,
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeNs: 1_700_000_000_000_000_000n,
      compression: "zstd" as const,
    });
    offset += 1000;
  }
  return { bytes: encodeIndex({ entries, dataSize: offset, dataSha256: hash }), paths };
}
for (const n of [10_000, 100_000]) {
  const { bytes, paths } = buildIndex(n);
  for (let i = 0; i < 20; i++) ArchiveIndex.open(bytes);
  const times: number[] = [];
  for (let i = 0; i < 30; i++) times.push(await timeIt(() => ArchiveIndex.open(bytes)));
  report(
    `index open+validate, ${n} entries (${(bytes.byteLength / MiB).toFixed(1)} MiB)`,
    `${median(times).toFixed(2)} ms`,
    "",
    "",
    n === 10_000 ? "≤ 2 ms" : "",
  );
  if (n === 100_000) {
    const index = ArchiveIndex.open(bytes);
    const rand = prng(1);
    const probes = Array.from({ length: 4096 }, () => paths[Math.floor(rand() * n)] as string);
    let found = 0;
    for (let i = 0; i < 200_000; i++) found += index.find(probes[i & 4095] as string) >= 0 ? 1 : 0;
    const count = 2_000_000;
    const t = performance.now();
    for (let i = 0; i < count; i++) found += index.find(probes[i & 4095] as string) >= 0 ? 1 : 0;
    const ns = ((performance.now() - t) * 1e6) / count;
    if (found !== count + 200_000) throw new Error("bench: lookups failed");
    report(`path lookup, ${n} entries`, `${ns.toFixed(0)} ns`, "", "", "≤ 150 ns");
  }
}

// --- 2 + 3. create / extract vs tar + zstd ------------------------------------------------------------------
await rm(tmp, { recursive: true, force: true });
const treeMiB = Number(process.env.BENCH_TREE_MIB ?? 256);
const tree = join(tmp, "tree");
const { files } = await generateTree(tree, treeMiB * MiB, 42);
const treeLabel = `${treeMiB} MiB / ${files} files`;
const createOurs: number[] = [];
const createRef: number[] = [];
const extractOurs: number[] = [];
const extractRef: number[] = [];
for (let r = 0; r < runs; r++) {
  await rm(join(tmp, "out"), { recursive: true, force: true });
  await mkdir(join(tmp, "out"), { recursive: true });
  createRef.push(
    await timeIt(() => sh(`tar -cf - -C '${tree}' . | zstd -3 -q -f -o '${tmp}/out/tree.tar.zst'`)),
  );
  // blobkit runs as a command too (a fresh Node process, startup included), like the pipeline it is
  // compared with, rather than inside this process with its benchmark heap.
  createOurs.push(await timeIt(() => runChild("create", tree, join(tmp, "out", "archive"))));
  await mkdir(join(tmp, "out", "x-ref"));
  extractRef.push(
    await timeIt(() => sh(`zstd -dc -q '${tmp}/out/tree.tar.zst' | tar -xf - -C '${tmp}/out/x-ref'`)),
  );
  extractOurs.push(
    await timeIt(() => runChild("extract", join(tmp, "out", "archive"), join(tmp, "out", "x-ours"))),
  );
}
const ratio = (ref: number, ours: number) => `${(ref / ours).toFixed(2)}×`;
const mbps = (ms: number) => `${((treeMiB / ms) * 1000).toFixed(0)} MiB/s`;
report(
  `create (${treeLabel})`,
  `${median(createOurs).toFixed(0)} ms (${mbps(median(createOurs))})`,
  `${median(createRef).toFixed(0)} ms tar|zstd -3`,
  ratio(median(createRef), median(createOurs)),
  "≥ 1.0×",
);
report(
  `extract (${treeLabel})`,
  `${median(extractOurs).toFixed(0)} ms (${mbps(median(extractOurs))})`,
  `${median(extractRef).toFixed(0)} ms zstd -dc|tar -x`,
  ratio(median(extractRef), median(extractOurs)),
  "≥ 1.0×",
);
await rm(join(tmp, "out"), { recursive: true, force: true });
await rm(tree, { recursive: true, force: true });

// --- 4. peak RSS on a big tree --------------------------------------------------------------------------------
const rssGiB = Number(process.env.BENCH_RSS_GIB ?? 2);
if (rssGiB > 0) {
  const big = join(tmp, "big");
  const { files: bigFiles } = await generateTree(big, rssGiB * 1024 * MiB, 7);
  for (const [op, from, to] of [
    ["create", big, join(tmp, "big-archive")],
    ["extract", join(tmp, "big-archive"), join(tmp, "big-out")],
  ] as const) {
    const { maxRssKiB } = runChild(op, from, to);
    report(
      `peak RSS, ${op} (${rssGiB} GiB / ${bigFiles} files)`,
      `${(maxRssKiB / 1024).toFixed(0)} MiB`,
      "",
      "",
      "≤ 200 MiB",
    );
  }
}
if (process.env.BENCH_KEEP !== "1") await rm(tmp, { recursive: true, force: true });

// --- report ---------------------------------------------------------------------------------------------------
const header = ["benchmark", "blobkit", "reference", "ratio (ref ÷ ours)", "target"];
console.log(
  `\nNode ${process.version}, ${(await import("node:os")).availableParallelism()} cores, median of ${runs} runs\n`,
);
console.log(`| ${header.join(" | ")} |\n|${header.map(() => "---").join("|")}|`);
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
