import {
  ANNOTATION_CREATED,
  type ArchiveIndex,
  BlobError,
  checkManifestAgainstIndex,
  DEFAULT_LIMITS,
  decodeIndex,
  digestHex,
} from "@blobkit/core";
import type { PolicyContext } from "@blobkit/registry";
import type {
  OpaAttestationInput,
  OpaIndexInput,
  OpaInput,
  OpaManifestInput,
  VerifiedAttestation,
} from "./types.ts";

/** Options of {@link buildOpaInput}. @public */
export interface BuildOpaInputOptions {
  /** Summarise the index blob (`input.index`); `false` leaves it `null` and fetches nothing. Default `true`. */
  index?: boolean | undefined;
  /** Largest index blob fetched for the summary, in bytes. Default `DEFAULT_LIMITS.maxIndexSize` (256 MiB). */
  maxIndexBytes?: number | undefined;
  /** Verified attestations of the manifest (see {@link VerifiedAttestation}). Default: none. */
  attestations?: readonly VerifiedAttestation[] | undefined;
  /**
   * What to do with an attestation whose statement does not name this manifest as a subject:
   * `"deny"` (default: throw, so the policy denies) or `"drop"` (leave it out of the input).
   */
  unboundAttestations?: "deny" | "drop" | undefined;
  /** Cache of index summaries by index digest (content-addressed, so always safe to reuse). */
  indexCache?: Map<string, OpaIndexInput> | undefined;
  /** Aborts fetching the index. */
  signal?: AbortSignal | undefined;
}

/** Index summaries kept per policy. */
const INDEX_CACHE_ENTRIES = 256;

/**
 * Builds the input document of an OPA policy for a manifest (see {@link OpaInput} and the README for the
 * schema). The index summary comes from the index blob, fetched through `context.store` (bounded by
 * `maxIndexBytes`, verified against its digest by the store, validated by core's decoder and cross-checked
 * with the manifest).
 *
 * @throws BlobError `ERR_LIMIT_EXCEEDED` for an index larger than allowed, `ERR_POLICY` for an attestation not
 *   bound to the manifest (with `unboundAttestations: "deny"`), and whatever fetching / decoding the index throws.
 * @public
 */
export async function buildOpaInput(
  context: PolicyContext,
  options: BuildOpaInputOptions = {},
): Promise<OpaInput> {
  const { manifest, descriptor } = context;
  const json = manifest.json as { artifactType?: unknown } | null;
  const manifestInput: OpaManifestInput = {
    reference: context.reference,
    digest: descriptor.digest,
    mediaType: descriptor.mediaType,
    artifactType: typeof json?.artifactType === "string" ? json.artifactType : null,
    annotations: { ...manifest.annotations },
    created: manifest.created === undefined ? null : (manifest.annotations[ANNOTATION_CREATED] ?? null),
    size: descriptor.size,
  };
  const index = options.index === false ? null : await indexSummary(context, options);
  return {
    reference: context.reference,
    manifest: manifestInput,
    index,
    attestations: boundAttestations(
      descriptor.digest,
      options.attestations ?? [],
      options.unboundAttestations ?? "deny",
    ),
  };
}

async function indexSummary(context: PolicyContext, options: BuildOpaInputOptions): Promise<OpaIndexInput> {
  const layer = context.manifest.index;
  const cached = options.indexCache?.get(layer.digest);
  if (cached !== undefined) return { ...cached };
  const maxBytes = options.maxIndexBytes ?? DEFAULT_LIMITS.maxIndexSize;
  if (layer.size > maxBytes) {
    throw new BlobError(
      "ERR_LIMIT_EXCEEDED",
      `index of ${context.manifest.digest} is ${layer.size} bytes, more than the ${maxBytes} the OPA policy fetches`,
      { reason: "index-too-large", subject: layer.digest },
    );
  }
  // The Client's shared loader fetches the index once for the policy and the pull; without one (a context
  // built by hand), fetch it here.
  let index: ArchiveIndex;
  if (context.index !== undefined) index = await context.index();
  else {
    const bytes = await context.store.fetchBlob(layer, { maxBytes, signal: options.signal });
    index = decodeIndex(bytes, { limits: { maxIndexSize: Math.max(maxBytes, 1) } });
  }
  checkManifestAgainstIndex(context.manifest, index);
  const summary: OpaIndexInput = {
    digest: layer.digest,
    size: layer.size,
    fileCount: index.length,
    totalSize: index.totalSize(),
    storedSize: index.totalStoredSize(),
  };
  const cache = options.indexCache;
  if (cache !== undefined) {
    if (cache.size >= INDEX_CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
    cache.set(layer.digest, summary);
  }
  return { ...summary };
}

/**
 * Keeps the attestations whose in-toto statement names `manifestDigest` in `subject[].digest.sha256` and whose
 * `predicateType` matches the statement's. Defence in depth: the verifier should only hand out bound statements.
 */
function boundAttestations(
  manifestDigest: string,
  attestations: readonly VerifiedAttestation[],
  unbound: "deny" | "drop",
): OpaAttestationInput[] {
  const hex = digestHex(manifestDigest).toLowerCase();
  const out: OpaAttestationInput[] = [];
  attestations.forEach((attestation, i) => {
    const problem = bindingProblem(attestation, hex);
    if (problem === undefined) {
      const statement = attestation.statement as Record<string, unknown>;
      out.push({
        _type: typeof statement._type === "string" ? statement._type : null,
        predicateType: attestation.predicateType,
        subject: statement.subject as unknown[],
        predicate: statement.predicate ?? null,
        signer: attestation.signer ?? null,
      });
    } else if (unbound === "deny") {
      throw new BlobError("ERR_POLICY", `attestation ${i} is not usable: ${problem}`, {
        reason: "unbound-attestation",
        subject: manifestDigest,
      });
    }
  });
  return out;
}

function bindingProblem(attestation: VerifiedAttestation, hex: string): string | undefined {
  if (typeof attestation !== "object" || attestation === null) return "it is not an object";
  if (typeof attestation.predicateType !== "string") return "predicateType is not a string";
  const statement = attestation.statement;
  if (typeof statement !== "object" || statement === null || Array.isArray(statement)) {
    return "its statement is not an object";
  }
  const { subject, predicateType } = statement as { subject?: unknown; predicateType?: unknown };
  if (predicateType !== attestation.predicateType) {
    return `its statement's predicateType ${JSON.stringify(predicateType)} is not ${JSON.stringify(attestation.predicateType)}`;
  }
  if (!Array.isArray(subject)) return "its statement has no subject list";
  const bound = subject.some((s: unknown) => {
    const digest = (s as { digest?: unknown } | null)?.digest as { sha256?: unknown } | undefined;
    return typeof digest?.sha256 === "string" && digest.sha256.toLowerCase() === hex;
  });
  return bound ? undefined : `its subject does not name sha256:${hex} (the evaluated manifest)`;
}
