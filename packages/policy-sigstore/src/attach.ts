import {
  type Descriptor,
  EMPTY_CONFIG_DIGEST,
  EMPTY_CONFIG_SIZE,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
} from "@blobkit/core";
import { attachReferrer, type Client, type OciStore, type Signature, type Signer } from "@blobkit/registry";

/** Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings. */
function goJSON(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** A Go `map[string]string` marshals with sorted keys. */
function sortedRecord(record: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(record).sort()) out[key] = record[key] as string;
  return out;
}

/** go-containerregistry's `v1.Descriptor` field order: mediaType, size, digest, …, annotations, …, artifactType. */
function goDescriptor(descriptor: Descriptor): Record<string, unknown> {
  const out: Record<string, unknown> = {
    mediaType: descriptor.mediaType,
    size: descriptor.size,
    digest: descriptor.digest,
  };
  if (descriptor.annotations !== undefined && Object.keys(descriptor.annotations).length > 0)
    out.annotations = sortedRecord(descriptor.annotations);
  if (descriptor.artifactType !== undefined) out.artifactType = descriptor.artifactType;
  return out;
}

/**
 * The referrer manifest exactly as cosign (`ociremote.WriteReferrer`) serializes it: key order of
 * go-containerregistry's `v1.Manifest` with cosign's trailing `artifactType`, the empty config descriptor
 * carrying the `artifactType` too, sorted annotations, compact JSON with Go's HTML escaping.
 *
 * @public
 */
export function cosignReferrerManifest(
  subject: Descriptor,
  artifactType: string,
  layers: readonly Descriptor[],
  annotations?: Record<string, string>,
): Uint8Array {
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: goDescriptor({
      mediaType: MEDIA_TYPE_EMPTY,
      size: EMPTY_CONFIG_SIZE,
      digest: EMPTY_CONFIG_DIGEST,
      artifactType,
    }),
    layers: layers.map(goDescriptor),
  };
  if (annotations !== undefined && Object.keys(annotations).length > 0)
    manifest.annotations = sortedRecord(annotations);
  manifest.subject = goDescriptor({
    mediaType: subject.mediaType,
    size: subject.size,
    digest: subject.digest,
  });
  manifest.artifactType = artifactType;
  return new TextEncoder().encode(goJSON(manifest));
}

/**
 * Attaches `signature` to the manifest `subject` in `store` with cosign's exact referrer layout (see
 * {@link cosignReferrerManifest}): pushes the layers and the empty config, then the referrer manifest by
 * digest (the store maintains the `sha256-<hex>` tag-schema index where the registry has no referrers API).
 * Resolves to the referrer manifest's descriptor.
 *
 * @public
 */
export async function attachSignature(
  store: OciStore,
  subject: Descriptor,
  signature: Signature,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<Descriptor> {
  return attachReferrer(store, subject, withCosignLayout(signature), options);
}

/** `signature` with cosign's referrer layout, unless it already dictates one. */
function withCosignLayout(signature: Signature): Signature {
  if (signature.referrerManifest !== undefined) return signature;
  return {
    ...signature,
    referrerManifest: (subject, layers) =>
      cosignReferrerManifest(subject, signature.artifactType, layers, signature.annotations),
  };
}

/**
 * `Client.sign` with cosign's exact referrer layout: resolves `reference` now (never from a cache), fetches
 * the manifest (verified against its digest), signs it with `signer` and attaches the result with
 * {@link attachSignature}. Resolves to the referrer manifest's descriptor.
 *
 * @public
 */
export async function signReference(
  client: Client,
  reference: string,
  signer: Signer,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<Descriptor> {
  return client.sign(
    reference,
    { sign: async (subject, signOptions) => withCosignLayout(await signer.sign(subject, signOptions)) },
    options,
  );
}
