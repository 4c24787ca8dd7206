/**
 * Media types, artifact type and annotation keys of the meigma/blob v1 archive format. They are wire
 * constants shared with the Go implementation and must never change.
 */

/** Media type of an OCI image manifest (the archive's manifest). @public */
export const MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** `artifactType` of every archive manifest. @public */
export const ARTIFACT_TYPE_BLOB = "application/vnd.meigma.blob.v1";

/** Media type of the index layer (a FlatBuffers `Index`). @public */
export const MEDIA_TYPE_INDEX = "application/vnd.meigma.blob.index.v1+flatbuffers";

/** Media type of the data layer (concatenated stored file bytes). @public */
export const MEDIA_TYPE_DATA = "application/vnd.meigma.blob.data.v1";

/** Media type of the empty OCI config blob (`{}`). @public */
export const MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json";

/** Digest of the 2-byte empty config blob `{}`. @public */
export const EMPTY_CONFIG_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/** Size in bytes of the empty config blob `{}`. @public */
export const EMPTY_CONFIG_SIZE = 2;

/** Manifest annotation holding the creation time (RFC 3339, UTC, second precision). @public */
export const ANNOTATION_CREATED = "org.opencontainers.image.created";
