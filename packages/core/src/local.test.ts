import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "./digest.ts";
import { openLocalArchive } from "./local.ts";
import { MemoryCache } from "./memory-cache.ts";
import { buildArchive, type TestFile } from "./test-support/build-archive.ts";

const FILES: TestFile[] = [
  { path: "a/b.txt", content: "hello b", compression: "zstd" },
  { path: "c.txt", content: "hello c" },
];

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "blobkit-local-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(options: { omitDataHash?: boolean; indexName?: string; dataName?: string } = {}) {
  const built = await buildArchive(FILES, { omitDataHash: options.omitDataHash });
  await writeFile(join(dir, options.indexName ?? "index.blob"), built.index);
  await writeFile(join(dir, options.dataName ?? "data.blob"), built.data);
  return built;
}

describe("openLocalArchive", () => {
  it("opens index.blob + data.blob; the source id is the data digest; close releases the file", async () => {
    const built = await write();
    const archive = await openLocalArchive(dir);
    expect(archive.fileCount).toBe(2);
    expect(archive.source.id).toBe(`sha256:${sha256Hex(built.data)}`);
    expect(await archive.readFile("a/b.txt", { encoding: "utf8" })).toBe("hello b");
    expect(await archive.readDir(".")).toEqual([
      { name: "a", type: "directory" },
      { name: "c.txt", type: "file" },
    ]);
    await archive.close();
    await archive.close();
    await expect(archive.source.read(0, 1)).rejects.toMatchObject({ code: "ERR_CLOSED" });
    await expect(archive.readFile("c.txt")).rejects.toMatchObject({ code: "ERR_CLOSED" });
  });

  it("uses a file id when the index has no data hash, honours custom names and a cache", async () => {
    await write({ omitDataHash: true, indexName: "i.bin", dataName: "d.bin" });
    const cache = new MemoryCache();
    await using archive = await openLocalArchive(dir, { indexName: "i.bin", dataName: "d.bin", cache });
    expect(archive.source.id.startsWith("file:")).toBe(true);
    expect(await archive.readFile("c.txt", { encoding: "utf8" })).toBe("hello c");
    expect(await cache.sizeBytes()).toBe(7);
  });

  it("refuses an index larger than maxIndexSize before reading it", async () => {
    const built = await write();
    await expect(
      openLocalArchive(dir, { limits: { maxIndexSize: built.index.byteLength - 1 } }),
    ).rejects.toMatchObject({ code: "ERR_LIMIT_EXCEEDED", reason: "max-index-size" });
  });

  it("missing files are ERR_NOT_FOUND; a truncated data file is ERR_INTEGRITY", async () => {
    await expect(openLocalArchive(dir)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    const built = await write();
    await rm(join(dir, "data.blob"));
    await expect(openLocalArchive(dir)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    await writeFile(join(dir, "data.blob"), built.data.subarray(0, 3));
    await expect(openLocalArchive(dir)).rejects.toMatchObject({
      code: "ERR_INTEGRITY",
      reason: "data-too-small",
    });
  });

  it("a corrupt index is ERR_INVALID_INDEX", async () => {
    await write();
    await writeFile(join(dir, "index.blob"), new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9]));
    await expect(openLocalArchive(dir)).rejects.toMatchObject({ code: "ERR_INVALID_INDEX" });
  });
});
