import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DiskCache } from "@blobkit/cache-disk";
import { Client, parseReference } from "@blobkit/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEYS, valueForKey } from "../../../packages/cache-disk/test/stress-values.ts";
import { type RunningRegistry, startRegistry } from "../../../packages/registry/test/registry-server.ts";
import { pseudoRandomBytes, readTree, writeTree } from "../../../packages/registry/test/support.ts";
import { seededRandom } from "./support/fault-proxy.ts";
import { envInt, recordResult } from "./support/results.ts";

// Issue item 4: SIGKILL a push (registry and oci: layout), a pull + extract and a DiskCache writer at random
// points, STRESS_CRASH_RUNS times each, then check: no partial file at a final path, no tag pointing at
// missing or wrong content, the cache opens and every readable entry is intact, and re-running the killed
// operation completes.

const RUNS = envInt("STRESS_CRASH_RUNS", 20);
const SEED = envInt("STRESS_SEED", Math.floor(Math.random() * 2 ** 31) + 1);
const SUPPORT = fileURLToPath(new URL("./support/crash/", import.meta.url));
const STRESS_DIR = fileURLToPath(new URL("..", import.meta.url));
// Extraction temp files: `.blobkit-<16 hex, one per extraction>-<counter, base 36>.tmp`.
const TEMP_NAME = /(^|\/)\.blobkit-[0-9a-f]{16}-[0-9a-z]+\.tmp$/;

type Kind = "push-registry" | "push-layout" | "pull-extract" | "cache-writer";
interface KindFigures {
  runs: number;
  killedBeforeDone: number;
  completedBeforeKill: number;
  inconsistencies: number;
  reRunsOk: number;
  /** Leftovers of the killed process after the re-run (informational: temp names only). */
  staleTempFilesAfterReRun: number;
  calibrationMs: number;
}
const figures = {
  seed: SEED,
  runsPerKind: RUNS,
  kinds: {} as Record<Kind, KindFigures>,
  inconsistencies: [] as string[],
  wallSeconds: 0,
};
const random = seededRandom(SEED);
let registry: RunningRegistry;
let work: string;
const started = Date.now();

function kindFigures(kind: Kind): KindFigures {
  figures.kinds[kind] ??= {
    runs: 0,
    killedBeforeDone: 0,
    completedBeforeKill: 0,
    inconsistencies: 0,
    reRunsOk: 0,
    staleTempFilesAfterReRun: 0,
    calibrationMs: 0,
  };
  return figures.kinds[kind];
}
function inconsistent(kind: Kind, run: number, what: string): void {
  kindFigures(kind).inconsistencies++;
  figures.inconsistencies.push(`${kind} run ${run}: ${what}`);
}

interface Child {
  child: ChildProcess;
  /** Resolves when the child printed "start" (modules loaded, operation begins). */
  started: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}
