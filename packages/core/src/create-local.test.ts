import { mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLocalArchive } from "./create-local.ts";
import { sha256Hex } from "./digest.ts";
import { isBlobError } from "./errors.ts";
import { decodeIndex } from "./format/index-codec.ts";
import { openLocalArchive } from "./local.ts";
import { rejection } from "./test-support/rejection.ts";
import { useTempDirs } from "./test-support/temp-dirs.ts";
import { zstdDecompress } from "./zstd.ts";

const tempDir = useTempDirs("blobkit-create-local-");

function sourceTree(files = 20): string {
  const root = tempDir();
  mkdirSync(join(root, "sub"));
  for (let i = 0; i < files; i++) {
    writeFileSync(join(root, i % 2 ? "sub" : ".", `file${i}.txt`), `line ${i}\n`.repeat(50 + i * 40));
  }
  return root;
}

async function checkArchive(indexPath: string, dataPath: string): Promise<number> {
  const index = decodeIndex(new Uint8Array(readFileSync(indexPath)));
  const data = readFileSync(dataPath);
  expect(index.dataSize).toBe(data.length);
  expect(index.dataSha256).toBe(sha256Hex(data));
  for (let rank = 0; rank < index.length; rank++) {
    const stored = data.subarray(index.offset(rank), index.offset(rank) + index.storedSize(rank));
    const content =
      index.compression(rank) === "zstd"
        ? await zstdDecompress(stored, index.size(rank), { maxDecoderMemory: 1 << 27 })
        : stored;
    expect(sha256Hex(content)).toBe(index.sha256(rank));
  }
  return index.length;
}

