/**
 * `@blobkit/cache-disk`: a blobkit `Cache` on a local directory — content-addressed, atomic, size-bounded
 * with LRU eviction, TTLs, shared safely by several processes.
 *
 * @packageDocumentation
 */
export { DISK_CACHE_HEADER_BYTES, DiskCache, type DiskCacheOptions } from "./disk-cache.ts";
