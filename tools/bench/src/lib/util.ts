// Timing, statistics and process helpers.
import { execFile, spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Nginx, WireCount } from "./servers.ts";
import type { Result } from "./types.ts";

export const MiB = 1024 * 1024;

export const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** Runs a bash pipeline (pipefail); rejects with its stderr. */
export function sh(command: string, options: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "bash",
      ["-o", "pipefail", "-c", command],
      { maxBuffer: 1 << 26, cwd: options.cwd },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${command}: ${error.message} ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** Runs a bash pipeline under GNU time; returns the peak RSS (KiB) of the largest process in it. */
export async function shWithRss(command: string, work: string): Promise<number> {
  const out = join(work, `time-${process.hrtime.bigint()}.txt`);
  await sh(`/usr/bin/time -f '%M' -o '${out}' bash -o pipefail -c ${JSON.stringify(command)}`);
  const kib = Number((await readFile(out, "utf8")).trim().split("\n").at(-1));
  await rm(out, { force: true });
  return kib;
}

const CHILD = new URL("../children/child.mjs", import.meta.url).pathname;

/** What a child process reports. */
export interface ChildReport {
  maxRssKiB: number;
  ms: number;
  bytes?: number;
}

/**
 * Runs `children/child.mjs <op> …args` in a fresh Node process (built packages, as applications run them).
 *
 * Through an intermediate `sh` that does not `exec`: Linux keeps the RSS high-water mark of the memory image a
 * process had before `execve` in its `maxRSS`, and a child forked straight from this (big) harness process
 * starts as a copy of it, so its `process.resourceUsage().maxRSS` would report the harness's RSS. Forked
 * from a small `sh`, the child's figure is its own.
 */
export function runChild(op: string, args: string[]): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", '"$0" "$@"; exit $?', process.execPath, CHILD, op, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`child ${op} exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split("\n").at(-1) as string) as ChildReport);
    });
  });
}

/** One timed run of one side. */
export interface Sample {
  ms: number;
  wire?: WireCount;
  rssKiB?: number;
}

export interface Side {
  name: string;
  /** Untimed preparation before every run (clearing the output directory…). */
  before?: () => Promise<void>;
  /** The timed work; may return the peak RSS it measured (KiB). */
  run: () => Promise<number | undefined | unknown>;
  after?: () => Promise<void>;
}

/**
 * Runs every side `runs` times, interleaved (a, b, c, a, b, c…) so that load changes hit all sides alike,
 * after `warmup` untimed rounds. With `nginx`, requests and bytes are counted for every run.
 */
export async function compareSides(
  sides: Side[],
  runs: number,
  options: { nginx?: Nginx; warmup?: number } = {},
): Promise<Map<string, Sample[]>> {
  const out = new Map<string, Sample[]>(sides.map((s) => [s.name, []]));
  for (let round = -(options.warmup ?? 0); round < runs; round++) {
    for (const side of sides) {
      await side.before?.();
      const mark = options.nginx === undefined ? 0 : await options.nginx.mark();
      const t = performance.now();
      const value = await side.run();
      const ms = performance.now() - t;
      const wire = options.nginx === undefined ? undefined : await options.nginx.since(mark);
      await side.after?.();
      if (round < 0) continue;
      const sample: Sample = { ms };
      if (wire !== undefined) sample.wire = wire;
      if (typeof value === "number") sample.rssKiB = value;
      out.get(side.name)!.push(sample);
    }
  }
  return out;
}

export const medianOf = (samples: Sample[] | undefined, pick: (s: Sample) => number | undefined): number =>
  median((samples ?? []).map(pick).filter((x): x is number => x !== undefined));

/** Builds a result row; `higherIsBetter` flips the ratio. */
export function row(
  r: Omit<Result, "ratio" | "ratios" | "met"> & {
    higherIsBetter?: boolean;
    /** Decides `met` from blobkit's value and the ratios (omitted: no target). */
    check?: (blobkit: number, ratios: Record<string, number>) => boolean;
  },
): Result {
  const { higherIsBetter, check, ...rest } = r;
  const ratios: Record<string, number> = {};
  for (const [name, value] of Object.entries(r.peers)) {
    ratios[name] = higherIsBetter ? r.blobkit / value : value / r.blobkit;
  }
  const first = Object.keys(r.peers)[0];
  const result: Result = { ...rest, ratio: first === undefined ? null : (ratios[first] as number) };
  if (first !== undefined) result.ratios = ratios;
  if (check !== undefined) result.met = check(r.blobkit, ratios);
  return result;
}

/** Deterministic sample of `k` distinct items. */
export function sample<T>(items: readonly T[], k: number, rand: () => number): T[] {
  const copy = [...items];
  for (let i = 0; i < k && i < copy.length; i++) {
    const j = i + Math.floor(rand() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy.slice(0, k);
}

/** Runs `fn` over `items` with `concurrency` workers. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}
