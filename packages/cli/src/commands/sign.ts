import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { keylessSigner, keySigner, type SigstoreSigner } from "@blobkit/policy-sigstore";
import { formatReference, parseReference } from "@blobkit/registry";
import type { Context } from "../context.ts";
import { CliError, EXIT } from "../exit-codes.ts";
import { array, boolean, integer, object, oneOf, referrerSchema, string } from "../json-schema.ts";
import type { CommandSpec, OptionSpec, Opts } from "../spec.ts";
import { arg, POLICY_OPTIONS, policiesFor, SKIP_CACHE } from "./common.ts";

/** Signing options shared by `sign` and `push --sign`. */
export const SIGNING_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--key <file>",
    description: "PEM private key (an encrypted key reads BLOB_KEY_PASSWORD) instead of keyless signing",
  },
  {
    flags: "--fulcio-url <url>",
    description: "Fulcio for keyless signing (default Sigstore's public Fulcio; env BLOB_FULCIO_URL)",
  },
  {
    flags: "--rekor-url <url>",
    description: "Rekor transparency log (default Sigstore's for keyless, none for keys; env BLOB_REKOR_URL)",
  },
  { flags: "--tsa-url <url>", description: "RFC 3161 timestamp authority (env BLOB_TSA_URL)" },
  {
    flags: "--identity-token <jwt>",
    description:
      "OIDC token for keyless signing (default SIGSTORE_ID_TOKEN, then GitHub Actions' ambient token)",
  },
];

function option(opts: Opts, name: string, env: string | undefined): string | undefined {
  const value = opts[name];
  if (typeof value === "string" && value !== "") return value;
  return env === undefined || env === "" ? undefined : env;
}

/** The signer the options ask for: a key pair with `--key`, keyless (Fulcio + Rekor) otherwise. */
export async function signerFromOptions(ctx: Context, opts: Opts): Promise<SigstoreSigner> {
  const env = ctx.io.env;
  const rekorURL = option(opts, "rekorUrl", env.BLOB_REKOR_URL);
  const tsaURL = option(opts, "tsaUrl", env.BLOB_TSA_URL);
  const common = {
    ...(rekorURL === undefined ? {} : { rekorURL }),
    ...(tsaURL === undefined ? {} : { tsaURL }),
  };
  if (typeof opts.key === "string") {
    const path = resolve(ctx.io.cwd, opts.key);
    let pem: string;
    try {
      pem = await readFile(path, "utf8");
    } catch (error) {
      throw new CliError(
        `cannot read key ${path}: ${(error as { code?: string }).code ?? String(error)}`,
        EXIT.NOT_FOUND,
        "ERR_NOT_FOUND",
      );
    }
    return keySigner({ privateKeyPem: pem, password: env.BLOB_KEY_PASSWORD, ...common });
  }
  const fulcioURL = option(opts, "fulcioUrl", env.BLOB_FULCIO_URL);
  const identityToken = option(opts, "identityToken", undefined);
  return keylessSigner({
    ...common,
    ...(fulcioURL === undefined ? {} : { fulcioURL }),
    ...(identityToken === undefined ? {} : { identityToken }),
    env,
  });
}

