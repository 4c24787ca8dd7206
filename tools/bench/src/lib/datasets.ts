// Deterministic datasets, generated once and cached under `bench/.data/<name>-<hash of parameters>/`
// (git-ignored), together with the artifacts built from them (zip, tar.gz, tar.zst, blobkit local archive).
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { createLocalArchive } from "@blobkit/core";
import { prng, randomBytesSeeded, textBytes } from "./generate.ts";

const exec = promisify(execFile);
const MiB = 1024 * 1024;
/** Bump when the generators change: the cache key changes with it. */
const GENERATOR_VERSION = 2;

export type DatasetName = "source" | "large" | "small";

export interface DatasetSpec {
  name: DatasetName;
  seed: number;
  files?: number;
  totalBytes?: number;
}

export interface FileInfo {
  path: string;
  size: number;
  incompressible: boolean;
}

export interface Dataset {
  spec: DatasetSpec;
  /** `bench/.data/<name>-<key>`. */
  dir: string;
  /** Directory name under `bench/.data` (the URL path prefix on the static server). */
  key: string;
  tree: string;
  files: FileInfo[];
  totalBytes: number;
}

/** The three sets of issue #9, full or quick size. */
export function datasetSpecs(quick: boolean): Record<DatasetName, DatasetSpec> {
  return {
    source: {
      name: "source",
      seed: 101,
      files: quick ? 2_500 : 10_000,
      totalBytes: (quick ? 25 : 100) * MiB,
    },
    large: { name: "large", seed: 202, totalBytes: (quick ? 256 : 1024) * MiB },
    small: { name: "small", seed: 303, files: 100_000 },
  };
}

/** Paths the comparisons rely on. */
export const SOURCE_DIR_500 = "src/components";
export const LARGE_FILE_64K = "read/file-64k.txt";
export const LARGE_FILE_64M = "media/stream-64m.bin";

