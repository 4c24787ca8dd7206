/**
 * Copies the generated table (`bench/results/latest.md`) into `docs/benchmarks.md` between the markers
 * `<!-- bench:latest:start -->` and `<!-- bench:latest:end -->` (the docs site copies docs/benchmarks.md at
 * build, so the page shows the last recorded full run). Run after a full `pnpm bench`:
 *
 *   node tools/bench/src/splice-docs.ts [--check]
 *
 * `--check` exits 1 when the docs are out of date with bench/results/latest.md (nothing is written).
 */
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";

const START = "<!-- bench:latest:start -->";
const END = "<!-- bench:latest:end -->";
const root = resolve(import.meta.dirname, "../../..");
const docsPath = join(root, "docs", "benchmarks.md");
const table = (await readFile(join(root, "bench", "results", "latest.md"), "utf8")).trim();
const docs = await readFile(docsPath, "utf8");
const start = docs.indexOf(START);
const end = docs.indexOf(END);
if (start < 0 || end < start) {
  console.error(`${docsPath}: add the markers ${START} and ${END} where the table goes`);
  process.exit(2);
}
/** The page as the repository's Biome formats it (so `biome check` in CI accepts what this writes). */
function formatted(markdown: string): string {
  const biome = join(root, "node_modules/@biomejs/biome/bin/biome");
  const result = spawnSync(process.execPath, [biome, "format", "--stdin-file-path=docs/benchmarks.md"], {
    cwd: root,
    input: markdown,
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`biome format failed: ${result.stderr}`);
  return result.stdout;
}
const next = formatted(`${docs.slice(0, start + START.length)}\n\n${table}\n\n${docs.slice(end)}`);
if (process.argv.includes("--check")) {
  if (next !== docs) {
    console.error("docs/benchmarks.md is out of date: node tools/bench/src/splice-docs.ts");
    process.exit(1);
  }
} else if (next !== docs) {
  await writeFile(docsPath, next);
  console.log("docs/benchmarks.md updated from bench/results/latest.md");
}
