/**
 * @blobkit/core — the archive format, archive creation, the lazy `Archive` reader and the `ByteSource` /
 * `Cache` interfaces every other blobkit package composes.
 *
 * @packageDocumentation
 */
export * from "./cache.ts";
export * from "./digest.ts";
export * from "./errors.ts";
export * from "./format/types.ts";
export * from "./limits.ts";
export * from "./paths.ts";
export * from "./source.ts";
export * from "./zstd.ts";