function startChild(script: string, args: string[]): Child {
  // Node 24 (the vitest process) strips the TypeScript; `source` resolves @blobkit/* to their sources.
  const child = spawn(
    process.execPath,
    ["--conditions=source", "--no-warnings", join(SUPPORT, script), ...args],
    {
      cwd: STRESS_DIR,
      // Push spools go to a directory of their own, so the test can see that killed pushes' are swept.
      env: { ...process.env, TMPDIR: spools() },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  let onStart: () => void = () => {};
  const startedP = new Promise<void>((resolve) => {
    onStart = resolve;
  });
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
    if (stdout.includes("start\n")) onStart();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve) => {
    child.on("close", (code, signal) => {
      onStart();
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, started: startedP, exited };
}

/** Runs the child to completion; returns the "done <ms>" duration. */
async function calibrate(script: string, args: string[]): Promise<number> {
  const c = startChild(script, args);
  const result = await c.exited;
  const ms = /done (\d+)/.exec(result.stdout)?.[1];
  if (result.code !== 0 || ms === undefined)
    throw new Error(`calibration of ${script} failed: ${result.stderr}`);
  return Number(ms);
}

/** Starts the child, SIGKILLs it `delayMs` after it started its operation; says whether it had finished. */
async function killAfter(script: string, args: string[], delayMs: number): Promise<boolean> {
  const c = startChild(script, args);
  await c.started;
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  if (c.child.exitCode === null && c.child.pid !== undefined) c.child.kill("SIGKILL");
  const result = await c.exited;
  return result.stdout.includes("done ");
}

const sha256 = (bytes: Uint8Array): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

interface Desc {
  digest: string;
  size: number;
}
function blobsOf(manifest: Uint8Array): Desc[] {
  const json = JSON.parse(Buffer.from(manifest).toString("utf8")) as { config?: Desc; layers?: Desc[] };
  return [...(json.config === undefined ? [] : [json.config]), ...(json.layers ?? [])];
}

/** Every file of `expected` read back through the archive must equal it. */
async function checkArchive(
  client: Client,
  ref: string,
  expected: Map<string, Buffer>,
): Promise<string | undefined> {
  const archive = await client.pull(ref);
  try {
    let n = 0;
    for (const entry of archive.entries()) {
      n++;
      const want = expected.get(entry.path);
      const got = (await archive.readFile(entry.path)) as Uint8Array;
      if (want === undefined || !want.equals(got))
        return `${ref}: ${entry.path} differs from the pushed source`;
    }
    if (n !== expected.size) return `${ref}: ${n} files, expected ${expected.size}`;
    return undefined;
  } finally {
    await archive.close();
  }
}

/** The temp directory of the push children and the re-runs (push spools). */
const spools = (): string => join(work, "spools");

beforeAll(async () => {
  registry = await startRegistry({ auth: "none" });
  work = await mkdtemp(join(tmpdir(), "blobkit-stress-crash-"));
  await mkdir(spools());
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
  figures.wallSeconds = Math.round((Date.now() - started) / 100) / 10;
  recordResult("crash", "summary", figures);
  const per = Object.entries(figures.kinds)
    .map(
      ([k, f]) =>
        `${k}: ${f.runs} runs (${f.killedBeforeDone} killed mid-operation), ${f.inconsistencies} inconsistencies, ${f.reRunsOk} re-runs ok, ${f.staleTempFilesAfterReRun} stale temp files after re-run`,
    )
    .join("; ");
  console.log(
    `[crash] seed ${SEED}, ${figures.wallSeconds} s: ${per}; inconsistencies: ${figures.inconsistencies.length}`,
  );
});

async function pushSource(dir: string, run: number): Promise<Map<string, Buffer>> {
  const files = [
    { path: "run.txt", content: Buffer.from(`run ${run} ${SEED}\n`) },
    { path: "big/random.bin", content: Buffer.from(pseudoRandomBytes(6 * 1024 * 1024, SEED + run)) },
    ...Array.from({ length: 40 }, (_, i) => ({
      path: `files/f${i}.txt`,
      content: Buffer.from(`file ${i} of run ${run}\n`.repeat(1 + ((i * 37) % 400))),
    })),
  ];
  await rm(dir, { recursive: true, force: true });
  await writeTree(dir, files);
  return new Map(files.map((f) => [f.path, f.content]));
}

/** Registry: every tag's manifest and blobs exist with the right size; each tag holds its run's source. */
async function checkRegistry(
  client: Client,
  repo: string,
  sources: Map<string, Map<string, Buffer>>,
): Promise<string[]> {
  const problems: string[] = [];
  const store = await client.store(parseReference(`${repo}:x`));
  for await (const tag of store.listTags()) {
    const { bytes, descriptor } = await store.fetchManifest(tag);
    if (sha256(bytes) !== descriptor.digest) problems.push(`${tag}: manifest digest mismatch`);
    for (const blob of blobsOf(bytes)) {
      const size = await store.statBlob(blob.digest);
      if (size !== blob.size)
        problems.push(`${tag} → ${blob.digest}: ${size === undefined ? "missing" : `size ${size}`}`);
    }
    const source = sources.get(tag);
    if (source === undefined) problems.push(`unexpected tag ${tag}`);
    else {
      const wrong = await checkArchive(client, `${repo}:${tag}`, source);
      if (wrong !== undefined) problems.push(wrong);
    }
  }
  return problems;
}

/** Layout: every index.json entry's manifest and blobs exist and hash right; each tag holds its run's source. */
async function checkLayout(
  client: Client,
  dir: string,
  sources: Map<string, Map<string, Buffer>>,
): Promise<string[]> {
  const problems: string[] = [];
  let index: { manifests?: (Desc & { annotations?: Record<string, string> })[] };
  try {
    index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as typeof index;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return problems; // killed before creating it
    return [`index.json unreadable: ${String(error)}`];
  }
  const blob = async (d: Desc): Promise<Buffer | undefined> => {
    try {
      const bytes = await readFile(join(dir, "blobs", "sha256", d.digest.slice(7)));
      return bytes.length === d.size && sha256(bytes) === d.digest ? bytes : undefined;
    } catch {
      return undefined;
    }
  };
  for (const entry of index.manifests ?? []) {
    const tag = entry.annotations?.["org.opencontainers.image.ref.name"];
    const manifest = await blob(entry);
    if (manifest === undefined) {
      problems.push(`${tag ?? entry.digest}: manifest blob missing or wrong`);
      continue;
    }
    for (const d of blobsOf(manifest)) {
      if ((await blob(d)) === undefined)
        problems.push(`${tag ?? entry.digest} → ${d.digest}: missing or wrong`);
    }
    if (tag !== undefined) {
      const source = sources.get(tag);
      if (source === undefined) problems.push(`unexpected tag ${tag}`);
      else {
        const wrong = await checkArchive(client, `oci:${dir}:${tag}`, source);
        if (wrong !== undefined) problems.push(wrong);
      }
    }
  }
  return problems;
}

async function countFiles(dir: string, test: (name: string) => boolean): Promise<number> {
  let n = 0;
  try {
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && test(entry.name)) n++;
    }
  } catch {}
  return n;
}

describe("crash consistency (issue item 4)", () => {
  for (const target of ["registry", "layout"] as const) {
    const kind: Kind = `push-${target}`;
    it(`SIGKILL during push to the ${target} × ${RUNS}: no tag at missing content; re-run completes`, async () => {
      const f = kindFigures(kind);
      const client = new Client({ tempDir: spools() });
      const layout = join(work, "layout");
      const repo = `${registry.host}/crash/push`;
      const refOf = (tag: string): string =>
        target === "registry" ? `${repo}:${tag}` : `oci:${layout}:${tag}`;
      const sources = new Map<string, Map<string, Buffer>>();
      try {
        const src = join(work, "push-src");
        sources.set("calibration", await pushSource(src, -1));
        f.calibrationMs = await calibrate("push.ts", [refOf("calibration"), src]);
        for (let run = 0; run < RUNS; run++) {
          const tag = `r${run}`;
          const source = await pushSource(src, run);
          f.runs++;
          const delay = Math.floor(random() * f.calibrationMs * 1.1);
          if (await killAfter("push.ts", [refOf(tag), src], delay)) f.completedBeforeKill++;
          else f.killedBeforeDone++;
          sources.set(tag, source);
          // A tag either points at the whole run's content or does not exist (checked for every tag).
          const problems =
            target === "registry"
              ? await checkRegistry(client, repo, sources)
              : await checkLayout(client, layout, sources);
          for (const p of problems) inconsistent(kind, run, p);
          // Re-run the push: it completes and the tag holds the run's source.
          await client.push(refOf(tag), src);
          const wrong = await checkArchive(client, refOf(tag), source);
          if (wrong === undefined) f.reRunsOk++;
          else inconsistent(kind, run, `after re-run: ${wrong}`);
        }
        // Each re-run swept the spool its killed run left behind, and removed its own.
        const left = await readdir(spools());
        if (left.length > 0) inconsistent(kind, RUNS, `push spools left behind: ${left.join(", ")}`);
        if (target === "layout") {
          f.staleTempFilesAfterReRun = await countFiles(join(layout, "ingest"), () => true);
          if ((await stat(join(layout, "index.json.lock")).catch(() => undefined)) !== undefined)
            inconsistent(kind, RUNS, "index.json.lock left behind after the re-runs");
        }
      } finally {
        await client.close();
      }
      expect(figures.inconsistencies.filter((i) => i.startsWith(kind))).toEqual([]);
      expect(f.reRunsOk).toBe(RUNS);
    }, 600_000);
  }

  it(`SIGKILL during pull + extract × ${RUNS}: no partial file at a final path; re-run completes`, async () => {
    const kind: Kind = "pull-extract";
    const f = kindFigures(kind);
    const client = new Client();
    try {
      const src = join(work, "extract-src");
      const files = [
        { path: "big/random.bin", content: Buffer.from(pseudoRandomBytes(6 * 1024 * 1024 + 77, SEED)) },
        { path: "big/text.log", content: Buffer.from("compressible log line\n".repeat(120_000)) },
        ...Array.from({ length: 300 }, (_, i) => ({
          path: `d${i % 9}/e${i % 5}/f${i}.dat`,
          content:
            i % 3 === 0
              ? Buffer.from(pseudoRandomBytes(1 + ((i * 997) % 60_000), SEED + i))
              : Buffer.from(`f${i} `.repeat(1 + i * 13)),
        })),
      ];
      await writeTree(src, files);
      const expected = new Map(files.map((x) => [x.path, x.content]));
      const ref = `${registry.host}/crash/extract:v1`;
      await client.push(ref, src);
      f.calibrationMs = await calibrate("extract.ts", [ref, join(work, "extract-calibration")]);
      await rm(join(work, "extract-calibration"), { recursive: true, force: true });
      for (let run = 0; run < RUNS; run++) {
        const dest = join(work, `extract-${run}`);
        f.runs++;
        const delay = Math.floor(random() * f.calibrationMs * 1.1);
        if (await killAfter("extract.ts", [ref, dest], delay)) f.completedBeforeKill++;
        else f.killedBeforeDone++;
        // Files at final paths hold the source's bytes; anything else is a documented temp name.
        const tree = await readTree(dest).catch(() => new Map<string, { bytes: Buffer }>());
        for (const [path, { bytes }] of tree) {
          if (TEMP_NAME.test(path)) continue;
          const want = expected.get(path);
          if (want === undefined) inconsistent(kind, run, `unexpected file ${path}`);
          else if (!want.equals(bytes))
            inconsistent(kind, run, `partial or wrong file at final path ${path}`);
        }
        // Re-run: completes (existing verified files are skipped), the destination equals the source.
        const archive = await client.pull(ref);
        try {
          await archive.extract(dest);
        } finally {
          await archive.close();
        }
        const after = await readTree(dest);
        let stale = 0;
        let ok = true;
        for (const [path, want] of expected) {
          if (!want.equals(after.get(path)?.bytes ?? Buffer.alloc(0)) || !after.has(path)) {
            ok = false;
            inconsistent(kind, run, `after re-run: ${path} missing or wrong`);
          }
        }
        for (const path of after.keys()) {
          if (TEMP_NAME.test(path)) stale++;
          else if (!expected.has(path)) {
            ok = false;
            inconsistent(kind, run, `after re-run: unexpected ${path}`);
          }
        }
        f.staleTempFilesAfterReRun += stale;
        if (ok) f.reRunsOk++;
        await rm(dest, { recursive: true, force: true });
      }
    } finally {
      await client.close();
    }
    expect(figures.inconsistencies.filter((i) => i.startsWith(kind))).toEqual([]);
    expect(f.reRunsOk).toBe(RUNS);
  }, 600_000);

  it(`SIGKILL of DiskCache writers × ${RUNS}: the cache opens, every readable entry intact, writes work again`, async () => {
    const kind: Kind = "cache-writer";
    const f = kindFigures(kind);
    const dir = join(work, "cache");
    for (let run = 0; run < RUNS; run++) {
      f.runs++;
      // Two writers at once, killed at independent random points.
      const delays = [10 + Math.floor(random() * 400), 10 + Math.floor(random() * 400)];
      const killed = await Promise.all(
        delays.map((d, i) => killAfter("cache-writer.ts", [dir, String(SEED + run * 2 + i)], d)),
      );
      f.killedBeforeDone += killed.filter((done) => !done).length;
      await new Promise((resolve) => setTimeout(resolve, 5));
      const cache = await DiskCache.open({ dir, maxBytes: 40_000, staleTempMs: 1 });
      try {
        if (cache.degraded) inconsistent(kind, run, "cache degraded after open");
        for (let n = 0; n < KEYS; n++) {
          const got = await cache.get(`k${n}`);
          if (got !== undefined && Buffer.compare(got, valueForKey(n)) !== 0)
            inconsistent(kind, run, `k${n} holds a damaged value`);
        }
        const temps = await countFiles(dir, (name) => name.startsWith(".tmp-"));
        f.staleTempFilesAfterReRun += temps;
        // Re-run: writes complete and read back.
        let ok = true;
        for (let n = 0; n < 10; n++) {
          await cache.set(`k${n}`, valueForKey(n));
          const got = await cache.get(`k${n}`);
          if (got === undefined || Buffer.compare(got, valueForKey(n)) !== 0) {
            ok = false;
            inconsistent(kind, run, `k${n} not readable after a fresh set`);
          }
        }
        if (ok) f.reRunsOk++;
      } finally {
        await cache.close();
      }
    }
    expect(figures.inconsistencies.filter((i) => i.startsWith(kind))).toEqual([]);
    expect(f.reRunsOk).toBe(RUNS);
  }, 600_000);
});
