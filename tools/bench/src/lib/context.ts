// What every comparison gets: options, the servers, the datasets and their artifacts (lazily prepared, so
// `--only` prepares only what it needs).
import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import { anonymousCredentials, Client } from "@blobkit/registry";
import type { RedisServer } from "../../../../packages/cache-redis/test/redis-server.ts";
import { startRedis } from "../../../../packages/cache-redis/test/redis-server.ts";
import type { RunningRegistry } from "../../../../packages/registry/test/registry-server.ts";
import {
  blobkitOf,
  type Dataset,
  type DatasetName,
  type DatasetSpec,
  ensureDataset,
  tarGzOf,
  tarZstOf,
  zipOf,
} from "./datasets.ts";
import type { Nginx } from "./servers.ts";

export interface ContextInit {
  quick: boolean;
  runs: number;
  heavyRuns: number;
  root: string;
  dataRoot: string;
  work: string;
  nginx: Nginx;
  registry: RunningRegistry;
  specs: Record<DatasetName, DatasetSpec>;
  log: (s: string) => void;
}

export class Context {
  readonly quick: boolean;
  /** Timed runs of light comparisons. */
  readonly runs: number;
  /** Timed runs of the heavy ones (whole-archive extract, create, push). */
  readonly heavyRuns: number;
  readonly root: string;
  readonly dataRoot: string;
  /** Scratch directory of this run (removed at the end). */
  readonly work: string;
  readonly nginx: Nginx;
  readonly registry: RunningRegistry;
  readonly specs: Record<DatasetName, DatasetSpec>;
  readonly log: (s: string) => void;
  readonly #memo = new Map<string, Promise<unknown>>();
  #redis: Promise<RedisServer> | undefined;
  #pushSeq = 0;

  constructor(init: ContextInit) {
    this.quick = init.quick;
    this.runs = init.runs;
    this.heavyRuns = init.heavyRuns;
    this.root = init.root;
    this.dataRoot = init.dataRoot;
    this.work = init.work;
    this.nginx = init.nginx;
    this.registry = init.registry;
    this.specs = init.specs;
    this.log = init.log;
  }

  #once<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.#memo.get(key) as Promise<T> | undefined;
    if (p === undefined) {
      p = make();
      this.#memo.set(key, p);
    }
    return p;
  }

  /** The dataset if some comparison prepared it. */
  datasetIfLoaded(name: DatasetName): Promise<Dataset | undefined> {
    return (this.#memo.get(`ds:${name}`) as Promise<Dataset> | undefined) ?? Promise.resolve(undefined);
  }

  dataset(name: DatasetName): Promise<Dataset> {
    return this.#once(`ds:${name}`, () => ensureDataset(this.dataRoot, this.specs[name], this.log));
  }

  #artifact(name: DatasetName, kind: string, build: (ds: Dataset) => Promise<string>): Promise<string> {
    return this.#once(`${kind}:${name}`, async () => {
      const ds = await this.dataset(name);
      const t = performance.now();
      const path = await build(ds);
      const ms = performance.now() - t;
      if (ms > 1000) this.log(`built ${kind} of ${name} in ${(ms / 1000).toFixed(1)} s (cached)`);
      return path;
    });
  }

  zip(name: DatasetName): Promise<string> {
    return this.#artifact(name, "zip", zipOf);
  }
  tarGz(name: DatasetName): Promise<string> {
    return this.#artifact(name, "tar.gz", tarGzOf);
  }
  tarZst(name: DatasetName): Promise<string> {
    return this.#artifact(name, "tar.zst", tarZstOf);
  }
  blobkit(name: DatasetName): Promise<{ dir: string; indexPath: string; dataPath: string }> {
    return this.#once(`blobkit:${name}`, async () => {
      const ds = await this.dataset(name);
      const t = performance.now();
      const out = await blobkitOf(ds);
      const ms = performance.now() - t;
      if (ms > 1000) this.log(`built blobkit archive of ${name} in ${(ms / 1000).toFixed(1)} s (cached)`);
      return out;
    });
  }

  /** URL of a file under the data root on nginx. */
  url(path: string): string {
    return this.nginx.url(relative(this.dataRoot, path));
  }

  /** The dataset's blobkit archive pushed (once per run) to the registry behind nginx; its reference. */
  pushed(name: DatasetName): Promise<string> {
    return this.#once(`push:${name}`, async () => {
      const { indexPath, dataPath } = await this.blobkit(name);
      const ref = `${this.nginx.host}/bench/${name}:v1`;
      const client = new Client({ credentials: anonymousCredentials });
      try {
        await client.push(ref, { index: await readFile(indexPath), data: { path: dataPath } });
      } finally {
        await client.close();
      }
      return ref;
    });
  }

  /** A fresh repository reference for pushes that must upload everything. */
  freshRef(prefix: string): string {
    return `${this.nginx.host}/bench/${prefix}-${++this.#pushSeq}-${Date.now()}:v1`;
  }

  redis(): Promise<RedisServer> {
    this.#redis ??= startRedis();
    return this.#redis;
  }

  async stopRedis(): Promise<void> {
    if (this.#redis !== undefined) await (await this.#redis).stop();
  }
}
