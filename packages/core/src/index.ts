/**
 * @blobkit/core — the archive format, archive creation, the lazy `Archive` reader and the `ByteSource` /
 * `Cache` interfaces every other blobkit package composes.
 *
 * @packageDocumentation
 */

export type {
  ArchiveOpenOptions,
  CacheErrorContext,
  DirEntry,
  DirStats,
  FileStat,
  ReadFileOptions,
} from "./archive.ts";
export { Archive, DEFAULT_MAX_CACHED_FILE_SIZE } from "./archive.ts";
export * from "./block-cache.ts";
export * from "./cache.ts";
export type {
  ArchiveInput,
  CreateOptions,
  CreateProgress,
  CreateResult,
  DeterministicOptions,
  SkipCompressionOptions,
  SkippedFile,
  SkippedKind,
} from "./create.ts";
export {
  createArchive,
  DEFAULT_SKIP_COMPRESSION_EXTENSIONS,
  DEFAULT_SKIP_COMPRESSION_MIN_SIZE,
} from "./create.ts";
export * from "./create-local.ts";
export * from "./digest.ts";
export * from "./errors.ts";
export type { ExtractOptions, ExtractProgress, ExtractResult } from "./extract.ts";
export {
  DEFAULT_EXTRACT_CONCURRENCY,
  DEFAULT_MAX_REQUEST_BYTES,
  DEFAULT_READ_AHEAD_BYTES,
} from "./extract.ts";
export * from "./format/archive-index.ts";
export type { EncodeIndexInput, EncodeIndexOptions } from "./format/index-codec.ts";
export { decodeIndex, encodeIndex } from "./format/index-codec.ts";
export type {
  ArchiveManifest,
  BlobRef,
  CreatedManifest,
  CreateManifestInput,
  Descriptor,
  ParseManifestOptions,
} from "./format/manifest.ts";
export {
  checkManifestAgainstIndex,
  createManifest,
  DEFAULT_MAX_MANIFEST_SIZE,
  parseManifest,
} from "./format/manifest.ts";
export * from "./format/media-types.ts";
export * from "./format/types.ts";
export * from "./limits.ts";
export * from "./local.ts";
export * from "./memory.ts";
export * from "./memory-cache.ts";
export * from "./paths.ts";
export * from "./source.ts";
export * from "./sources.ts";
export * from "./zstd.ts";
