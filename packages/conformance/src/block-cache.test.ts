import { MemoryCache, MemorySource, withBlockCache } from "@blobkit/core";
import { describeByteSource } from "./index.ts";

// The block cache wraps any source; a wrapped source must still honour the whole ByteSource contract.
describeByteSource(
  "withBlockCache(MemorySource, MemoryCache), 4 KiB blocks",
  (bytes) => ({
    source: withBlockCache(new MemorySource(bytes), new MemoryCache(), { blockSize: 4096 }),
    expected: bytes,
  }),
  { largeSize: 1024 * 1024 },
);

describeByteSource("withBlockCache over a warm cache", async (bytes) => {
  const cache = new MemoryCache();
  const warm = withBlockCache(new MemorySource(bytes), cache, { blockSize: 4096, maxBlocksPerRead: 64 });
  // Fill the cache, then test a second wrapper that serves from it.
  for (let offset = 0; offset < bytes.length; offset += 64 * 4096) {
    await warm.read(offset, Math.min(64 * 4096, bytes.length - offset));
  }
  return {
    source: withBlockCache(new MemorySource(bytes), cache, { blockSize: 4096, maxBlocksPerRead: 64 }),
    expected: bytes,
  };
});
