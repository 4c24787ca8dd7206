import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BlobError } from "@blobkit/core";
import { afterEach, describe, expect, it } from "vitest";
import { KEYS, valueForKey } from "../test/stress-values.ts";
import { DISK_CACHE_HEADER_BYTES, DiskCache } from "./index.ts";

const worker = fileURLToPath(new URL("../test/stress-worker.ts", import.meta.url));
const packageDir = fileURLToPath(new URL("..", import.meta.url));
const largestEntry =
  DISK_CACHE_HEADER_BYTES + Math.max(...Array.from({ length: KEYS }, (_, n) => valueForKey(n).length));

interface WorkerStats {
  gets: number;
  hits: number;
  corrupt: number;
  sets: number;
  errors: number;
}

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

function startWorker(args: string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
} {
  // Child processes cannot use vitest's resolver: Node strips the TypeScript itself and the `source`
  // condition resolves @blobkit/core to its sources.
  const child = spawn(process.execPath, ["--conditions=source", "--no-warnings", worker, ...args], {
    cwd: packageDir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (data: Buffer) => {
    stdout += data.toString();
  });
  child.stderr?.on("data", (data: Buffer) => {
    stderr += data.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done };
}

/** Reads every key back; all hits must be the key's value. Returns the number of hits. */
async function verifyAll(cache: DiskCache): Promise<number> {
  let hits = 0;
  for (let n = 0; n < KEYS; n++) {
    const got = await cache.get(`k${n}`);
    if (got === undefined) continue;
    hits++;
    expect(Buffer.compare(got, valueForKey(n)), `k${n}`).toBe(0);
  }
  return hits;
}

async function tempFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const shard of await readdir(dir)) {
    for (const name of await readdir(join(dir, shard))) if (name.startsWith(".tmp-")) found.push(name);
  }
  return found;
}

describe("DiskCache shared by several processes", () => {
  it("8 processes with random gets/sets of verified values under a tiny bound: zero corrupt reads, bound kept", async () => {
    const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-disk-stress-"));
    dirs.push(dir);
    const maxBytes = 30_000;
    const runs = Array.from({ length: 8 }, (_, i) =>
      startWorker([dir, String(maxBytes), "400", String(i + 1)]),
    );
    // Sample the directory's size while they run: at any moment at most one entry per writer is over the bound
    // (written, its post-write prune not yet done).
    const sampler = await DiskCache.open({ dir, maxBytes: Number.MAX_SAFE_INTEGER });
    let running = true;
    let samples = 0;
    let largestSample = 0;
    const sampling = (async () => {
      while (running) {
        largestSample = Math.max(largestSample, await sampler.sizeBytes());
        samples++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const results = await Promise.all(runs.map((run) => run.done));
    running = false;
    await sampling;
    await sampler.close();
    expect(samples).toBeGreaterThan(0);
    expect(largestSample).toBeLessThanOrEqual(maxBytes + runs.length * largestEntry);
    const totals: WorkerStats = { gets: 0, hits: 0, corrupt: 0, sets: 0, errors: 0 };
    for (const result of results) {
      expect(result.code, result.stderr).toBe(0);
      const stats = JSON.parse(result.stdout) as WorkerStats;
      for (const key of Object.keys(totals) as (keyof WorkerStats)[]) totals[key] += stats[key];
    }
    expect(totals.corrupt).toBe(0);
    expect(totals.errors).toBe(0);
    expect(totals.sets).toBeGreaterThan(1000);
    expect(totals.hits).toBeGreaterThan(0);

    const errors: BlobError[] = [];
    const cache = await DiskCache.open({
      dir,
      maxBytes: Number.MAX_SAFE_INTEGER,
      onError: (e) => errors.push(e),
    });
    try {
      // Every write was followed by its writer's prune, so the directory is within the bound plus one entry.
      expect(await cache.sizeBytes()).toBeLessThanOrEqual(maxBytes + largestEntry);
      await cache.prune(maxBytes);
      expect(await cache.sizeBytes()).toBeLessThanOrEqual(maxBytes);
      await verifyAll(cache);
      expect(errors).toEqual([]);
      expect(await tempFiles(dir)).toEqual([]);
    } finally {
      await cache.close();
    }
  });

  it("writers killed with SIGKILL mid-run leave a usable cache: no damaged entries, temp files cleaned on open", async () => {
    const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-disk-crash-"));
    dirs.push(dir);
    const runs = Array.from({ length: 4 }, (_, i) =>
      startWorker([dir, "60000", "0", String(100 + i), "forever"]),
    );
    // Let them run until the cache has filled up a little, then kill them wherever they are.
    for (let i = 0; i < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      const shards = await readdir(dir).catch(() => []);
      if (shards.length >= 20) break;
    }
    for (const run of runs) run.child.kill("SIGKILL");
    const results = await Promise.all(runs.map((run) => run.done));
    for (const result of results) expect(result.stderr).toBe("");

    const errors: BlobError[] = [];
    const cache = await DiskCache.open({
      dir,
      maxBytes: 60_000,
      staleTempMs: 0,
      onError: (e) => errors.push(e),
    });
    try {
      expect(await tempFiles(dir)).toEqual([]);
      expect(await verifyAll(cache)).toBeGreaterThan(0);
      expect(errors).toEqual([]); // no damaged entry was found
      await cache.set("k0", valueForKey(0));
      expect(Buffer.compare((await cache.get("k0"))!, valueForKey(0))).toBe(0);
    } finally {
      await cache.close();
    }
  });
});
