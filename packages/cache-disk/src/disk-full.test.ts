import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlobError, isBlobError } from "@blobkit/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DiskCache } from "./index.ts";

/** Errno code that writes to temp files fail with, when set. */
const failure = vi.hoisted(() => ({ code: undefined as string | undefined }));

// Simulates a full disk (or an I/O error) for the cache's writes: real files, failing write() calls.
vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    if (failure.code !== undefined && args[1] === "wx") {
      const code = failure.code;
      handle.write = (async () => {
        throw Object.assign(new Error(`${code}: simulated failure, write`), { code });
      }) as typeof handle.write;
    }
    return handle;
  };
  return { ...actual, default: { ...actual, open }, open };
});

const dirs: string[] = [];
afterEach(async () => {
  failure.code = undefined;
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail("expected a rejection"),
    (error: unknown) => error,
  );
}

describe("DiskCache on a full disk", () => {
  for (const code of ["ENOSPC", "EIO", "EDQUOT"]) {
    it(`${code} on write: set rejects ERR_CACHE, nothing half-written remains, reads still work, recovery clears degraded`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-disk-full-"));
      dirs.push(dir);
      const errors: BlobError[] = [];
      const cache = await DiskCache.open({ dir, onError: (error) => errors.push(error) });
      try {
        await cache.set("old", Uint8Array.of(1, 2, 3));
        failure.code = code;
        const error = await rejection(cache.set("k", new Uint8Array(1000).fill(7)));
        expect(isBlobError(error, "ERR_CACHE")).toBe(true);
        expect((error as BlobError).message).toContain(code);
        expect(((error as BlobError).cause as { code?: string }).code).toBe(code);
        const streamError = await rejection(cache.setStream("old", new Blob([new Uint8Array(10)]).stream()));
        expect(isBlobError(streamError, "ERR_CACHE")).toBe(true);
        expect(cache.degraded).toBe(true);
        expect(errors.map((e) => e.code)).toEqual(["ERR_CACHE", "ERR_CACHE"]);
        expect(await cache.get("k")).toBeUndefined();
        expect(await cache.get("old")).toEqual(Uint8Array.of(1, 2, 3)); // the previous value is intact
        for (const shard of await readdir(dir)) {
          for (const name of await readdir(join(dir, shard))) expect(name.startsWith(".tmp-")).toBe(false);
        }
        failure.code = undefined;
        await cache.set("k", Uint8Array.of(9));
        expect(cache.degraded).toBe(false);
        expect(await cache.get("k")).toEqual(Uint8Array.of(9));
      } finally {
        await cache.close();
      }
    });
  }
});
