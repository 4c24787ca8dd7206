import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { DiskCache } from "@blobkit/cache-disk";
import type { BlobError, Cache } from "@blobkit/core";
import type { BlobConfig } from "./config.ts";
import { redactUrl } from "./format.ts";

/** An open cache and what it is. */
export interface OpenCache {
  kind: "disk" | "redis";
  /** Directory, or the Redis URL with its password redacted. */
  location: string;
  cache: Cache;
  close(): Promise<void>;
}

/** True when `location` selects the Redis cache. */
export function isRedisLocation(location: string): boolean {
  return /^rediss?:\/\//.test(location);
}

/**
 * Opens the configured cache: a {@link DiskCache} on a directory (default `$XDG_CACHE_HOME/blob`), or
 * `@blobkit/cache-redis` for a `redis://` / `rediss://` URL. `undefined` with `--no-cache`.
 */
export async function openCache(
  config: BlobConfig,
  onError: (error: BlobError) => void,
  signal?: AbortSignal,
): Promise<OpenCache | undefined> {
  if (!config.cache.enabled) return undefined;
  const location = config.cache.location;
  if (isRedisLocation(location)) {
    const { RedisCache } = await import("@blobkit/cache-redis");
    const cache = await RedisCache.open({ url: location, onError, signal });
    return { kind: "redis", location: redactUrl(location), cache, close: () => cache.close() };
  }
  const cache = await DiskCache.open({ dir: location, maxBytes: config.cache.maxSize, onError });
  return { kind: "disk", location, cache, close: () => cache.close() };
}

/** Entry files of a disk cache directory (`<2 hex>/<64 hex>`), counted. */
export async function countDiskEntries(dir: string): Promise<number> {
  let count = 0;
  let shards: string[];
  try {
    shards = await readdir(dir);
  } catch {
    return 0;
  }
  for (const shard of shards) {
    if (!/^[0-9a-f]{2}$/.test(shard)) continue;
    try {
      for (const name of await readdir(join(dir, shard))) if (/^[0-9a-f]{64}$/.test(name)) count++;
    } catch {
      // not a directory
    }
  }
  return count;
}
