import { dirname } from "node:path";
import type { Archive } from "@blobkit/core";
import type { Policy } from "@blobkit/registry";
import type { Context } from "../context.ts";
import { usageError } from "../exit-codes.ts";
import { buildPolicies } from "../policies.ts";
import type { OptionSpec, Opts } from "../spec.ts";

/** `--skip-cache`, shared by every read command. */
export const SKIP_CACHE: OptionSpec = {
  flags: "--skip-cache",
  description: "ignore cached tag resolutions, manifests and indexes (fresh answers are still cached)",
};

/** Policy options of `pull` and `verify` (the Go CLI's). */
export const POLICY_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--policy <file>",
    parser: "repeatable",
    description:
      "policy YAML (signature.keyless / signature.key / provenance.slsa); repeatable, all must pass",
  },
  { flags: "--policy-rego <file>", parser: "repeatable", description: "Rego policy file (OPA); repeatable" },
  { flags: "--no-default-policy", description: "ignore the config file's `policies` rules" },
];

/**
 * The policies a read of `reference` obeys: the config file's matching rules (unless `--no-default-policy`),
 * every `--policy` YAML and every `--policy-rego` file of `opts`.
 */
export async function policiesFor(ctx: Context, reference: string, opts: Opts = {}): Promise<Policy[]> {
  return buildPolicies(
    reference,
    ctx.config.policies,
    {
      files: list(opts, "policy"),
      rego: list(opts, "policyRego"),
      noDefault: opts.defaultPolicy === false,
      configDir: dirname(ctx.loaded.path),
    },
    ctx.io.cwd,
  );
}

/** An opened archive with the manifest digest it was pinned to. */
export interface OpenedArchive {
  archive: Archive;
  /** Canonical reference including the digest. */
  reference: string;
  digest: string;
}

/**
 * Resolves `input` once (tag → digest, policies enforced) and opens the archive pinned to that digest, so
 * everything a command prints and reads belongs to one manifest. Closed at the end of the run.
 */
export async function openArchive(
  ctx: Context,
  input: string,
  options: { skipCache?: boolean; policies?: readonly Policy[] } = {},
): Promise<OpenedArchive> {
  const reference = ctx.ref(input);
  // Reads that name no policy of their own still obey the config file's rules for this reference.
  const policies = options.policies ?? (await policiesFor(ctx, reference));
  const client = await ctx.client({ policies });
  const read = { signal: ctx.signal, skipCache: options.skipCache === true };
  const opened = await client.open(reference, read);
  ctx.defer(() => opened.archive.close());
  ctx.log(`resolved ${input} → ${opened.descriptor.digest}`);
  return { archive: opened.archive, reference: opened.reference, digest: opened.descriptor.digest };
}

/** A string positional argument. */
export function arg(args: Record<string, unknown>, name: string): string {
  const value = args[name];
  if (typeof value !== "string") throw usageError(`missing argument <${name}>`);
  return value;
}

/** A string[] option (repeatable). */
export function list(opts: Opts, name: string): string[] {
  const value = opts[name];
  return Array.isArray(value) ? (value as string[]) : [];
}

/** The archive path a user typed (`/etc/x`, `etc/x`, `.`, `/`) → core's form (`""` = root). */
export function archivePath(path: string | undefined): string {
  return path === undefined ? "." : path;
}
