import { notAvailable } from "../exit-codes.ts";
import { array, boolean, integer, object, oneOf, referrerSchema, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { POLICY_OPTIONS, SKIP_CACHE } from "./common.ts";

// The option surface is the Go CLI's (§7.2); the bodies plug in @blobkit/policy-sigstore / policy-opa
// (see policies.ts) once those packages land. Until then both fail with exit 1 ("not available yet").

export const sign: CommandSpec = {
  name: "sign",
  summary: "Sign an archive's manifest (sigstore bundle attached as a referrer) — not available yet",
  description:
    "Keyless by default (Fulcio certificate from an ambient OIDC token, Rekor entry); --key signs with a key pair. The tag is resolved fresh, so the manifest signed is the one it points at now. NOT AVAILABLE YET in this build: exits 1.",
  args: [{ name: "ref", required: true, description: "reference to sign" }],
  options: [
    {
      flags: "--key <file>",
      description: "PEM private key (encrypted keys read BLOB_KEY_PASSWORD) instead of keyless",
    },
    { flags: "--output-signature", description: "print the bundle JSON to stdout instead of attaching it" },
  ],
  examples: [
    { command: "blob sign ghcr.io/acme/configs:v1", description: "keyless (in CI with an OIDC token)" },
    { command: "blob sign ghcr.io/acme/configs:v1 --key cosign.key", description: "with a key pair" },
  ],
  json: object({
    reference: string(),
    digest: string(),
    signatureDigest: string(),
    status: oneOf(["signed"]),
  }),
  async action() {
    throw notAvailable("blob sign (@blobkit/policy-sigstore)");
  },
};

export const verify: CommandSpec = {
  name: "verify",
  summary: "Check an archive against policies (signatures, provenance, Rego) — not available yet",
  description:
    "Evaluates the config file's matching `policies` rules, every --policy YAML and every --policy-rego file; all must allow. A violation exits 5. Without any policy it only inspects and warns. NOT AVAILABLE YET in this build: exits 1.",
  args: [{ name: "ref", required: true, description: "reference to verify" }],
  options: [...POLICY_OPTIONS, SKIP_CACHE],
  examples: [
    {
      command: "blob verify ghcr.io/acme/configs:v1 --policy policy.yaml",
      description: "keyless identity policy",
    },
    {
      command: "blob verify oci:./store:v1 --policy-rego policy.rego --json",
      description: "a Rego policy, JSON result",
    },
  ],
  json: object({
    reference: string(),
    digest: string(),
    verified: boolean(),
    status: oneOf(["verified", "no_policies"]),
    policiesApplied: integer(),
    referrers: array(referrerSchema),
  }),
  async action() {
    throw notAvailable("blob verify (@blobkit/policy-sigstore, @blobkit/policy-opa)");
  },
};
