import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** tools/stress/results/latest.json: the figures of the last stress run, one section per test file. */
export const RESULTS_FILE: string = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "results",
  "latest.json",
);

/**
 * Merges `value` under `section.key` into latest.json (read-modify-write; test files run one at a time).
 * The file records the environment of the run too, so figures of a smoke run are not mistaken for a full one.
 */
export function recordResult(section: string, key: string, value: unknown): void {
  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  let doc: Record<string, Record<string, unknown>> = {};
  try {
    doc = JSON.parse(readFileSync(RESULTS_FILE, "utf8")) as typeof doc;
  } catch {
    doc = {};
  }
  const sectionDoc = doc[section] ?? {};
  sectionDoc[key] = value;
  doc[section] = sectionDoc;
  doc.run = {
    updatedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    STRESS_FUZZ_RUNS: process.env.STRESS_FUZZ_RUNS ?? "(default)",
  };
  const tmp = `${RESULTS_FILE}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(tmp, RESULTS_FILE);
}

/** A positive integer from the environment, or `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}
