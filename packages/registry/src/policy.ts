import {
  type ArchiveIndex,
  type ArchiveManifest,
  BlobError,
  type Descriptor,
  EMPTY_CONFIG_DIGEST,
  EMPTY_CONFIG_SIZE,
  isBlobError,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
  sha256Digest,
  throwIfAborted,
} from "@blobkit/core";
import type { OciStore } from "./store.ts";

/** What a {@link Policy} is asked about: one manifest, resolved and verified against its digest. @public */
export interface PolicyContext {
  /** The reference as the caller wrote it (canonical form). */
  reference: string;
  /** The manifest's descriptor (digest, media type, size). */
  descriptor: Descriptor;
  /** The parsed archive manifest (its `raw` bytes hash to `descriptor.digest`). */
  manifest: ArchiveManifest;
  /**
   * The repository the manifest lives in: policies list and fetch referrers (signatures, attestations)
   * through it. Everything fetched from it is verified against its digest.
   */
  store: OciStore;
  /**
   * The archive's index, fetched once on first call (verified against the manifest, validated, size-limited)
   * and shared with the operation that asked for the policy check, so a policy that needs it costs no extra
   * request. Absent when a caller builds a context by hand: fetch through `store` then.
   */
  index?: (() => Promise<ArchiveIndex>) | undefined;
  /** Aborted when the operation is. */
  signal?: AbortSignal | undefined;
}

/** A policy's verdict. @public */
export interface PolicyDecision {
  /** `true` lets the operation go on; anything else denies. */
  allow: boolean;
  /** Why (shown to the user when denied). */
  reasons?: string[] | undefined;
}

/**
 * A check that runs on every fetch / pull / inspect, after the manifest is verified and before any of its
 * content is used — also when the manifest came from a cache. Policies fail closed: a thrown error, a
 * missing decision or `allow !== true` denies with `ERR_POLICY`.
 *
 * @public
 */
export interface Policy {
  /** Name shown in denials. */
  readonly name: string;
  /** Decides whether the manifest may be used. */
  evaluate(context: PolicyContext): Promise<PolicyDecision>;
}

/** The manifest a {@link Signer} signs. @public */
export interface SignSubject {
  /** The signed manifest's descriptor. */
  descriptor: Descriptor;
  /** Its exact bytes. */
  bytes: Uint8Array;
  /** The reference it was resolved from. */
  reference: string;
}

/** One layer of a signature / attestation referrer. @public */
export interface SignatureLayer {
  mediaType: string;
  bytes: Uint8Array;
  annotations?: Record<string, string> | undefined;
}

/** What a {@link Signer} returns: the content of the referrer manifest attached to the signed manifest. @public */
export interface Signature {
  /** The referrer's `artifactType` (e.g. `application/vnd.dev.sigstore.bundle.v0.3+json`). */
  artifactType: string;
  /** Its layers (usually one: the bundle). */
  layers: SignatureLayer[];
  /** Referrer manifest annotations. */
  annotations?: Record<string, string> | undefined;
  /**
   * Optional: the exact referrer manifest bytes, for ecosystems whose tools expect one layout byte for byte
   * (cosign's key order and config `artifactType`). Given the signed manifest's descriptor and the pushed
   * layers' descriptors; the result must be an OCI image manifest whose `subject` is that descriptor. Without
   * it the client writes `{schemaVersion, mediaType, artifactType, config, layers, subject, annotations}`.
   */
  referrerManifest?: ((subject: Descriptor, layers: readonly Descriptor[]) => Uint8Array) | undefined;
}

/** Produces a signature over a manifest; the client attaches it as a referrer. @public */
export interface Signer {
  /** Signs the manifest. */
  sign(subject: SignSubject, options?: { signal?: AbortSignal | undefined }): Promise<Signature>;
}

const EMPTY_CONFIG = new TextEncoder().encode("{}");

/**
 * Attaches `signature` to the manifest `subject` in `store`: pushes its layers and the empty `{}` config,
 * then the referrer manifest by digest — the signer's exact bytes when it provides
 * {@link Signature.referrerManifest}, else `{schemaVersion, mediaType, artifactType, config, layers, subject,
 * annotations}`. The store maintains the referrers listing (the `sha256-<hex>` tag schema where the registry
 * has no referrers API). Resolves to the referrer manifest's descriptor.
 *
 * @public
 */
