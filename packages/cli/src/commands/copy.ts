import { humanBytes } from "../format.ts";
import { boolean, integer, object, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg } from "./common.ts";

export const copy: CommandSpec = {
  name: "copy",
  summary: "Copy an archive between registries and oci: layouts, keeping its digest",
  description:
    "registry ↔ registry ↔ oci:<dir>. Blobs the destination already has are skipped, blobs within one registry are mounted, the rest streamed and verified by the destination. The manifest keeps its digest; referrers (signatures, attestations) come along unless --no-referrers.",
  args: [
    { name: "src", required: true, description: "source reference" },
    { name: "dst", required: true, description: "destination reference (needs a tag for a registry)" },
  ],
  options: [{ flags: "--no-referrers", description: "do not copy signatures and attestations" }],
  examples: [
    { command: "blob copy ghcr.io/acme/configs:v1 oci:./mirror:v1", description: "registry → local layout" },
    {
      command: "blob copy oci:./mirror:v1 registry.internal:5000/configs:v1",
      description: "layout → another registry",
    },
  ],
  json: object({
    source: string(),
    destination: string(),
    digest: string(),
    bytes: integer("bytes transferred"),
    referrers: boolean(),
  }),
  async action(ctx, args, opts) {
    const source = ctx.ref(arg(args, "src"));
    const destination = ctx.ref(arg(args, "dst"));
    const client = await ctx.client({ cache: false });
    const progress = ctx.progress("copying");
    const done = new Map<string, number>();
    const totals = new Map<string, number>();
    const descriptor = await client.copy(source, destination, {
      referrers: opts.referrers !== false,
      signal: ctx.signal,
      onProgress(p) {
        done.set(p.digest, p.bytes);
        totals.set(p.digest, p.total);
        let bytes = 0;
        let total = 0;
        for (const v of done.values()) bytes += v;
        for (const v of totals.values()) total += v;
        progress.update({
          bytesDone: bytes,
          bytesTotal: total,
          filesDone: [...done].filter(([d, b]) => b === totals.get(d)).length,
          filesTotal: totals.size,
        });
      },
    });
    progress.stop();
    let bytes = 0;
    for (const v of done.values()) bytes += v;
    await ctx.result(
      { source, destination, digest: descriptor.digest, bytes, referrers: opts.referrers !== false },
      () => `Copied ${source} → ${destination}\n  ${descriptor.digest} (${humanBytes(bytes)} transferred)`,
    );
  },
};
