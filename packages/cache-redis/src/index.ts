/**
 * `@blobkit/cache-redis`: a blobkit `Cache` on Redis (ioredis) — shared by every machine of a fleet, chunked
 * large values with atomic generation switches, TTLs, Redis Cluster–safe keys, bounded timeouts.
 *
 * @packageDocumentation
 */
export { type EntryKeys, REDIS_CACHE_CHUNK_PREFIX_BYTES, REDIS_CACHE_HEADER_BYTES } from "./layout.ts";
export {
  DEFAULT_REDIS_CHUNK_SIZE,
  DEFAULT_REDIS_MAX_ENTRY_BYTES,
  DEFAULT_REDIS_TIMEOUT_MS,
  RedisCache,
  type RedisCacheOptions,
  type RedisClient,
  redisClientOptions,
} from "./redis-cache.ts";
