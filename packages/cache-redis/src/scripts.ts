// The Lua scripts of RedisCache. Every script only touches the keys it is given (KEYS), which all carry one
// entry's hash tag, so they run unchanged on Redis Cluster.
import { createHash } from "node:crypto";
import { REDIS_CACHE_HEADER_BYTES } from "./layout.ts";

/** A Lua script and its SHA-1 (for EVALSHA). */
export interface LuaScript {
  /** The Lua source (sent with EVAL when the server does not know the script yet). */
  readonly source: string;
  /** Hex SHA-1 of `source` (for EVALSHA). */
  readonly sha: string;
}

function script(source: string): LuaScript {
  return { source, sha: createHash("sha1").update(source).digest("hex") };
}

const PREFIX_END = REDIS_CACHE_HEADER_BYTES - 1;

/**
 * Switches an entry to a new header (or deletes it), if its header is still the one the caller read.
 *
 * KEYS[1] header; KEYS[2 .. n+1] the new generation's chunks; KEYS[n+2 ..] the chunks of the generation the
 * caller read. ARGV[1] the header's fixed part as read ("" = absent); ARGV[2] n; ARGV[3] the new header
 * ("" = delete the entry); ARGV[4] TTL in ms ("0" = none).
 *
 * The chunks of the generation read are deleted in every case: either it is being replaced, or another writer
 * has already replaced it, and generations never come back. Returns 1 when switched, 0 when the header
 * changed since it was read (new chunks left untouched, so that the caller may retry), -1 when a new chunk has
 * vanished (evicted or expired; the new chunks are deleted and the entry is left as it was).
 */
export const COMMIT: LuaScript = script(`
local n = tonumber(ARGV[2])
for i = n + 2, #KEYS do redis.call('UNLINK', KEYS[i]) end
if redis.call('GETRANGE', KEYS[1], 0, ${PREFIX_END}) ~= ARGV[1] then return 0 end
for i = 2, n + 1 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    for j = 2, n + 1 do redis.call('UNLINK', KEYS[j]) end
    return -1
  end
end
if ARGV[3] == '' then
  redis.call('UNLINK', KEYS[1])
  return 1
end
local ttl = tonumber(ARGV[4])
for i = 2, n + 1 do
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
`);

/**
 * Evicts keys of one entry found by a scan. KEYS[1] the header; KEYS[2 ..] chunk keys seen with that hash tag.
 * ARGV[1] the header's fixed part as scanned; ARGV[2] "all" (evict the entry) or "orphans".
 *
 * Always deletes orphaned chunks: chunks of a generation that is not the header's and that have no TTL
 * (committed once, then their header vanished — e.g. evicted alone by Redis). Chunks of a write in progress
 * carry a TTL and are left alone. With "all", also deletes the header and its generation's chunks, if the
 * header is still the one scanned. Returns the bytes deleted (MEMORY USAGE, as `sizeBytes` counts them).
 */
export const EVICT: LuaScript = script(`
local prefix = redis.call('GETRANGE', KEYS[1], 0, ${PREFIX_END})
local all = ARGV[2] == 'all' and prefix ~= '' and prefix == ARGV[1]
local gen = ''
if string.len(prefix) == ${REDIS_CACHE_HEADER_BYTES} then
  gen = string.gsub(string.sub(prefix, 9, 24), '.', function(c) return string.format('%02x', string.byte(c)) end)
end
local freed = 0
for i = 2, #KEYS do
  local k = KEYS[i]
  local g = string.match(k, ':(%x+):%d+$')
  if (all and g == gen) or (g ~= gen and redis.call('PTTL', k) == -1) then
    freed = freed + redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')
    redis.call('UNLINK', k)
  end
end
if all then
  freed = freed + redis.call('MEMORY', 'USAGE', KEYS[1], 'SAMPLES', '0')
  redis.call('UNLINK', KEYS[1])
end
return freed
`);
