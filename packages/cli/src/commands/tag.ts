import { formatReference, parseReference } from "@blobkit/registry";
import { usageError } from "../exit-codes.ts";
import { array, object, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg } from "./common.ts";

export const tag: CommandSpec = {
  name: "tag",
  summary: "Point more tags at what a reference resolves to now",
  description:
    "Each destination is a bare tag (no `/`, no `oci:`: a tag in the source's repository or layout) or a full reference; a full reference in another repository, registry or layout is copied there (same digest). The source is resolved fresh, never from the cache.",
  args: [
    { name: "src", required: true, description: "source reference" },
    { name: "dst", required: true, variadic: true, description: "tags or references to create" },
  ],
  examples: [
    {
      command: "blob tag ghcr.io/acme/configs:v1.2.0 v1 latest",
      description: "move v1 and latest to v1.2.0",
    },
    { command: "blob tag oci:./store:v1 oci:./store:stable", description: "a layout tag" },
  ],
  json: object({
    source: string(),
    digest: string(),
    tags: array(string("canonical reference of each new tag")),
  }),
  async action(ctx, args) {
    const source = ctx.ref(arg(args, "src"));
    const src = parseReference(source);
    const client = await ctx.client();
    let digest: string | undefined;
    const done: string[] = [];
    for (const dst of (args.dst as string[] | undefined) ?? []) {
      const bare = !dst.includes("/") && !dst.startsWith("oci:") && !(dst in ctx.config.aliases);
      const target = parseReference(
        bare ? formatReference({ ...src, tag: dst, digest: undefined }) : ctx.ref(dst),
      );
      if (target.tag === undefined) throw usageError(`${dst}: a tag is needed`);
      const sameStore =
        target.kind === src.kind &&
        (target.kind === "layout"
          ? src.kind === "layout" && target.dir === src.dir
          : src.kind === "registry" &&
            target.registry === src.registry &&
            target.repository === src.repository);
      if (sameStore) {
        const descriptor = await client.tag(source, [target.tag], { signal: ctx.signal });
        digest = descriptor.digest;
      } else {
        const descriptor = await client.copy(source, formatReference(target), { signal: ctx.signal });
        digest = descriptor.digest;
      }
      done.push(formatReference({ ...target, digest }));
    }
    await ctx.result({ source, digest: digest as string, tags: done }, () =>
      done.map((t) => `Tagged ${t}`).join("\n"),
    );
  },
};