function layout(spec: DatasetSpec): FileInfo[] {
  const rand = prng(spec.seed);
  const out: FileInfo[] = [];
  if (spec.name === "source") {
    const n = spec.files as number;
    const mean = (spec.totalBytes as number) / n;
    // size = 200 + r1 · r2 · k (two independent uniforms) has mean 200 + k/4.
    const k = Math.max(0, (mean - 200) * 4);
    for (let i = 0; i < n; i++) {
      const incompressible = rand() < 0.03;
      const size = 200 + Math.floor(rand() * rand() * k);
      let path: string;
      if (i < 500) path = `${SOURCE_DIR_500}/component-${String(i).padStart(3, "0")}.tsx`;
      else if (incompressible) path = `assets/img${i % 7}/asset-${i}.png`;
      else {
        const pkg = i % 40;
        const sub = ["lib", "test", "util", "internal", "docs"][i % 5];
        const ext = [".ts", ".ts", ".ts", ".json", ".md"][Math.floor(rand() * 5)];
        path = `packages/pkg${pkg}/${sub}/m${i % 11}/file-${i}${ext}`;
      }
      out.push({ path, size, incompressible });
    }
  } else if (spec.name === "large") {
    out.push({ path: LARGE_FILE_64K, size: 64 * 1024, incompressible: false });
    out.push({ path: LARGE_FILE_64M, size: 64 * MiB, incompressible: true });
    let total = 64 * 1024 + 64 * MiB;
    const target = spec.totalBytes as number;
    for (let i = 0; total < target; i++) {
      const kind = rand();
      let size =
        kind < 0.7
          ? 4096 + Math.floor(rand() * 252 * 1024)
          : kind < 0.97
            ? 256 * 1024 + Math.floor(rand() * 3.75 * MiB)
            : 4 * MiB + Math.floor(rand() * 60 * MiB);
      size = Math.min(size, target - total, 64 * MiB);
      if (size <= 0) break;
      const incompressible = rand() < 0.4;
      out.push({
        path: `d${i % 23}/s${i % 7}/f${i}${incompressible ? ".bin" : ".txt"}`,
        size,
        incompressible,
      });
      total += size;
    }
  } else {
    const n = spec.files as number;
    for (let i = 0; i < n; i++) {
      out.push({
        path: `p${i % 100}/q${Math.floor(i / 100) % 20}/f${i}.txt`,
        size: 16 + Math.floor(rand() * 1008),
        incompressible: false,
      });
    }
  }
  return out;
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

export function datasetKey(spec: DatasetSpec): string {
  const hash = createHash("sha256")
    .update(JSON.stringify({ ...spec, v: GENERATOR_VERSION }))
    .digest("hex")
    .slice(0, 12);
  return `${spec.name}-${hash}`;
}

/** Generates (or finds in the cache) a dataset. */
export async function ensureDataset(
  root: string,
  spec: DatasetSpec,
  log: (s: string) => void,
): Promise<Dataset> {
  const key = datasetKey(spec);
  const dir = join(root, key);
  const tree = join(dir, "tree");
  const manifest = join(dir, "files.json");
  if (!existsSync(manifest)) {
    const t = performance.now();
    await rm(dir, { recursive: true, force: true });
    const files = layout(spec);
    const dirs = new Set(files.map((f) => dirname(join(tree, f.path))));
    for (const d of dirs) await mkdir(d, { recursive: true });
    const rand = prng(spec.seed ^ 0x9e3779b9);
    // Content seeds are drawn in order, so the content does not depend on write concurrency.
    const seeds = files.map(() => Math.floor(rand() * 2 ** 32));
    await pool(files, 8, async (f, i) => {
      const bytes = f.incompressible
        ? randomBytesSeeded(f.size, `${spec.seed}:${i}`)
        : textBytes(f.size, prng(seeds[i]!));
      await writeFile(join(tree, f.path), bytes);
    });
    await writeFile(manifest, JSON.stringify(files));
    const total = files.reduce((n, f) => n + f.size, 0);
    log(
      `generated ${spec.name}: ${files.length} files, ${(total / MiB).toFixed(0)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
  }
  const files = JSON.parse(await readFile(manifest, "utf8")) as FileInfo[];
  return { spec, dir, key, tree, files, totalBytes: files.reduce((n, f) => n + f.size, 0) };
}

/** Builds an artifact once: `build(tmpPath)` then an atomic rename to `path`. */
async function once(path: string, build: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(path)) return path;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await build(tmp);
  await rename(tmp, path);
  return path;
}

const sh = (command: string) => exec("bash", ["-o", "pipefail", "-c", command], { maxBuffer: 1 << 24 });

/** `tree.zip` (Info-ZIP `zip -r`, deflate level 6, incompressible files stored). */
export function zipOf(ds: Dataset): Promise<string> {
  return once(join(ds.dir, "tree.zip"), (tmp) =>
    sh(`cd '${ds.tree}' && zip -q -r -X '${tmp}' .`).then(() => {}),
  );
}
/** `tree.tar.gz` (`tar -czf`, gzip -6). */
export function tarGzOf(ds: Dataset): Promise<string> {
  return once(join(ds.dir, "tree.tar.gz"), (tmp) => sh(`tar -C '${ds.tree}' -czf '${tmp}' .`).then(() => {}));
}
/** `tree.tar.zst` (`tar -cf - | zstd -3`). */
export function tarZstOf(ds: Dataset): Promise<string> {
  return once(join(ds.dir, "tree.tar.zst"), (tmp) =>
    sh(`tar -C '${ds.tree}' -cf - . | zstd -3 -q -o '${tmp}'`).then(() => {}),
  );
}
/** The blobkit archive (`createLocalArchive`, defaults: zstd level 3): `blobkit/index.blob` + `data.blob`. */
export async function blobkitOf(ds: Dataset): Promise<{ dir: string; indexPath: string; dataPath: string }> {
  const dir = await once(join(ds.dir, "blobkit"), async (tmp) => {
    await createLocalArchive(ds.tree, tmp);
  });
  return { dir, indexPath: join(dir, "index.blob"), dataPath: join(dir, "data.blob") };
}
