/**
 * @blobkit/registry — OCI distribution client, OCI image-layout store and the high-level `Client`.
 *
 * @packageDocumentation
 */

export * from "./auth/index.ts";
export * from "./client.ts";
export * from "./layout.ts";
export { MEDIA_TYPE_OCI_INDEX, referrersTag } from "./oci.ts";
export * from "./policy.ts";
export * from "./reference.ts";
export * from "./registry-store.ts";
export * from "./store.ts";
