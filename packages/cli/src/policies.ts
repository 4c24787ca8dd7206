import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { opaPolicy, wasmEvaluator } from "@blobkit/policy-opa";
import { sigstorePolicy, slsaPolicy, type TrustOptions, verifiedStatements } from "@blobkit/policy-sigstore";
import { allOf, formatReference, type Policy, parseReference } from "@blobkit/registry";
import { parse as parseYaml } from "yaml";
import type { PolicyRule } from "./config.ts";
import { CliError, EXIT, usageError } from "./exit-codes.ts";

/**
 * Policy plumbing of `pull`, `verify` and every read through config rules. The YAML shape is the Go CLI's
 * (§7.3) plus `trustedRoot` (a sigstore trusted-root JSON file, for fully offline verification), validated
 * here and turned into `@blobkit/policy-sigstore` / `@blobkit/policy-opa` policies.
 */

/** A parsed `--policy` YAML / config `policies[].policy`. @public */
export interface PolicySpec {
  /** Sigstore trusted root (JSON file): verification needs no network. Default: Sigstore's TUF root. */
  trustedRoot?: string;
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
  /** Directory of the config file (its rules' relative paths resolve there). */
  configDir?: string | undefined;
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
  const { signature, provenance, trustedRoot, ...rest } = doc as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw invalid(where, `unknown key ${unknown[0]}`);
  const spec: PolicySpec = {};
  if (trustedRoot !== undefined) {
    if (typeof trustedRoot !== "string" || trustedRoot === "")
      throw invalid(where, "trustedRoot must be a path");
    spec.trustedRoot = trustedRoot;
  }
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

/**
 * The one spelling config rules are matched against, whatever the user typed: `registry/repository[:tag]
 * [@digest]` with the registry lower-cased and without `:443`, Docker Hub names expanded
 * (`alpine:3` → `docker.io/library/alpine:3`), `oci:<absolute dir>…` for layouts. Otherwise `GHCR.io/…`,
 * `ghcr.io:443/…` or a Hub short name would reach the same repository while dodging the rule.
 *
 * @public
 */
export function canonicalReference(reference: string, cwd: string): string {
  const parsed = parseReference(reference, { cwd });
  if (parsed.kind === "layout") return formatReference(parsed);
  return formatReference({ ...parsed, registry: parsed.registry.toLowerCase().replace(/:443$/, "") });
}

/**
 * Config rules whose `match` regex matches the **whole** reference (anchored: `ghcr\.io/acme/.*` does not
 * apply to `evil.example/ghcr.io/acme/x`, and a rule cannot be dodged by a longer reference). Pass the
 * {@link canonicalReference}.
 *
 * @public
 */
export function matchingRules(rules: readonly PolicyRule[], reference: string): PolicyRule[] {
  return rules.filter((rule) => new RegExp(`^(?:${rule.match})$`).test(reference));
}

/** Reads a file a policy names (relative to the policy file's directory). */
async function readPolicyFile(base: string, path: string, what: string): Promise<string> {
  const full = resolve(base, path);
  try {
    return await readFile(full, "utf8");
  } catch (error) {
    throw new CliError(
      `cannot read ${what} ${full}: ${(error as { code?: string }).code ?? String(error)}`,
      EXIT.NOT_FOUND,
      "ERR_POLICY_SPEC",
    );
  }
}

/**
 * The `Policy` for a spec: `signature.keyless` → exact issuer + identity; `signature.key` → the PEM public key;
 * `provenance.slsa` → a verified SLSA provenance signed by that same signer (the provenance needs a signature
 * rule to know whose attestations to trust). Files are relative to `base` (the policy file's directory).
 *
 * @public
 */
export async function policyFromSpec(spec: PolicySpec, where: string, base: string): Promise<Policy> {
  const trust: TrustOptions = {};
  if (spec.trustedRoot !== undefined) trust.trustedRoot = resolve(base, spec.trustedRoot);
  const signature = spec.signature;
  if (signature?.keyless !== undefined) {
    trust.identities = [{ issuer: signature.keyless.issuer, subject: signature.keyless.identity }];
  } else if (signature?.key !== undefined) {
    if (signature.key.path === undefined)
      throw invalid(where, "signature.key.url is not supported; use path");
    trust.keys = [await readPolicyFile(base, signature.key.path, "public key")];
  }
  const policies: Policy[] = [];
  if (signature !== undefined) policies.push(sigstorePolicy({ ...trust, name: `signature (${where})` }));
  if (spec.provenance !== undefined) {
    if (signature === undefined) {
      throw invalid(
        where,
        "provenance.slsa needs signature.keyless or signature.key: whose provenance to trust",
      );
    }
    const slsa = spec.provenance.slsa;
    policies.push(
      slsaPolicy({
        ...trust,
        name: `provenance (${where})`,
        ...(slsa.builder === undefined ? {} : { builderId: slsa.builder }),
        ...(slsa.repository === undefined ? {} : { sourceRepository: slsa.repository }),
        ...(slsa.branch === undefined ? {} : { branches: [slsa.branch] }),
        ...(slsa.tag === undefined ? {} : { tags: [slsa.tag] }),
      }),
    );
  }
  return policies.length === 1 ? (policies[0] as Policy) : allOf(policies, where);
}

/**
 * The `Policy` for `--policy-rego <file>`: a compiled OPA policy (`policy.wasm`, or the bundle of
 * `opa build -t wasm -e blob/policy policy.rego`), evaluated at entrypoint `blob/policy`. A `.rego` source
 * is refused with the command that compiles it (no OPA runtime ships with Node). Attestations in its input
 * are the SLSA statements verified against `trust`, when given.
 *
 * @public
 */
export async function regoPolicy(path: string, trust?: TrustOptions): Promise<Policy> {
  if (path.endsWith(".rego")) {
    throw usageError(
      `${path} is Rego source: compile it first, e.g. \`opa build -t wasm -e blob/policy ${path}\`, and pass the bundle.tar.gz or policy.wasm`,
    );
  }
  const evaluator = wasmEvaluator({ wasm: path });
  await evaluator.ready().catch((error: unknown) => {
    throw new CliError(
      `cannot load Rego policy ${path}: ${(error as Error).message}`,
      EXIT.ERROR,
      "ERR_POLICY_SPEC",
    );
  });
  return opaPolicy({
    evaluator,
    name: `rego (${path})`,
    ...(trust === undefined ? {} : { attestations: verifiedStatements(trust) }),
  });
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
  const specs: { spec: PolicySpec; where: string; base: string }[] = [];
  if (!sources.noDefault && rules.length > 0) {
    for (const rule of matchingRules(rules, canonicalReference(reference, cwd))) {
      specs.push({
        spec: parsePolicySpec(rule.policy, `config policy ${rule.match}`),
        where: rule.match,
        base: sources.configDir ?? cwd,
      });
    }
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
    specs.push({ spec: parsePolicySpec(parseYaml(text), path), where: path, base: dirname(path) });
  }
  const policies: Policy[] = [];
  for (const { spec, where, base } of specs) policies.push(await policyFromSpec(spec, where, base));
  for (const file of sources.rego) policies.push(await regoPolicy(resolve(cwd, file)));
  return policies;
}
