import {
  type Descriptor,
  EMPTY_CONFIG_DIGEST,
  EMPTY_CONFIG_SIZE,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
  sha256Digest,
} from "@blobkit/core";
import type { OciStore } from "../src/store.ts";

// Helpers shared by the layout store's unit tests and its multi-process worker (which runs outside vitest).

/** The empty `{}` config blob and its descriptor. */
export const EMPTY_CONFIG: { bytes: Uint8Array; descriptor: Descriptor } = {
  bytes: new TextEncoder().encode("{}"),
  descriptor: { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_CONFIG_DIGEST, size: EMPTY_CONFIG_SIZE },
};

/** A blob's bytes and descriptor. */
export function blobOf(
  content: string | Uint8Array,
  mediaType = "application/octet-stream",
): {
  bytes: Uint8Array;
  descriptor: Descriptor;
} {
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  return { bytes, descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.byteLength } };
}

/** Fields of {@link imageManifest}. */
export interface ManifestFields {
  artifactType?: string;
  config?: Descriptor;
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An OCI image manifest over `layers` (config: the empty blob unless given), compact JSON. */
export function imageManifest(
  layers: Descriptor[],
  fields: ManifestFields = {},
): {
  bytes: Uint8Array;
  descriptor: Descriptor;
} {
  const json: Record<string, unknown> = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_MANIFEST };
  if (fields.artifactType !== undefined) json.artifactType = fields.artifactType;
  json.config = fields.config ?? EMPTY_CONFIG.descriptor;
  json.layers = layers;
  if (fields.subject !== undefined) json.subject = fields.subject;
  if (fields.annotations !== undefined) json.annotations = fields.annotations;
  return blobOf(JSON.stringify(json), MEDIA_TYPE_OCI_MANIFEST);
}

/** Pushes the empty config, one layer with `content`, and a manifest over it (tagged when `tag` is given). */
export async function pushSimple(
  store: OciStore,
  content: string,
  tag?: string,
  fields: ManifestFields = {},
): Promise<{ layer: Descriptor; manifest: Descriptor; bytes: Uint8Array }> {
  await store.pushBlob(EMPTY_CONFIG.descriptor, EMPTY_CONFIG.bytes);
  const layer = blobOf(content);
  await store.pushBlob(layer.descriptor, layer.bytes);
  const m = imageManifest([layer.descriptor], fields);
  const manifest = await store.pushManifest(m.bytes, MEDIA_TYPE_OCI_MANIFEST, { tag });
  return { layer: layer.descriptor, manifest, bytes: m.bytes };
}