export const sign: CommandSpec = {
  name: "sign",
  summary: "Sign an archive's manifest (cosign-compatible sigstore bundle attached as a referrer)",
  description:
    "Keyless by default: a Fulcio certificate for the OIDC identity (SIGSTORE_ID_TOKEN or GitHub Actions' ambient token), logged in Rekor. --key signs with a PEM key pair. The statement signed is cosign's (in-toto, predicate https://sigstore.dev/cosign/sign/v1, subject = the manifest digest) and the referrer is laid out as cosign lays it out. The tag is resolved fresh, so the manifest signed is the one it points at now.",
  args: [{ name: "ref", required: true, description: "reference to sign" }],
  options: [
    ...SIGNING_OPTIONS,
    { flags: "--output-signature", description: "print the bundle JSON to stdout instead of attaching it" },
  ],
  examples: [
    { command: "blob sign ghcr.io/acme/configs:v1", description: "keyless (in CI with an OIDC token)" },
    { command: "blob sign ghcr.io/acme/configs:v1 --key cosign.key", description: "with a key pair" },
    {
      command: "blob sign oci:./store:v1 --key key.pem --output-signature > bundle.json",
      description: "print the bundle instead of attaching it",
    },
  ],
  json: object({
    reference: string(),
    digest: string(),
    signatureDigest: { type: ["string", "null"] },
    status: oneOf(["signed", "printed"]),
  }),
  async action(ctx, args, opts) {
    const input = arg(args, "ref");
    const reference = ctx.ref(input);
    const signer = await signerFromOptions(ctx, opts);
    const client = await ctx.client({ cache: false });
    const parsed = parseReference(reference);
    const store = await client.store(parsed);
    const target = parsed.digest ?? parsed.tag;
    if (target === undefined)
      throw new CliError("reference needs a tag or a digest", EXIT.USAGE, "ERR_USAGE");
    if (opts.outputSignature === true) {
      const resolved = await store.resolve(target, { signal: ctx.signal });
      const fetched = await store.fetchManifest(resolved.digest, { signal: ctx.signal });
      const bundle = await signer.createBundle(
        { descriptor: fetched.descriptor, bytes: fetched.bytes, reference },
        { signal: ctx.signal },
      );
      if (ctx.json) {
        await ctx.result(
          { reference, digest: fetched.descriptor.digest, signatureDigest: null, status: "printed" },
          () => "",
        );
      }
      await ctx.out(`${JSON.stringify(bundle)}\n`);
      return;
    }
    const signature = await client.sign(reference, signer, { signal: ctx.signal });
    // Report the digest that was signed — the referrer's subject — not a fresh resolution of the tag, which
    // may have moved since.
    const referrer = await store.fetchManifest(signature.digest, { signal: ctx.signal });
    const subject = (
      JSON.parse(new TextDecoder().decode(referrer.bytes)) as { subject?: { digest?: string } }
    ).subject?.digest;
    if (subject === undefined)
      throw new CliError("the signature names no subject", EXIT.ERROR, "ERR_INVALID_MANIFEST");
    const signedReference = formatReference({ ...parsed, digest: subject });
    await ctx.result(
      { reference: signedReference, digest: subject, signatureDigest: signature.digest, status: "signed" },
      () => `Signed ${signedReference}\n  signature ${signature.digest} (${signer.kind})`,
    );
  },
};

export const verify: CommandSpec = {
  name: "verify",
  summary: "Check an archive against policies (signatures, provenance, Rego)",
  description:
    "Evaluates the config file's matching `policies` rules, every --policy YAML and every --policy-rego policy (compiled OPA wasm or bundle); all must allow. A violation exits 5 with every reason. Without any policy it only lists the referrers and warns.",
  args: [{ name: "ref", required: true, description: "reference to verify" }],
  options: [...POLICY_OPTIONS, SKIP_CACHE],
  examples: [
    {
      command: "blob verify ghcr.io/acme/configs:v1 --policy policy.yaml",
      description: "keyless identity policy",
    },
    {
      command: "blob verify oci:./store:v1 --policy-rego bundle.tar.gz --json",
      description: "a compiled Rego policy, JSON result",
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
  async action(ctx, args, opts) {
    const reference = ctx.ref(arg(args, "ref"));
    const policies = await policiesFor(ctx, reference, opts);
    if (policies.length === 0) ctx.warn("no policy applies to this reference: nothing was verified");
    const client = await ctx.client({ policies });
    const result = await client.inspect(reference, {
      signal: ctx.signal,
      skipCache: opts.skipCache === true,
    });
    const referrers = result.referrers.map((r) => ({
      digest: r.digest,
      mediaType: r.mediaType,
      artifactType: r.artifactType ?? null,
      size: r.size,
      ...(r.annotations === undefined ? {} : { annotations: r.annotations }),
    }));
    const verified = policies.length > 0;
    await ctx.result(
      {
        reference: result.reference,
        digest: result.descriptor.digest,
        verified,
        status: verified ? "verified" : "no_policies",
        policiesApplied: policies.length,
        referrers,
      },
      () =>
        verified
          ? `Verified ${result.reference}\n  ${policies.length} ${policies.length === 1 ? "policy" : "policies"} allowed it`
          : `Not verified ${result.reference}: no policies (${referrers.length} referrers)`,
    );
  },
};
