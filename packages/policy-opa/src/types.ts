/**
 * Who signed a verified attestation, as the verifying package reports it (for example the Fulcio certificate's
 * SAN and OIDC issuer, or a public key's hint). Passed to the policy as is; must be JSON-serialisable.
 *
 * @public
 */
export interface AttestationSigner {
  /** Certificate identity (SAN), when keyless. */
  subject?: string | undefined;
  /** OIDC issuer, when keyless. */
  issuer?: string | undefined;
  /** Public-key hint, when signed with a key pair. */
  keyHint?: string | undefined;
  /** Anything else the verifier reports. */
  [key: string]: unknown;
}

/**
 * An attestation whose signature has **already been verified** (for example by `@blobkit/policy-sigstore`)
 * and whose in-toto statement names the evaluated manifest as its subject. Only such attestations may reach a
 * Rego policy: never pass unverified referrers here.
 *
 * @public
 */
export interface VerifiedAttestation {
  /** The statement's `predicateType` (e.g. `https://slsa.dev/provenance/v1`). */
  predicateType: string;
  /** The in-toto Statement (parsed JSON): `_type`, `subject`, `predicateType`, `predicate`. */
  statement: unknown;
  /** Who signed it, when the verifier reports it. */
  signer?: AttestationSigner | undefined;
}

/** One attestation as the policy sees it in `input.attestations`. @public */
export interface OpaAttestationInput {
  /** The statement's `_type` (e.g. `https://in-toto.io/Statement/v1`), or `null`. */
  _type: string | null;
  /** The statement's `predicateType`. */
  predicateType: string;
  /** The statement's subjects (one of them is the manifest). */
  subject: unknown[];
  /** The predicate (`null` when absent). */
  predicate: unknown;
  /** Who signed it, or `null` when the verifier did not say. */
  signer: AttestationSigner | null;
}

/** `input.manifest`. @public */
export interface OpaManifestInput {
  /** Same as `input.reference` (kept here for policies written for meigma/blob's Go OPA policy). */
  reference: string;
  /** `sha256:<hex>` of the manifest. */
  digest: string;
  /** Manifest media type (`application/vnd.oci.image.manifest.v1+json`). */
  mediaType: string;
  /** Manifest `artifactType` (`application/vnd.meigma.blob.v1`), or `null`. */
  artifactType: string | null;
  /** Manifest annotations (empty object when none). */
  annotations: Record<string, string>;
  /** The `org.opencontainers.image.created` annotation when it is valid RFC 3339, else `null`. */
  created: string | null;
  /** Size of the manifest in bytes. */
  size: number;
}

/** `input.index`: a summary of the archive's index blob. @public */
export interface OpaIndexInput {
  /** `sha256:<hex>` of the index blob. */
  digest: string;
  /** Size of the index blob in bytes. */
  size: number;
  /** Number of files in the archive. */
  fileCount: number;
  /** Sum of the files' sizes in bytes. */
  totalSize: number;
  /** Sum of the files' stored (compressed) sizes in bytes. */
  storedSize: number;
}

/**
 * The input document every OPA policy of this package receives (stable; see the README).
 *
 * @public
 */
export interface OpaInput {
  /** The canonical reference, including the digest. */
  reference: string;
  /** The manifest. */
  manifest: OpaManifestInput;
  /** The index summary, or `null` when the policy was created with `index: false`. */
  index: OpaIndexInput | null;
  /** Verified attestations bound to this manifest (empty without an attestation provider). */
  attestations: OpaAttestationInput[];
}

/** Options passed to {@link OpaEvaluator.evaluate}. @public */
export interface OpaEvaluateOptions {
  /** The rule to evaluate, as a path (`blob/policy` = `data.blob.policy`). */
  entrypoint: string;
  /** Aborted on timeout or when the caller gives up. */
  signal: AbortSignal;
}

/**
 * Evaluates a Rego decision for an input document and returns the **raw** decision (the value of the rule at
 * the entrypoint: usually an object with `allow` and `deny`), or `undefined` when the decision is undefined.
 * It does not interpret the value: {@link opaDecision} does.
 *
 * @public
 */
export interface OpaEvaluator {
  /** Description used in messages (never contains credentials). */
  readonly name: string;
  /** Evaluates the rule at `options.entrypoint` with `input`. */
  evaluate(input: OpaInput, options: OpaEvaluateOptions): Promise<unknown>;
}
