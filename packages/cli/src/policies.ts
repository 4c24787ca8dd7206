import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Policy } from "@blobkit/registry";
import { parse as parseYaml } from "yaml";
import type { PolicyRule } from "./config.ts";
import { CliError, EXIT, notAvailable } from "./exit-codes.ts";

/**
 * Policy plumbing of `pull`, `verify` (and every read through config rules). The YAML shape is the Go
 * CLI's (§7.3), validated here; turning a spec into `Policy` objects is where `@blobkit/policy-sigstore`
 * and `@blobkit/policy-opa` plug in ({@link policyFromSpec}, {@link regoPolicy}) — stubbed until they land.
 */

/** A parsed `--policy` YAML / config `policies[].policy`. @public */
export interface PolicySpec {
  signature?: {
    keyless?: { issuer: string; identity: string };
    key?: { path?: string; url?: string };
  };
  provenance?: { slsa: { builder?: string; repository?: string; branch?: string; tag?: string } };
}

/** Where policies come from for one command. @public */
export interface PolicySources {
  /** `--policy <yaml>` files. */
  files: readonly string[];
  /** `--policy-rego <file>` files. */
  rego: readonly string[];
  /** `--no-default-policy`: ignore the config file's `policies` rules. */
  noDefault: boolean;
}

function invalid(where: string, why: string): CliError {
  return new CliError(`${where}: ${why}`, EXIT.USAGE, "ERR_POLICY_SPEC");
}

function stringField(
  where: string,
  object: Record<string, unknown>,
  key: string,
  required: boolean,
): string | undefined {
  const value = object[key];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "string" || value === "") throw invalid(where, `${key} must be a non-empty string`);
  return value;
}

/** Validates a policy document (Go §7.3 shape). @public */
export function parsePolicySpec(doc: unknown, where: string): PolicySpec {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw invalid(where, "a policy is a mapping");
  const { signature, provenance, ...rest } = doc as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw invalid(where, `unknown key ${unknown[0]}`);
  const spec: PolicySpec = {};
  if (signature !== undefined) {
    const s = signature as Record<string, unknown>;
    if (typeof s !== "object" || s === null) throw invalid(where, "signature must be a mapping");
    if (s.keyless !== undefined && s.key !== undefined)
      throw invalid(where, "signature.keyless and signature.key are exclusive");
    spec.signature = {};
    if (s.keyless !== undefined) {
      const k = s.keyless as Record<string, unknown>;
      spec.signature.keyless = {
        issuer: stringField(`${where} signature.keyless`, k, "issuer", true) as string,
        identity: stringField(`${where} signature.keyless`, k, "identity", true) as string,
      };
    } else if (s.key !== undefined) {
      const k = s.key as Record<string, unknown>;
      const path = stringField(`${where} signature.key`, k, "path", false);
      const url = stringField(`${where} signature.key`, k, "url", false);
      if (path === undefined && url === undefined) throw invalid(where, "signature.key needs path or url");
      spec.signature.key = { ...(path === undefined ? {} : { path }), ...(url === undefined ? {} : { url }) };
    } else throw invalid(where, "signature needs keyless or key");
  }
  if (provenance !== undefined) {
    const slsa = (provenance as { slsa?: Record<string, unknown> } | null)?.slsa;
    if (typeof slsa !== "object" || slsa === null) throw invalid(where, "provenance needs slsa");
    const out: NonNullable<PolicySpec["provenance"]>["slsa"] = {};
    for (const key of ["builder", "repository", "branch", "tag"] as const) {
      const value = stringField(`${where} provenance.slsa`, slsa, key, false);
      if (value !== undefined) out[key] = value;
    }
    spec.provenance = { slsa: out };
  }
  if (spec.signature === undefined && spec.provenance === undefined) throw invalid(where, "empty policy");
  return spec;
}

/** Config rules whose (unanchored) `match` regex finds the reference. @public */
export function matchingRules(rules: readonly PolicyRule[], reference: string): PolicyRule[] {
  return rules.filter((rule) => new RegExp(rule.match).test(reference));
}

/**
 * The `Policy` for a spec. **Stub**: `@blobkit/policy-sigstore` (signature.keyless / signature.key) and the
 * SLSA checks plug in here; until then every policy request fails with "not available yet" (exit 1), which
 * keeps reads fail-closed instead of silently unverified.
 *
 * @public
 */
export async function policyFromSpec(_spec: PolicySpec, _where: string): Promise<Policy> {
  throw notAvailable("signature/provenance policies (@blobkit/policy-sigstore)");
}

/** The `Policy` for a Rego file. **Stub** until `@blobkit/policy-opa` lands. @public */
export async function regoPolicy(_path: string): Promise<Policy> {
  throw notAvailable("Rego policies (@blobkit/policy-opa)");
}

/**
 * Every policy that applies to `reference`: config rules (unless `noDefault`), `--policy` files,
 * `--policy-rego` files — all of them must allow (AND). Empty when none is configured.
 *
 * @public
 */
export async function buildPolicies(
  reference: string,
  rules: readonly PolicyRule[],
  sources: PolicySources,
  cwd: string,
): Promise<Policy[]> {
  const specs: { spec: PolicySpec; where: string }[] = [];
  if (!sources.noDefault) {
    for (const rule of matchingRules(rules, reference))
      specs.push({ spec: parsePolicySpec(rule.policy, `config policy ${rule.match}`), where: rule.match });
  }
  for (const file of sources.files) {
    const path = resolve(cwd, file);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      throw new CliError(
        `cannot read policy ${path}: ${(error as { code?: string }).code ?? String(error)}`,
        EXIT.NOT_FOUND,
        "ERR_POLICY_SPEC",
      );
    }
    specs.push({ spec: parsePolicySpec(parseYaml(text), path), where: path });
  }
  const policies: Policy[] = [];
  for (const { spec, where } of specs) policies.push(await policyFromSpec(spec, where));
  for (const file of sources.rego) policies.push(await regoPolicy(resolve(cwd, file)));
  return policies;
}
