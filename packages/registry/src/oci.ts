/** OCI media types and JSON shapes shared by the registry and layout stores. */
import { BlobError, type Descriptor, isSha256Digest, MEDIA_TYPE_OCI_MANIFEST } from "@blobkit/core";

/** Media type of an OCI image index. @public */
export const MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json";
/** Docker's schema 2 manifest. */
export const MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
/** Docker's manifest list. */
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";

/** `Accept` header of manifest requests: OCI first, Docker's types for registries that only speak those. */
export const MANIFEST_ACCEPT: string = [
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_DOCKER_MANIFEST_LIST,
].join(", ");

/** The referrers tag-schema tag of a subject: `sha256-<hex>`. @public */
export function referrersTag(digest: string): string {
  return digest.replace(":", "-");
}

function malformed(what: string, why: string): BlobError {
  return new BlobError("ERR_INVALID_MANIFEST", `${what}: ${why}`, {
    reason: "malformed-index",
    subject: what,
  });
}

/**
 * The `manifests` of an OCI image index (a referrers response or tag-schema index), validated: each entry
 * has a media type, a sha256 digest and a size; optional `artifactType` and string `annotations` are kept.
 */
export function parseDescriptorList(bytes: Uint8Array, what: string): Descriptor[] {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new BlobError("ERR_INVALID_MANIFEST", `${what}: not JSON`, {
      cause,
      reason: "malformed-index",
      subject: what,
    });
  }
  if (typeof json !== "object" || json === null) throw malformed(what, "not an object");
  const manifests = (json as { manifests?: unknown }).manifests ?? [];
  if (!Array.isArray(manifests)) throw malformed(what, "manifests is not an array");
  return manifests.map((entry: unknown) => {
    const e = entry as Record<string, unknown>;
    if (typeof e !== "object" || e === null) throw malformed(what, "an entry is not an object");
    if (typeof e.mediaType !== "string") throw malformed(what, "an entry has no mediaType");
    if (!isSha256Digest(e.digest)) throw malformed(what, "an entry has no sha256 digest");
    if (!Number.isSafeInteger(e.size) || (e.size as number) < 0)
      throw malformed(what, "an entry has no valid size");
    const out: Descriptor = { mediaType: e.mediaType, digest: e.digest, size: e.size as number };
    if (typeof e.artifactType === "string") out.artifactType = e.artifactType;
    if (typeof e.annotations === "object" && e.annotations !== null && !Array.isArray(e.annotations)) {
      const annotations: Record<string, string> = {};
      for (const [key, value] of Object.entries(e.annotations))
        if (typeof value === "string") annotations[key] = value;
      out.annotations = annotations;
    }
    return out;
  });
}
