import type { FileStat } from "@blobkit/core";
import { columns, humanSize, modeString, octalMode } from "../format.ts";
import { array, integer, type JsonSchema, object, oneOf, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg, openArchive, SKIP_CACHE } from "./common.ts";

function entryDocument(stat: FileStat) {
  return {
    name: stat.name,
    path: stat.path,
    type: stat.type,
    size: stat.size,
    mode: octalMode(stat.mode),
    ...(stat.type === "file"
      ? {
          sha256: stat.sha256 as string,
          mtime: stat.mtime.toISOString(),
          compression: stat.compression as string,
        }
      : {}),
  };
}

export const entrySchema: JsonSchema = object({
  name: string(),
  path: string("archive path"),
  type: oneOf(["file", "directory"]),
  size: integer("uncompressed size (0 for directories)"),
  mode: string("octal permission bits, e.g. 0644"),
  "sha256?": string("files: SHA-256 (hex)"),
  "mtime?": string("files: RFC 3339"),
  "compression?": oneOf(["none", "zstd"]),
});

export const ls: CommandSpec = {
  name: "ls",
  summary: "List a directory of an archive (manifest and index only; no file content is fetched)",
  description:
    "Immediate children sorted by name, directories suffixed with `/`. A path naming a file lists that file; a missing path is an error (exit 3), not an empty listing.",
  longHelpOnly: true,
  args: [
    { name: "ref", required: true, description: "registry reference or oci:<dir>[:tag|@digest]" },
    { name: "path", description: "directory or file in the archive (default: the root)" },
  ],
  options: [
    { flags: "-l, --long", description: "mode, size and modification time" },
    { flags: "-h, --human", description: "sizes as K/M/G (1024-based)" },
    { flags: "--digest", description: "show the first 12 hex digits of each file's SHA-256" },
    SKIP_CACHE,
  ],
  examples: [
    { command: "blob ls oci:./store:v1", description: "the archive's top level" },
    { command: "blob ls -lh ghcr.io/acme/configs:v1 /config", description: "long listing with human sizes" },
    { command: "blob ls oci:./store:v1 --json | jq -r '.entries[].path'", description: "paths for scripts" },
  ],
  json: object({ reference: string(), digest: string(), path: string(), entries: array(entrySchema) }),
  async action(ctx, args, opts) {
    const { archive, reference, digest } = await openArchive(ctx, arg(args, "ref"), {
      skipCache: opts.skipCache === true,
    });
    const path = typeof args.path === "string" ? args.path : ".";
    const target = await archive.stat(path);
    const children: FileStat[] = [];
    if (target.type === "file") children.push(target);
    else
      for (const child of await archive.readDir(target.path))
        children.push(await archive.stat(target.path === "." ? child.name : `${target.path}/${child.name}`));
    await ctx.result(
      { reference, digest, path: target.path, entries: children.map(entryDocument) },
      () => {
        const name = (s: FileStat): string =>
          s.type === "directory" ? `${ctx.style(s.name, "blue")}/` : s.name;
        if (opts.long !== true && opts.digest !== true) return children.map(name).join("\n");
        const rows = children.map((s) => {
          const row: string[] = [];
          if (opts.long === true) {
            row.push(modeString(s.mode, s.type === "directory"));
            row.push(opts.human === true ? humanSize(s.size) : String(s.size));
            row.push(s.type === "file" ? s.mtime.toISOString().slice(0, 16).replace("T", " ") : "-");
          }
          if (opts.digest === true)
            row.push(s.sha256 === undefined ? "-".padEnd(19) : `sha256:${s.sha256.slice(0, 12)}`);
          row.push(name(s));
          return row;
        });
        return columns(rows, opts.long === true ? ["left", "right"] : []);
      },
      { quietable: false },
    );
  },
};
