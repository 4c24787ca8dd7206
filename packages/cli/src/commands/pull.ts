import { readdir, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { CliError, EXIT } from "../exit-codes.ts";
import { humanBytes } from "../format.ts";
import { integer, object, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg, openArchive, POLICY_OPTIONS, policiesFor, SKIP_CACHE } from "./common.ts";

/** Refuses a destination that exists and is not an empty directory, unless forced. */
export async function checkDestination(dest: string, force: boolean): Promise<void> {
  const info = await stat(dest).catch(() => undefined);
  if (info === undefined) return;
  if (!info.isDirectory())
    throw new CliError(`${dest} exists and is not a directory`, EXIT.ERROR, "ERR_EXISTS");
  if (!force && (await readdir(dest)).length > 0) {
    throw new CliError(
      `${dest} is not empty; use --force to extract into it (existing files are overwritten)`,
      EXIT.ERROR,
      "ERR_EXISTS",
    );
  }
}

export const pull: CommandSpec = {
  name: "pull",
  summary: "Extract a whole archive into a directory",
  description:
    "Every file is verified (size and SHA-256) before it becomes visible; a failure leaves no partial file. The destination (default: the current directory) must be empty or missing unless --force, which overwrites existing files. Permission bits and mtimes are those of the archive by default (one rule for pull and cp); --no-preserve-mode gives 0644 minus the umask.",
  args: [
    { name: "ref", required: true, description: "registry reference or oci:<dir>[:tag|@digest]" },
    { name: "dir", description: "destination directory (default: .)" },
  ],
  options: [
    { flags: "-f, --force", description: "extract into a non-empty directory, overwriting existing files" },
    { flags: "--overwrite", description: "same as --force", hidden: true },
    { flags: "--no-preserve-mode", description: "files get 0644 (minus umask) instead of the archived mode" },
    { flags: "--no-preserve-times", description: "files get the current time instead of the archived mtime" },
    SKIP_CACHE,
    ...POLICY_OPTIONS,
  ],
  examples: [
    {
      command: "blob pull oci:./store:v1 ./out",
      description: "extract tag v1 of the local layout into ./out",
    },
    {
      command: "blob pull ghcr.io/acme/configs:v1 /etc/acme --force",
      description: "update an existing directory",
    },
    {
      command: "blob pull ghcr.io/acme/configs@sha256:3f… ./cfg --json",
      description: "pinned by digest, machine-readable summary",
    },
  ],
  json: object({
    reference: string("canonical reference with the digest"),
    digest: string(),
    destination: string("absolute path"),
    fileCount: integer("files written"),
    totalSize: integer("bytes written"),
    skipped: integer("existing files left alone"),
    policiesApplied: integer(),
  }),
  async action(ctx, args, opts) {
    const input = arg(args, "ref");
    const dest = resolve(ctx.io.cwd, typeof args.dir === "string" ? args.dir : ".");
    const force = opts.force === true || opts.overwrite === true;
    await checkDestination(dest, force);
    const policies = await policiesFor(ctx, ctx.ref(input), opts);
    const { archive, reference, digest } = await openArchive(ctx, input, {
      skipCache: opts.skipCache === true,
      policies,
    });
    const progress = ctx.progress("pulling");
    const result = await archive.extract(dest, {
      overwrite: force,
      preserveMode: opts.preserveMode !== false,
      preserveTimes: opts.preserveTimes !== false,
      signal: ctx.signal,
      onProgress(event) {
        progress.update({
          bytesDone: event.bytesDone,
          bytesTotal: event.bytesTotal,
          filesDone: event.filesDone,
          filesTotal: event.filesTotal,
        });
      },
    });
    progress.stop();
    await ctx.result(
      {
        reference,
        digest,
        destination: dest,
        fileCount: result.fileCount,
        totalSize: result.totalBytes,
        skipped: result.skipped,
        policiesApplied: policies.length,
      },
      () =>
        `Pulled ${reference}\n  into ${dest}: ${result.fileCount} files, ${humanBytes(result.totalBytes)}${result.skipped > 0 ? `, ${result.skipped} skipped` : ""}`,
    );
  },
};
