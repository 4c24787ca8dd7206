/**
 * @blobkit/registry — OCI distribution client, OCI image-layout store and the high-level `Client`.
 *
 * @packageDocumentation
 */

export * from "./store.ts";
