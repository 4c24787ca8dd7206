import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, rename, rm, stat, utimes } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Archive } from "@blobkit/core";
import { CliError, EXIT, usageError } from "../exit-codes.ts";
import { humanBytes } from "../format.ts";
import { array, integer, object, string } from "../json-schema.ts";
import { parseCopySource } from "../refs.ts";
import type { CommandSpec } from "../spec.ts";
import { type OpenedArchive, openArchive, SKIP_CACHE } from "./common.ts";

/** Writes one verified file: streamed to a temp file next to the target, renamed only after verification. */
async function copyFile(
  archive: Archive,
  path: string,
  target: string,
  options: { force: boolean; preserveMode: boolean; preserveTimes: boolean; signal: AbortSignal },
): Promise<number> {
  const existing = await stat(target).catch(() => undefined);
  if (existing !== undefined) {
    if (existing.isDirectory()) throw new CliError(`${target} is a directory`, EXIT.ERROR, "ERR_EXISTS");
    if (!options.force)
      throw new CliError(`${target} exists; use --force to overwrite it`, EXIT.ERROR, "ERR_EXISTS");
  }
  const info = await archive.stat(path);
  await mkdir(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.blobkit-${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temp, "wx", 0o600);
  try {
    try {
      for await (const chunk of archive.createReadStream(path, { signal: options.signal }))
        await handle.write(chunk);
    } finally {
      await handle.close();
    }
    await chmod(temp, options.preserveMode ? info.mode & 0o777 : 0o644 & ~process.umask());
    if (options.preserveTimes) await utimes(temp, info.mtime, info.mtime);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return info.size;
}

export const cp: CommandSpec = {
  name: "cp",
  summary: "Copy files or directories out of archives",
  description:
    "Sources are <ref>:/<path>: after an optional oci: prefix, the reference ends at the first `:/` (registry references never contain `:/`; a layout directory must not), and the archive path starts with `/` (`:/` alone is the whole archive). A file goes to <dest> itself, or into <dest> when it is an existing directory, ends with `/`, or there are several sources. A directory keeps its full archive path under <dest> (as the Go CLI does): `app:v1:/config/` into `out/` gives `out/config/…`. Files are verified before they appear; existing files are refused (a single file) or skipped with a warning (directories) unless --force. Modes and mtimes follow the archive by default, as for pull.",
  args: [
    {
      name: "source",
      required: true,
      variadic: true,
      description: "<ref>:/<path> (one or more), then the destination",
    },
  ],
  options: [
    { flags: "-f, --force", description: "overwrite existing files" },
    { flags: "--no-preserve-mode", description: "files get 0644 (minus umask) instead of the archived mode" },
    { flags: "--no-preserve-times", description: "files get the current time instead of the archived mtime" },
    SKIP_CACHE,
  ],
  examples: [
    {
      command: "blob cp oci:./store:v1:/config/app.json ./app.json",
      description: "one file to an exact path",
    },
    {
      command: "blob cp ghcr.io/acme/configs:v1:/config/ ./out/",
      description: "a directory (→ ./out/config/…)",
    },
    {
      command: "blob cp localhost:5000/app:v1:/a.txt localhost:5000/app:v1:/b.txt ./dir/",
      description: "several files into a directory",
    },
  ],
  json: object({
    sources: array(object({ reference: string(), digest: string(), path: string() })),
    destination: string(),
    fileCount: integer(),
    totalSize: integer(),
    skipped: integer(),
  }),
  async action(ctx, args, opts) {
    const all = (args.source as string[] | undefined) ?? [];
    if (all.length < 2) throw usageError("cp needs at least one <ref>:/<path> source and a destination");
    const destArg = all[all.length - 1] as string;
    const sources = all.slice(0, -1).map(parseCopySource);
    const dest = resolve(ctx.io.cwd, destArg);
    const destInfo = await stat(dest).catch(() => undefined);
    const intoDir = destArg.endsWith("/") || destInfo?.isDirectory() === true || sources.length > 1;
    const force = opts.force === true;
    const preserveMode = opts.preserveMode !== false;
    const preserveTimes = opts.preserveTimes !== false;
    const opened = new Map<string, OpenedArchive>();
    let fileCount = 0;
    let totalSize = 0;
    let skipped = 0;
    const done: { reference: string; digest: string; path: string }[] = [];
    // Resolve every source before writing anything: a typo in the last one must not leave half a copy.
    const plan: { source: (typeof sources)[number]; archive: OpenedArchive; directory: boolean }[] = [];
    for (const source of sources) {
      let archive = opened.get(source.reference);
      if (archive === undefined) {
        archive = await openArchive(ctx, source.reference, { skipCache: opts.skipCache === true });
        opened.set(source.reference, archive);
      }
      const info = await archive.archive.stat(source.path === "" ? "." : source.path);
      if (source.directory && info.type !== "directory")
        throw new CliError(`${source.path} is not a directory`, EXIT.ERROR, "ERR_NOT_DIRECTORY");
      plan.push({ source, archive, directory: info.type === "directory" });
    }
    if (plan.some((p) => p.directory) && destInfo !== undefined && !destInfo.isDirectory())
      throw new CliError(`${dest} is not a directory`, EXIT.ERROR, "ERR_NOT_DIRECTORY");
    const progress = ctx.progress("copying");
    for (const { source, archive, directory } of plan) {
      if (directory) {
        const result = await archive.archive.extract(dest, {
          ...(source.path === "" ? {} : { paths: [source.path] }),
          overwrite: force,
          preserveMode,
          preserveTimes,
          signal: ctx.signal,
          onProgress: (e) =>
            progress.update({
              bytesDone: e.bytesDone,
              bytesTotal: e.bytesTotal,
              filesDone: e.filesDone,
              filesTotal: e.filesTotal,
            }),
        });
        fileCount += result.fileCount;
        totalSize += result.totalBytes;
        skipped += result.skipped;
      } else {
        const target = intoDir ? join(dest, basename(source.path)) : dest;
        totalSize += await copyFile(archive.archive, source.path, target, {
          force,
          preserveMode,
          preserveTimes,
          signal: ctx.signal,
        });
        fileCount++;
      }
      done.push({ reference: archive.reference, digest: archive.digest, path: `/${source.path}` });
    }
    progress.stop();
    if (skipped > 0) ctx.warn(`${skipped} existing file(s) left alone; use --force to overwrite them`);
    await ctx.result(
      { sources: done, destination: dest, fileCount, totalSize, skipped },
      () => `Copied ${fileCount} file(s) (${humanBytes(totalSize)}) to ${dest}`,
    );
  },
};