describe("createLocalArchive", () => {
  it("writes index.blob and data.blob into a new directory and nothing else", async () => {
    const src = sourceTree();
    const dest = join(tempDir(), "out", "nested");
    const result = await createLocalArchive(src, dest);
    expect(result.indexPath).toBe(join(dest, "index.blob"));
    expect(result.dataPath).toBe(join(dest, "data.blob"));
    expect(readdirSync(dest).sort()).toEqual(["data.blob", "index.blob"]);
    expect(await checkArchive(result.indexPath, result.dataPath)).toBe(20);
    expect(`sha256:${sha256Hex(readFileSync(result.indexPath))}`).toBe(result.indexDigest);
    expect(`sha256:${sha256Hex(readFileSync(result.dataPath))}`).toBe(result.dataDigest);
    expect(new Uint8Array(readFileSync(result.indexPath))).toEqual(result.index);
    expect(result.fileCount).toBe(20);
  });

  it("is readable by openLocalArchive (including a streamed large file and dedupe)", async () => {
    const src = sourceTree(6);
    const big = Buffer.alloc(5 * 1024 * 1024, "0123456789abcdef");
    writeFileSync(join(src, "big.txt"), big);
    writeFileSync(join(src, "sub", "copy.txt"), readFileSync(join(src, "file0.txt")));
    const dest = tempDir();
    await createLocalArchive(src, dest, { dedupe: true });
    const archive = await openLocalArchive(dest);
    try {
      expect(Buffer.from(await archive.readFile("big.txt")).equals(big)).toBe(true);
      expect(await archive.readFile("sub/copy.txt", { encoding: "utf8" })).toBe(
        readFileSync(join(src, "file0.txt"), "utf8"),
      );
      expect(await archive.readFile("sub/file5.txt", { encoding: "utf8" })).toBe(
        readFileSync(join(src, "sub/file5.txt"), "utf8"),
      );
      const out = join(tempDir(), "x");
      await archive.extract(out);
      expect(readFileSync(join(out, "sub", "copy.txt")).equals(readFileSync(join(src, "file0.txt")))).toBe(
        true,
      );
      expect(readFileSync(join(out, "file0.txt")).equals(readFileSync(join(src, "file0.txt")))).toBe(true);
      expect(readFileSync(join(out, "big.txt")).equals(big)).toBe(true);
    } finally {
      await archive.close();
    }
  });

  it("honours custom names and refuses to overwrite unless asked", async () => {
    const src = sourceTree(3);
    const dest = tempDir();
    const first = await createLocalArchive(src, dest, { indexName: "i.fb", dataName: "d.bin" });
    expect(readdirSync(dest).sort()).toEqual(["d.bin", "i.fb"]);
    const before = readFileSync(first.dataPath);
    const error = await rejection(createLocalArchive(src, dest, { indexName: "i.fb", dataName: "d.bin" }));
    expect(isBlobError(error, "ERR_EXISTS")).toBe(true);
    expect(readdirSync(dest).sort()).toEqual(["d.bin", "i.fb"]);
    expect(readFileSync(first.dataPath).equals(before)).toBe(true);
    writeFileSync(join(src, "added.txt"), "new file");
    const second = await createLocalArchive(src, dest, {
      indexName: "i.fb",
      dataName: "d.bin",
      overwrite: true,
    });
    expect(second.fileCount).toBe(4);
    expect(await checkArchive(second.indexPath, second.dataPath)).toBe(4);
    expect(readdirSync(dest).sort()).toEqual(["d.bin", "i.fb"]);
  });

  it("refuses when only one of the two files exists", async () => {
    const src = sourceTree(2);
    const dest = tempDir();
    writeFileSync(join(dest, "index.blob"), "keep me");
    const error = await rejection(createLocalArchive(src, dest));
    expect(isBlobError(error, "ERR_EXISTS")).toBe(true);
    expect(readdirSync(dest)).toEqual(["index.blob"]);
    expect(readFileSync(join(dest, "index.blob"), "utf8")).toBe("keep me");
  });

  it("rejects bad names", async () => {
    const src = sourceTree(1);
    for (const options of [
      { indexName: "../x" },
      { dataName: "a/b" },
      { indexName: "same", dataName: "same" },
    ]) {
      const error = await rejection(createLocalArchive(src, tempDir(), options));
      expect(isBlobError(error, "ERR_INVALID_ARGUMENT")).toBe(true);
    }
  });

  it("leaves no output or temp files after an abort", async () => {
    const src = sourceTree(60);
    const dest = tempDir();
    const controller = new AbortController();
    const reason = new Error("cancelled");
    let writes = 0;
    const error = await rejection(
      createLocalArchive(src, dest, {
        signal: controller.signal,
        concurrency: 2,
        onProgress: (e) => {
          if (e.stage === "writing" && ++writes === 5) controller.abort(reason);
        },
      }),
    );
    expect(error).toBe(reason);
    expect(readdirSync(dest)).toEqual([]);
  });

  it("leaves no output or temp files when a source file changes", async () => {
    const src = sourceTree(4);
    const dest = tempDir();
    const error = await rejection(
      createLocalArchive(src, dest, {
        onProgress: (e) => {
          if (e.stage === "scanning" && e.filesTotal > 0) truncateSync(join(src, "file2.txt"), 1);
        },
      }),
    );
    expect(isBlobError(error, "ERR_FILE_CHANGED")).toBe(true);
    expect(readdirSync(dest)).toEqual([]);
  });

  it("leaves the destination alone when the source does not exist", async () => {
    const dest = tempDir();
    const error = await rejection(createLocalArchive(join(dest, "missing"), dest));
    expect(isBlobError(error, "ERR_NOT_FOUND")).toBe(true);
    expect(readdirSync(dest)).toEqual([]);
  });

  it("leaves its own output and temp files out when writing into the source directory itself", async () => {
    const src = sourceTree(3);
    const first = await createLocalArchive(src, src);
    expect(first.fileCount).toBe(3);
    const second = await createLocalArchive(src, src, { overwrite: true });
    expect(second.fileCount).toBe(3);
    expect(readdirSync(src).sort()).toEqual(["data.blob", "file0.txt", "file2.txt", "index.blob", "sub"]);
    expect(decodeIndex(new Uint8Array(readFileSync(second.indexPath))).find("data.blob")).toBe(-1);
  });

  it("leaves its own output directory out when it lies inside the source", async () => {
    const src = sourceTree(3);
    const dest = join(src, "out");
    mkdirSync(dest);
    writeFileSync(join(dest, "stale.txt"), "not archived");
    const first = await createLocalArchive(src, dest);
    expect(first.fileCount).toBe(3);
    const second = await createLocalArchive(src, dest, { overwrite: true, deterministic: true });
    expect(second.fileCount).toBe(3);
    expect(readdirSync(dest).sort()).toEqual(["data.blob", "index.blob", "stale.txt"]);
  });
});
