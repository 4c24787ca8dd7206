import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { CliError, EXIT, usageError } from "../exit-codes.ts";
import { humanBytes } from "../format.ts";
import { array, boolean, integer, object, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg, list } from "./common.ts";
import { SIGNING_OPTIONS, signerFromOptions } from "./sign.ts";

export const push: CommandSpec = {
  name: "push",
  summary: "Pack a directory into an archive and push it to a registry or an oci: layout",
  description:
    "Packs <dir> (regular files; per-file zstd unless -c none; files under 1 KiB and already-compressed types stay raw) into an index + data blob, uploads data, index and config, then the manifest under the reference's tag (default `latest`) and every --tag. An interrupted push publishes nothing. Aliases from the config apply (unlike the Go CLI).",
  args: [
    { name: "ref", required: true, description: "destination: registry reference or oci:<dir>[:tag]" },
    { name: "dir", required: true, description: "directory to pack" },
  ],
  options: [
    {
      flags: "-c, --compression <mode>",
      choices: ["zstd", "none"],
      description: "per-file compression (default: config `compression`, else zstd)",
    },
    { flags: "--level <n>", parser: "int", description: "zstd level, 1..22 (default 3)" },
    { flags: "--no-skip-compressed", description: "also compress small and already-compressed files" },
    {
      flags: "-t, --tag <tag>",
      parser: "repeatable",
      description: "one more tag for the same manifest; repeatable",
    },
    {
      flags: "-a, --annotation <key=value>",
      parser: "repeatable",
      description: "manifest annotation; repeatable",
    },
    {
      flags: "--deterministic",
      description:
        "reproducible archive: mtimes from SOURCE_DATE_EPOCH (else 0), uid/gid 0, fixed created time",
    },
    { flags: "--sign", description: "sign the manifest after pushing (keyless, or --key; see `blob sign`)" },
    ...SIGNING_OPTIONS,
  ],
  examples: [
    {
      command: "blob push oci:./store:v1 ./site",
      description: "pack ./site into the local layout ./store as tag v1",
    },
    {
      command: "blob push ghcr.io/acme/configs:v1 ./configs -t latest",
      description: "push to a registry under two tags",
    },
    {
      command:
        "blob push localhost:5000/app:v2 ./dist -c none -a org.opencontainers.image.source=https://github.com/acme/app",
      description: "no compression, with an annotation (localhost is plain HTTP automatically)",
    },
  ],
  json: object({
    reference: string("canonical reference with the digest"),
    digest: string("manifest digest"),
    tags: array(string()),
    fileCount: integer(),
    totalSize: integer("sum of the files' sizes"),
    dataSize: integer("size of the data blob"),
    indexSize: integer("size of the index blob"),
    signed: boolean(),
  }),
  async action(ctx, args, opts) {
    // The signer is set up first: a missing key or token fails before anything is uploaded.
    const signer = opts.sign === true ? await signerFromOptions(ctx, opts) : undefined;
    const input = arg(args, "ref");
    const dir = resolve(ctx.io.cwd, arg(args, "dir"));
    const info = await stat(dir).catch(() => undefined);
    if (info === undefined) throw new CliError(`no such directory: ${dir}`, EXIT.NOT_FOUND, "ERR_NOT_FOUND");
    if (!info.isDirectory()) throw usageError(`${dir} is not a directory`);
    const annotations: Record<string, string> = {};
    for (const pair of list(opts, "annotation")) {
      const eq = pair.indexOf("=");
      if (eq <= 0) throw usageError(`invalid annotation ${JSON.stringify(pair)}: expected key=value`);
      annotations[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    const compression = (opts.compression as "zstd" | "none" | undefined) ?? ctx.config.compression;
    const deterministic = opts.deterministic === true;
    const reference = ctx.ref(input);
    const client = await ctx.client();
    const progress = ctx.progress("packing");
    let totalSize = 0;
    ctx.log(`packing ${dir} (${compression}) → ${reference}`);
    const result = await client.push(reference, dir, {
      create: {
        compression,
        ...(typeof opts.level === "number" ? { level: opts.level } : {}),
        ...(opts.skipCompressed === false ? { skipCompression: false as const } : {}),
        ...(deterministic ? { deterministic: true } : {}),
      },
      tags: list(opts, "tag"),
      annotations,
      ...(deterministic ? { created: new Date(Number(ctx.io.env.SOURCE_DATE_EPOCH ?? 0) * 1000) } : {}),
      signal: ctx.signal,
      onProgress(event) {
        if (event.phase === "create") {
          totalSize = event.bytesTotal;
          progress.update({
            label: "packing",
            bytesDone: event.bytesDone,
            bytesTotal: event.bytesTotal,
            filesDone: event.filesDone,
            filesTotal: event.filesTotal,
          });
        } else if (event.blob === "data") {
          progress.update({ label: "uploading", bytesDone: event.bytes, bytesTotal: event.total });
        }
      },
    });
    progress.stop();
    let signatureDigest: string | undefined;
    if (signer !== undefined) {
      // The digest just pushed, never a cached tag resolution (Go §10 item 6).
      signatureDigest = (await client.sign(result.reference, signer, { signal: ctx.signal })).digest;
    }
    const document = {
      reference: result.reference,
      digest: result.descriptor.digest,
      tags: result.tags,
      fileCount: result.fileCount,
      totalSize,
      dataSize: result.data.size,
      indexSize: result.index.size,
      signed: signatureDigest !== undefined,
    };
    await ctx.result(
      document,
      () =>
        `Pushed ${result.reference}\n  ${result.fileCount} files, ${humanBytes(totalSize)} (${humanBytes(result.data.size)} stored), tags: ${result.tags.join(", ")}${signatureDigest === undefined ? "" : `\n  signed: ${signatureDigest}`}`,
    );
  },
};
