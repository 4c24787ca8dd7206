import { mkdtemp, open, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeCache } from "@blobkit/conformance";
import { DISK_CACHE_HEADER_BYTES, DiskCache } from "./index.ts";

async function flipByte(path: string, position: number): Promise<void> {
  const handle = await open(path, "r+");
  try {
    const byte = new Uint8Array(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

describeCache("DiskCache (injected clock, flipped value byte)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-disk-"));
  let now = 1_000_000;
  const cache = new DiskCache({ dir, now: () => now });
  return {
    cache,
    corrupt: async (key) => {
      const path = cache.entryPath(key);
      const { size } = await stat(path);
      await flipByte(path, Math.max(DISK_CACHE_HEADER_BYTES, size - 1));
    },
    advanceTime: (ms) => {
      now += ms;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describeCache(
  "DiskCache (real clock, truncated or header-damaged entries, tiny prune interval, syncReads false)",
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-disk-"));
    // Reads on the thread pool here; the other run uses the default synchronous small reads.
    const cache = new DiskCache({ dir, pruneEvery: 1, maxBytes: 16 * 1024 * 1024, syncReads: false });
    let count = 0;
    return {
      cache,
      corrupt: async (key) => {
        const path = cache.entryPath(key);
        if (count++ % 2 === 0) {
          const { size } = await stat(path);
          await truncate(path, size - 1);
        } else {
          await flipByte(path, 10); // the value length in the header
        }
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { largeSize: 256 * 1024 },
);
