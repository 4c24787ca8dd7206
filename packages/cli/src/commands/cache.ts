import { countDiskEntries } from "../cache.ts";
import type { Context } from "../context.ts";
import { CliError, EXIT, usageError } from "../exit-codes.ts";
import { humanBytes, parseSize } from "../format.ts";
import { boolean, integer, object, oneOf, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";

const kind = oneOf(["disk", "redis"], "disk directory or Redis");

async function opened(ctx: Context) {
  const cache = await ctx.cache();
  if (cache === undefined)
    throw new CliError(
      "the cache is disabled (--no-cache / config cache.enabled: false)",
      EXIT.USAGE,
      "ERR_USAGE",
    );
  return cache;
}

const status: CommandSpec = {
  name: "status",
  summary: "Size and entry count of the cache",
  examples: [
    { command: "blob cache status", description: "the default disk cache" },
    { command: "blob cache status --cache redis://cache.internal:6379 --json", description: "a Redis cache" },
  ],
  json: object({
    kind,
    location: string(),
    enabled: boolean(),
    sizeBytes: integer(),
    "entries?": integer("disk only"),
    maxBytes: integer(),
  }),
  async action(ctx) {
    const cache = await opened(ctx);
    const sizeBytes = (await cache.cache.sizeBytes?.({ signal: ctx.signal })) ?? 0;
    const entries = cache.kind === "disk" ? await countDiskEntries(cache.location) : undefined;
    await ctx.result(
      {
        kind: cache.kind,
        location: cache.location,
        enabled: true,
        sizeBytes,
        ...(entries === undefined ? {} : { entries }),
        maxBytes: ctx.config.cache.maxSize,
      },
      () =>
        `Cache:   ${cache.kind} ${cache.location}\nSize:    ${humanBytes(sizeBytes)} of ${humanBytes(ctx.config.cache.maxSize)}${entries === undefined ? "" : `\nEntries: ${entries}`}`,
      { quietable: false },
    );
  },
};

const path: CommandSpec = {
  name: "path",
  summary: "Print where the cache lives (directory or redacted Redis URL)",
  examples: [{ command: 'du -sh "$(blob cache path)"', description: "disk usage of the cache directory" }],
  json: object({ kind, location: string(), enabled: boolean() }),
  async action(ctx) {
    const location = ctx.config.cache.location;
    const redis = /^rediss?:/.test(location);
    const shown = redis ? (await import("../format.ts")).redactUrl(location) : location;
    await ctx.result(
      { kind: redis ? "redis" : "disk", location: shown, enabled: ctx.config.cache.enabled },
      () => shown,
      { quietable: false },
    );
  },
};

const prune: CommandSpec = {
  name: "prune",
  summary: "Evict least-recently-used entries down to a size",
  options: [
    { flags: "--max-size <size>", description: "target size (default: config cache.maxSize, 1 GiB)" },
  ],
  examples: [{ command: "blob cache prune --max-size 100MiB", description: "shrink the cache to 100 MiB" }],
  json: object({ kind, location: string(), freedBytes: integer(), sizeBytes: integer() }),
  async action(ctx, _args, opts) {
    let target = ctx.config.cache.maxSize;
    if (opts.maxSize !== undefined) {
      const parsed = parseSize(String(opts.maxSize));
      if (parsed === undefined) throw usageError(`invalid --max-size ${JSON.stringify(opts.maxSize)}`);
      target = parsed;
    }
    const cache = await opened(ctx);
    const freedBytes = (await cache.cache.prune?.(target, { signal: ctx.signal })) ?? 0;
    const sizeBytes = (await cache.cache.sizeBytes?.({ signal: ctx.signal })) ?? 0;
    await ctx.result(
      { kind: cache.kind, location: cache.location, freedBytes, sizeBytes },
      () => `Freed ${humanBytes(freedBytes)}; ${humanBytes(sizeBytes)} left`,
    );
  },
};

const clear: CommandSpec = {
  name: "clear",
  summary: "Remove every cache entry (the cache is never a source of truth, so no prompt)",
  examples: [{ command: "blob cache clear", description: "empty the default cache" }],
  json: object({ kind, location: string(), freedBytes: integer() }),
  async action(ctx) {
    const cache = await opened(ctx);
    const freedBytes = (await cache.cache.prune?.(0, { signal: ctx.signal })) ?? 0;
    await ctx.result(
      { kind: cache.kind, location: cache.location, freedBytes },
      () => `Cleared ${humanBytes(freedBytes)} from ${cache.location}`,
    );
  },
};

export const cache: CommandSpec = {
  name: "cache",
  summary: "Inspect and manage the cache (disk directory or Redis)",
  description:
    "The cache holds tag resolutions (TTL), manifests, indexes and verified file contents; everything read from it is verified again. Default: a disk cache in $XDG_CACHE_HOME/blob (else ~/.cache/blob); --cache <dir|redis://…> selects another, --no-cache none.",
  subcommands: [status, path, prune, clear],
  examples: [
    { command: "blob cache status", description: "how big the cache is" },
    { command: "blob cache clear", description: "start from scratch" },
  ],
};