export async function attachReferrer(
  store: OciStore,
  subject: Descriptor,
  signature: Signature,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<Descriptor> {
  const { signal } = options;
  const layers: Descriptor[] = [];
  for (const layer of signature.layers) {
    const descriptor: Descriptor = {
      mediaType: layer.mediaType,
      digest: sha256Digest(layer.bytes),
      size: layer.bytes.length,
    };
    await store.pushBlob(descriptor, layer.bytes, { signal });
    layers.push(
      layer.annotations === undefined ? descriptor : { ...descriptor, annotations: layer.annotations },
    );
  }
  const config: Descriptor = {
    mediaType: MEDIA_TYPE_EMPTY,
    digest: EMPTY_CONFIG_DIGEST,
    size: EMPTY_CONFIG_SIZE,
  };
  await store.pushBlob(config, EMPTY_CONFIG, { signal });
  throwIfAborted(signal);
  let bytes: Uint8Array;
  if (signature.referrerManifest !== undefined) {
    bytes = signature.referrerManifest(subject, layers);
    const json = JSON.parse(new TextDecoder().decode(bytes)) as { subject?: { digest?: unknown } };
    if (json.subject?.digest !== subject.digest) {
      throw new BlobError(
        "ERR_INVALID_MANIFEST",
        "the signer's referrer manifest does not name the signed manifest",
        {
          reason: "bad-referrer",
          subject: subject.digest,
        },
      );
    }
  } else {
    const manifest: Record<string, unknown> = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      artifactType: signature.artifactType,
      config,
      layers,
      subject,
    };
    if (signature.annotations !== undefined) manifest.annotations = signature.annotations;
    bytes = new TextEncoder().encode(JSON.stringify(manifest));
  }
  return store.pushManifest(bytes, MEDIA_TYPE_OCI_MANIFEST, { signal });
}

/**
 * Runs `policies` in order; the first denial (or failure) throws `ERR_POLICY` with the policy's name and
 * reasons. Errors thrown by a policy are kept as the `cause`; aborts propagate as they are.
 *
 * @public
 */
export async function enforcePolicies(policies: readonly Policy[], context: PolicyContext): Promise<void> {
  for (const policy of policies) {
    let decision: PolicyDecision | undefined;
    try {
      decision = await policy.evaluate(context);
    } catch (error) {
      if (context.signal?.aborted) throw context.signal.reason;
      const why = isBlobError(error) || error instanceof Error ? error.message : String(error);
      throw new BlobError(
        "ERR_POLICY",
        `policy ${policy.name} failed, so ${context.reference} is denied: ${why}`,
        {
          cause: error,
          reason: "policy-error",
          subject: context.descriptor.digest,
        },
      );
    }
    if (decision?.allow !== true) {
      const reasons = decision?.reasons?.filter((reason) => typeof reason === "string") ?? [];
      throw new BlobError(
        "ERR_POLICY",
        `policy ${policy.name} denied ${context.reference}${reasons.length === 0 ? "" : `: ${reasons.join("; ")}`}`,
        { reason: "denied", subject: context.descriptor.digest },
      );
    }
  }
}

/** Runs one policy and turns a throw into a denial with the error's message. */
async function decide(policy: Policy, context: PolicyContext): Promise<PolicyDecision> {
  try {
    const decision = await policy.evaluate(context);
    if (decision?.allow === true) return { allow: true, reasons: decision.reasons };
    return { allow: false, reasons: decision?.reasons ?? [`${policy.name} gave no decision`] };
  } catch (error) {
    if (context.signal?.aborted) throw context.signal.reason;
    return {
      allow: false,
      reasons: [`${policy.name} failed: ${error instanceof Error ? error.message : String(error)}`],
    };
  }
}

/**
 * A policy that allows only when every one of `policies` allows (evaluated in order, stopping at the first
 * denial). An empty list denies: a policy list that ended up empty by mistake must not open the gate.
 *
 * @public
 */
export function allOf(
  policies: readonly Policy[],
  name = `allOf(${policies.map((p) => p.name).join(", ")})`,
): Policy {
  return {
    name,
    async evaluate(context) {
      if (policies.length === 0) return { allow: false, reasons: ["allOf of no policies"] };
      const reasons: string[] = [];
      for (const policy of policies) {
        const decision = await decide(policy, context);
        if (!decision.allow)
          return { allow: false, reasons: (decision.reasons ?? []).map((r) => `${policy.name}: ${r}`) };
        reasons.push(...(decision.reasons ?? []));
      }
      return { allow: true, reasons };
    },
  };
}

/**
 * A policy that allows when at least one of `policies` allows (evaluated in order, stopping at the first
 * approval); when all deny, the denial lists every policy's reasons. An empty list denies.
 *
 * @public
 */
export function anyOf(
  policies: readonly Policy[],
  name = `anyOf(${policies.map((p) => p.name).join(", ")})`,
): Policy {
  return {
    name,
    async evaluate(context) {
      const reasons: string[] = [];
      for (const policy of policies) {
        const decision = await decide(policy, context);
        if (decision.allow) return decision;
        reasons.push(...(decision.reasons ?? []).map((r) => `${policy.name}: ${r}`));
      }
      return { allow: false, reasons: policies.length === 0 ? ["anyOf of no policies"] : reasons };
    },
  };
}
