import { formatReference, parseReference } from "@blobkit/registry";
import { usageError } from "./exit-codes.ts";

/**
 * Resolves what the user typed into a reference for the client: an alias (`name`, `name:tag`,
 * `name@digest` → the alias target with that tag/digest — for every command, push included), and an
 * `oci:<dir>` relative to the working directory made absolute. Registry references are validated.
 */
export function resolveReference(input: string, aliases: Record<string, string>, cwd: string): string {
  if (input === "") throw usageError("empty reference");
  if (!input.startsWith("oci:") && !input.includes("/")) {
    const name = input.split(/[:@]/, 1)[0] ?? input;
    const target = aliases[name];
    if (target !== undefined) {
      const rest = input.slice(name.length);
      const parsed = parseReference(target, { cwd });
      if (rest.startsWith("@")) return formatReference({ ...parsed, tag: undefined, digest: rest.slice(1) });
      if (rest.startsWith(":")) {
        const [tag, digest] = rest.slice(1).split("@", 2);
        return formatReference(parseReference(formatReference({ ...parsed, tag, digest }), { cwd }));
      }
      return formatReference(parsed);
    }
  }
  const parsed = parseReference(input, { cwd });
  return parsed.kind === "layout" ? formatReference(parsed) : input;
}

/** One `<ref>:/<path>` source of `blob cp`. */
export interface CopySource {
  reference: string;
  /** Archive path without the leading `/` (`""` = the root). */
  path: string;
  /** The user wrote a trailing `/` (a directory). */
  directory: boolean;
}

/**
 * Splits a `cp` source `<ref>:/<path>`. Rule (documented): after an optional `oci:` prefix, the reference
 * ends at the **first** `:/`. Registry references never contain `:/` (ports, tags and digests are followed by
 * a digit, a tag character or hex), so archive paths may contain `:` and even `:/`; an `oci:` layout
 * directory must not contain `:/`. The archive path is absolute in the archive (`:/` alone is the root).
 */
export function parseCopySource(spec: string): CopySource {
  const prefix = spec.startsWith("oci:") ? 4 : 0;
  const at = spec.indexOf(":/", prefix);
  if (at < 0 || at === prefix) {
    throw usageError(
      `invalid source ${JSON.stringify(spec)}: expected <ref>:/<path> (the archive path starts with "/", e.g. ghcr.io/acme/app:v1:/etc/app.json)`,
    );
  }
  const reference = spec.slice(0, at);
  const raw = spec.slice(at + 1);
  const path = raw.replace(/^\/+/, "").replace(/\/+$/, "");
  return { reference, path, directory: raw.endsWith("/") || path === "" };
}
