import { isBlobError } from "@blobkit/core";
import { CliError, EXIT, exitCodeFor, usageError } from "../exit-codes.ts";
import { humanBytes, parseSize } from "../format.ts";
import { array, integer, object, oneOf, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg, openArchive, SKIP_CACHE } from "./common.ts";

export const cat: CommandSpec = {
  name: "cat",
  summary: "Print files of an archive, verified",
  description:
    "A file up to the buffer limit (default 64 MiB, --buffer-limit or config `catBufferLimit`) is read whole and verified (size and SHA-256) before a single byte is printed: unverified bytes never reach stdout. A larger file is streamed; if its hash does not match at the end, blob exits 4 with an error saying the output is invalid. Every path is checked before anything is printed. With --json, the files come back in one document (UTF-8 text as is, other content base64) and must fit the buffer limit.",
  args: [
    { name: "ref", required: true, description: "registry reference or oci:<dir>[:tag|@digest]" },
    {
      name: "path",
      required: true,
      variadic: true,
      description: "archive paths of files (leading / optional)",
    },
  ],
  options: [
    {
      flags: "--buffer-limit <size>",
      description: "largest file verified before printing (e.g. 64MiB, 0 = stream everything)",
    },
    SKIP_CACHE,
  ],
  examples: [
    { command: "blob cat oci:./store:v1 config/app.json", description: "print one file" },
    {
      command: "blob cat ghcr.io/acme/configs:v1 /a.txt /b.txt > both.txt",
      description: "concatenate two files",
    },
    {
      command: "blob cat oci:./store:v1 logo.png --json | jq -r .files[0].content | base64 -d",
      description: "binary content in JSON (base64)",
    },
  ],
  json: object({
    reference: string(),
    digest: string(),
    files: array(
      object({
        path: string(),
        size: integer(),
        sha256: string("verified SHA-256 (hex)"),
        encoding: oneOf(["utf8", "base64"]),
        content: string(),
      }),
    ),
  }),
  async action(ctx, args, opts) {
    const input = arg(args, "ref");
    const paths = (args.path as string[] | undefined) ?? [];
    let limit = ctx.config.catBufferLimit;
    if (opts.bufferLimit !== undefined) {
      const parsed = parseSize(String(opts.bufferLimit));
      if (parsed === undefined)
        throw usageError(`invalid --buffer-limit ${JSON.stringify(opts.bufferLimit)}`);
      limit = parsed;
    }
    const { archive, reference, digest } = await openArchive(ctx, input, {
      skipCache: opts.skipCache === true,
    });
    const stats = [];
    for (const path of paths) {
      const stat = await archive.stat(path);
      if (stat.type === "directory")
        throw new CliError(`${path} is a directory; use ls, tree or cp`, EXIT.ERROR, "ERR_IS_DIRECTORY");
      stats.push(stat);
    }
    if (ctx.json) {
      const files = [];
      for (const stat of stats) {
        if (stat.size > limit)
          throw new CliError(
            `${stat.path} is ${humanBytes(stat.size)}, more than the buffer limit; --json needs whole files`,
            EXIT.ERROR,
            "ERR_LIMIT_EXCEEDED",
          );
        const bytes = await archive.readFile(stat.path, { signal: ctx.signal });
        let text: string | undefined;
        try {
          text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          text = undefined;
        }
        files.push({
          path: stat.path,
          size: stat.size,
          sha256: stat.sha256 as string,
          encoding: text === undefined ? "base64" : "utf8",
          content: text ?? Buffer.from(bytes).toString("base64"),
        });
      }
      await ctx.result({ reference, digest, files }, () => "");
      return;
    }
    for (const stat of stats) {
      if (stat.size <= limit) {
        await ctx.outBytes(await archive.readFile(stat.path, { signal: ctx.signal }));
        continue;
      }
      ctx.log(
        `${stat.path}: ${humanBytes(stat.size)} is above the buffer limit; streaming, verified at the end`,
      );
      let written = 0;
      try {
        for await (const chunk of archive.createReadStream(stat.path, { signal: ctx.signal })) {
          await ctx.outBytes(chunk);
          written += chunk.byteLength;
        }
      } catch (error) {
        if (isBlobError(error) && exitCodeFor(error) === EXIT.INTEGRITY) {
          throw new CliError(
            `${stat.path} failed verification after ${written} bytes were written: the output is invalid (${error.message})`,
            EXIT.INTEGRITY,
            error.code,
            { cause: error },
          );
        }
        throw error;
      }
    }
  },
};
