import { humanBytes } from "../format.ts";
import { array, integer, number, object, oneOf, referrerSchema, string, stringMap } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg, policiesFor, SKIP_CACHE } from "./common.ts";

export const inspect: CommandSpec = {
  name: "inspect",
  summary: "Show an archive's manifest, sizes and referrers (signatures, attestations)",
  description:
    "Reads the manifest and the index only. Referrers come from the registry's referrers API or its tag-schema fallback.",
  args: [{ name: "ref", required: true, description: "registry reference or oci:<dir>[:tag|@digest]" }],
  options: [SKIP_CACHE],
  examples: [
    { command: "blob inspect oci:./store:v1", description: "summary" },
    {
      command: "blob inspect ghcr.io/acme/configs:v1 --json | jq .digest",
      description: "the digest a tag points at",
    },
  ],
  json: object({
    reference: string("canonical reference with the digest"),
    digest: string(),
    mediaType: string(),
    "created?": string("RFC 3339"),
    annotations: stringMap(),
    fileCount: integer(),
    size: object({
      uncompressed: integer("sum of file sizes"),
      stored: integer("sum of stored (compressed) sizes"),
      data: integer("data blob"),
      index: integer("index blob"),
      ratio: number("stored / uncompressed (1 for an empty archive)"),
    }),
    compression: oneOf(["zstd", "none"], "zstd when any file is compressed"),
    index: object({ digest: string(), size: integer() }),
    data: object({ digest: string(), size: integer() }),
    referrers: array(referrerSchema),
  }),
  async action(ctx, args, opts) {
    const reference = ctx.ref(arg(args, "ref"));
    // The index lists every path, size and hash: it is content, so the config file's policy rules apply.
    const client = await ctx.client({ policies: await policiesFor(ctx, reference) });
    const result = await client.inspect(reference, {
      signal: ctx.signal,
      skipCache: opts.skipCache === true,
    });
    let compressed = false;
    for (const entry of result.index) {
      if (entry.compression === "zstd") {
        compressed = true;
        break;
      }
    }
    const manifest = result.manifest;
    const document = {
      reference: result.reference,
      digest: result.descriptor.digest,
      mediaType: result.descriptor.mediaType,
      ...(manifest.created === undefined ? {} : { created: manifest.created.toISOString() }),
      annotations: manifest.annotations,
      fileCount: result.fileCount,
      size: {
        uncompressed: result.totalSize,
        stored: result.storedSize,
        data: result.dataSize,
        index: result.indexSize,
        ratio: result.totalSize === 0 ? 1 : Math.round((result.storedSize / result.totalSize) * 1000) / 1000,
      },
      compression: compressed ? "zstd" : "none",
      index: { digest: manifest.index.digest, size: manifest.index.size },
      data: { digest: manifest.data.digest, size: manifest.data.size },
      referrers: result.referrers.map((r) => ({
        digest: r.digest,
        mediaType: r.mediaType,
        artifactType: r.artifactType ?? null,
        size: r.size,
        ...(r.annotations === undefined ? {} : { annotations: r.annotations }),
      })),
    };
    await ctx.result(
      document,
      () => {
        const lines = [
          `Reference:   ${document.reference}`,
          `Digest:      ${document.digest}`,
          `Files:       ${document.fileCount}`,
          `Size:        ${humanBytes(document.size.uncompressed)} (${humanBytes(document.size.stored)} stored, ratio ${document.size.ratio})`,
          `Compression: ${document.compression}`,
        ];
        if (document.created !== undefined) lines.push(`Created:     ${document.created}`);
        if (document.referrers.length > 0) {
          lines.push("Referrers:");
          for (const r of document.referrers) lines.push(`  ${r.digest}  ${r.artifactType ?? r.mediaType}`);
        }
        const keys = Object.keys(document.annotations);
        if (keys.length > 0) {
          lines.push("Annotations:");
          for (const key of keys.sort()) lines.push(`  ${key}: ${document.annotations[key]}`);
        }
        return lines.join("\n");
      },
      { quietable: false },
    );
  },
};
