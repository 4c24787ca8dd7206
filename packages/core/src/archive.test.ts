import { describe, expect, it } from "vitest";
import { Archive } from "./archive.ts";
import type { Cache } from "./cache.ts";
import { cacheKeys } from "./cache.ts";
import { sha256Hex } from "./digest.ts";
import { BlobError } from "./errors.ts";
import { decodeIndex, encodeIndex } from "./format/index-codec.ts";
import { MemoryCache } from "./memory-cache.ts";
import { MemorySource } from "./sources.ts";
import { buildArchive, goWalkOrder, pseudoRandomBytes, type TestFile } from "./test-support/build-archive.ts";
import { CountingSource } from "./test-support/counting-source.ts";

const NFC = "caf\u00e9.txt";
const NFD = "cafe\u0301.txt";

const FILES: TestFile[] = [
  { path: "docs/guide.md", content: "# Guide\n".repeat(50), compression: "zstd", mode: 0o640 },
  { path: "docs/api/ref.md", content: "reference", compression: "none" },
  { path: "docs.md", content: "top-level docs", compression: "none", mtimeNs: 1_234_567_890_123_456_789n },
  { path: "docs-old/readme.txt", content: "old docs ".repeat(30), compression: "zstd" },
  { path: "empty.txt", content: "", compression: "none" },
  { path: "empty.zst", content: "", compression: "zstd" },
  { path: NFC, content: "nfc", compression: "none" },
  { path: NFD, content: "nfd", compression: "none" },
  { path: "\u00fcn\u00efcode/\u65e5\u672c.txt", content: "日本語", compression: "zstd" },
  { path: "src/a.ts", content: "export const a = 1;\n", compression: "none" },
  { path: "src-gen/b.ts", content: "export const b = 2;\n", compression: "none" },
  { path: "big.bin", content: pseudoRandomBytes(100_000, 7), compression: "zstd" },
  { path: "emoji/\u{1F600}.txt", content: "smile", compression: "none" },
  { path: "emoji/\uFFFD.txt", content: "replacement", compression: "none" },
];

async function open(
  files: readonly TestFile[] = FILES,
  options: {
    order?: "sorted" | "as-given";
    cache?: Cache;
    stream?: boolean;
    corrupt?: (data: Uint8Array) => void;
  } = {},
) {
  const built = await buildArchive(files, { order: options.order });
  const data = built.data.slice();
  options.corrupt?.(data);
  const source = new CountingSource(new MemorySource(data), { stream: options.stream });
  const archive = await Archive.open({ index: built.index, source, cache: options.cache });
  return { archive, source, built };
}

function entryOf(
  built: { entries: readonly { path: string; offset: number; storedSize: number }[] },
  path: string,
) {
  const entry = built.entries.find((e) => e.path === path);
  if (entry === undefined) throw new Error(`no ${path}`);
  return entry;
}

async function collect(
  stream: ReadableStream<Uint8Array>,
): Promise<{ chunks: Uint8Array[]; error: unknown }> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { chunks, error: undefined };
      chunks.push(value);
    }
  } catch (error) {
    return { chunks, error };
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

async function expectCode(promise: Promise<unknown>, code: string, reason?: string): Promise<BlobError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BlobError);
  expect((error as BlobError).code).toBe(code);
  if (reason !== undefined) expect((error as BlobError).reason).toBe(reason);
  return error as BlobError;
}

describe("Archive.open", () => {
  it("exposes counts, sizes and the index digest", async () => {
    const { archive, built } = await open();
    expect(archive.fileCount).toBe(FILES.length);
    expect(archive.dataSize).toBe(built.data.byteLength);
    expect(archive.digest).toBe(`sha256:${sha256Hex(built.index)}`);
    expect(archive.index.length).toBe(FILES.length);
  });

  it("accepts an already decoded index", async () => {
    const built = await buildArchive(FILES);
    const archive = await Archive.open({
      index: decodeIndex(built.index),
      source: new MemorySource(built.data),
    });
    expect(await archive.readFile("docs.md", { encoding: "utf8" })).toBe("top-level docs");
  });

  it("rejects a source smaller than the index's data size", async () => {
    const built = await buildArchive(FILES);
    const source = new CountingSource(new MemorySource(built.data.subarray(0, built.data.byteLength - 1)));
    await expectCode(
      Archive.open({ index: built.index, source, ownsSource: true }),
      "ERR_INTEGRITY",
      "data-too-small",
    );
    expect(source.closeCount).toBe(1);
  });

  it("tolerates trailing bytes after the data", async () => {
    const built = await buildArchive(FILES);
    const padded = new Uint8Array(built.data.byteLength + 10);
    padded.set(built.data);
    const archive = await Archive.open({ index: built.index, source: new MemorySource(padded) });
    expect(await archive.readFile("src/a.ts", { encoding: "utf8" })).toBe("export const a = 1;\n");
  });

  it("rejects invalid index bytes", async () => {
    await expect(
      Archive.open({ index: new Uint8Array([1, 2, 3, 4]), source: new MemorySource(new Uint8Array()) }),
    ).rejects.toMatchObject({ code: "ERR_INVALID_INDEX" });
  });
});

for (const order of ["sorted", "as-given"] as const) {
  const files = order === "sorted" ? FILES : goWalkOrder(FILES);

  describe(`reading (${order === "sorted" ? "byte-sorted" : "Go walk-order"} index)`, () => {
    it("walk order really differs from byte order for this tree", () => {
      if (order === "as-given") {
        expect(files.map((f) => f.path)).not.toEqual(
          [...files].map((f) => f.path).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
        );
      }
    });

    it("stat: files, synthesized directories and the root", async () => {
      const { archive } = await open(files, { order });
      const guide = await archive.stat("docs/guide.md");
      expect(guide).toMatchObject({
        path: "docs/guide.md",
        name: "guide.md",
        type: "file",
        size: "# Guide\n".length * 50,
        mode: 0o640,
        compression: "zstd",
        sha256: sha256Hex(new TextEncoder().encode("# Guide\n".repeat(50))),
      });
      expect(guide.storedSize).toBeLessThan(guide.size);
      const docsMd = await archive.stat("/docs.md");
      expect(docsMd.mtimeNs).toBe(1_234_567_890_123_456_789n);
      expect(docsMd.mtime.getTime()).toBe(1_234_567_890_123);
      for (const dir of ["docs", "docs/api", "docs-old", "src", "src-gen", "\u00fcn\u00efcode", "docs/"]) {
        const s = await archive.stat(dir);
        expect(s).toMatchObject({ type: "directory", size: 0, mode: 0o755, mtimeNs: 0n, sha256: undefined });
      }
      expect((await archive.stat("docs/")).path).toBe("docs");
      for (const root of [".", "", "/"])
        expect(await archive.stat(root)).toMatchObject({ path: ".", type: "directory" });
      await expectCode(archive.stat("doc"), "ERR_NOT_FOUND");
      await expectCode(archive.stat("docs/guide"), "ERR_NOT_FOUND");
      await expectCode(archive.stat("docs/../docs.md"), "ERR_INVALID_PATH");
      expect(await archive.exists("docs")).toBe(true);
      expect(await archive.exists("docs.md")).toBe(true);
      expect(await archive.exists("nope")).toBe(false);
      expect(await archive.exists("../x")).toBe(false);
    });

    it("unicode: NFC and NFD names are distinct files", async () => {
      const { archive } = await open(files, { order });
      expect(await archive.readFile(NFC, { encoding: "utf8" })).toBe("nfc");
      expect(await archive.readFile(NFD, { encoding: "utf8" })).toBe("nfd");
      expect(await archive.readFile("\u00fcn\u00efcode/\u65e5\u672c.txt", { encoding: "utf8" })).toBe(
        "日本語",
      );
      expect(await archive.readFile("emoji/\u{1F600}.txt", { encoding: "utf8" })).toBe("smile");
    });

    it("readFile returns verified bytes for raw, zstd and empty entries", async () => {
      const { archive, built } = await open(files, { order });
      for (const file of files) {
        const bytes = await archive.readFile(file.path);
        expect(Buffer.from(bytes).equals(Buffer.from(built.contents.get(file.path)!))).toBe(true);
      }
      expect((await archive.readFile("empty.zst")).byteLength).toBe(0);
      await expectCode(archive.readFile("docs"), "ERR_IS_DIRECTORY");
      await expectCode(archive.readFile("."), "ERR_IS_DIRECTORY");
      await expectCode(archive.readFile("missing"), "ERR_NOT_FOUND");
    });

    it("readDir lists immediate children sorted by name, directories synthesized", async () => {
      const { archive } = await open(files, { order });
      const root = await archive.readDir(".");
      expect(root).toEqual([
        { name: "big.bin", type: "file" },
        { name: NFD, type: "file" },
        { name: NFC, type: "file" },
        { name: "docs", type: "directory" },
        { name: "docs-old", type: "directory" },
        { name: "docs.md", type: "file" },
        { name: "emoji", type: "directory" },
        { name: "empty.txt", type: "file" },
        { name: "empty.zst", type: "file" },
        { name: "src", type: "directory" },
        { name: "src-gen", type: "directory" },
        { name: "\u00fcn\u00efcode", type: "directory" },
      ]);
      expect(await archive.readDir("docs")).toEqual([
        { name: "api", type: "directory" },
        { name: "guide.md", type: "file" },
      ]);
      expect(await archive.readDir("/docs/api/")).toEqual([{ name: "ref.md", type: "file" }]);
      expect((await archive.readDir("emoji")).map((e) => e.name)).toEqual(["\uFFFD.txt", "\u{1F600}.txt"]);
      await expectCode(archive.readDir("docs.md"), "ERR_NOT_DIRECTORY");
      await expectCode(archive.readDir("doc"), "ERR_NOT_FOUND");
    });

    it("walk yields files in byte order, optionally under a prefix", async () => {
      const { archive } = await open(files, { order });
      const all: string[] = [];
      for await (const stat of archive.walk()) all.push(stat.path);
      const expected = files
        .map((f) => f.path)
        .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      expect(all).toEqual(expected);
      const docs: string[] = [];
      for await (const stat of archive.walk("docs")) docs.push(stat.path);
      expect(docs).toEqual(["docs/api/ref.md", "docs/guide.md"]);
      const one: string[] = [];
      for await (const stat of archive.walk("docs.md")) one.push(stat.path);
      expect(one).toEqual(["docs.md"]);
      await expect(
        (async () => {
          for await (const _ of archive.walk("nope")) {
            // drain
          }
        })(),
      ).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    });

    it("glob matches *, **, ?, [..] and {a,b}", async () => {
      const { archive } = await open(files, { order });
      expect(await archive.glob("docs/**")).toEqual(["docs/api/ref.md", "docs/guide.md"]);
      expect(await archive.glob("*.md")).toEqual(["docs.md"]);
      expect(await archive.glob("**/*.md")).toEqual(["docs.md", "docs/api/ref.md", "docs/guide.md"]);
      expect(await archive.glob("src?gen/*.ts")).toEqual(["src-gen/b.ts"]);
      expect(await archive.glob("src{,-gen}/*.ts")).toEqual(["src-gen/b.ts", "src/a.ts"]);
      expect(await archive.glob("empty.[tz]*")).toEqual(["empty.txt", "empty.zst"]);
      expect(await archive.glob("nothing/**")).toEqual([]);
    });

    it("dirStats sums a subtree, a file counts as one", async () => {
      const { archive, built } = await open(files, { order });
      const all = await archive.dirStats();
      expect(all.fileCount).toBe(files.length);
      expect(all.storedSize).toBe(built.data.byteLength);
      const docs = await archive.dirStats("docs");
      expect(docs.fileCount).toBe(2);
      expect(docs.totalSize).toBe("# Guide\n".length * 50 + "reference".length);
      expect(await archive.dirStats("docs.md")).toEqual({ fileCount: 1, totalSize: 14, storedSize: 14 });
      await expectCode(archive.dirStats("nope"), "ERR_NOT_FOUND");
    });

    it("entries() lists every entry in byte order", async () => {
      const { archive } = await open(files, { order });
      const paths = [...archive.entries()].map((e) => e.path);
      expect(paths).toEqual(
        files.map((f) => f.path).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
    });
  });
}

describe("integrity", () => {
  it("a corrupted raw file fails readFile with ERR_INTEGRITY; other files still read", async () => {
    const built = await buildArchive(FILES);
    const target = entryOf(built, "docs.md");
    const { archive } = await open(FILES, {
      corrupt: (data) => {
        data[target.offset + 3]! ^= 0xff;
      },
    });
    await expectCode(archive.readFile("docs.md"), "ERR_INTEGRITY", "hash-mismatch");
    expect(await archive.readFile("src/a.ts", { encoding: "utf8" })).toBe("export const a = 1;\n");
  });

  it("a corrupted zstd frame fails with ERR_DECOMPRESSION", async () => {
    const built = await buildArchive(FILES);
    const target = entryOf(built, "docs/guide.md");
    const { archive } = await open(FILES, {
      corrupt: (data) => {
        data[target.offset]! ^= 0xff; // the frame magic
      },
    });
    await expectCode(archive.readFile("docs/guide.md"), "ERR_DECOMPRESSION");
    const { error } = await collect(archive.createReadStream("docs/guide.md"));
    expect(error).toMatchObject({ code: "ERR_DECOMPRESSION" });
  });

  it("a stream of a corrupted file delivers earlier chunks, then errors instead of the last chunk", async () => {
    const content = pseudoRandomBytes(100_000, 3);
    const files: TestFile[] = [{ path: "f.bin", content, compression: "none" }];
    const { archive } = await open(files, {
      corrupt: (data) => {
        data[data.byteLength - 1]! ^= 0x01;
      },
    });
    const { chunks, error } = await collect(archive.createReadStream("f.bin"));
    expect(error).toMatchObject({ code: "ERR_INTEGRITY", reason: "hash-mismatch" });
    const received = concat(chunks);
    expect(received.byteLength).toBeGreaterThan(0);
    expect(received.byteLength).toBeLessThan(content.byteLength);
    expect(Buffer.from(received).equals(Buffer.from(content.subarray(0, received.byteLength)))).toBe(true);
  });

  it("a zstd entry whose content hash is wrong: readFile and the stream fail at the end", async () => {
    const content = pseudoRandomBytes(60_000, 5);
    const built = await buildArchive([{ path: "z.bin", content, compression: "zstd" }]);
    const entry = { ...built.entries[0]!, sha256: sha256Hex(new Uint8Array(60_000)) };
    const index = encodeIndex({ entries: [entry], dataSize: built.data.byteLength });
    const source = new CountingSource(new MemorySource(built.data), { chunkSize: 8192 });
    const archive = await Archive.open({ index, source });
    await expectCode(archive.readFile("z.bin"), "ERR_INTEGRITY", "hash-mismatch");
    const { chunks, error } = await collect(archive.createReadStream("z.bin"));
    expect(error).toMatchObject({ code: "ERR_INTEGRITY", reason: "hash-mismatch" });
    expect(concat(chunks).byteLength).toBeLessThan(content.byteLength);
  });

  it("createReadStream streams verified content for raw, zstd and empty files", async () => {
    const { archive, built } = await open();
    for (const path of ["big.bin", "docs/guide.md", "docs.md", "empty.txt", "empty.zst"]) {
      const { chunks, error } = await collect(archive.createReadStream(path));
      expect(error).toBeUndefined();
      expect(Buffer.from(concat(chunks)).equals(Buffer.from(built.contents.get(path)!))).toBe(true);
    }
    expect(() => archive.createReadStream("docs")).toThrow(
      expect.objectContaining({ code: "ERR_IS_DIRECTORY" }),
    );
    expect(() => archive.createReadStream("nope")).toThrow(
      expect.objectContaining({ code: "ERR_NOT_FOUND" }),
    );
  });

  it("createReadStream works over a source without stream()", async () => {
    const { archive, built, source } = await open(FILES, { stream: false });
    const { chunks, error } = await collect(archive.createReadStream("big.bin"));
    expect(error).toBeUndefined();
    expect(Buffer.from(concat(chunks)).equals(Buffer.from(built.contents.get("big.bin")!))).toBe(true);
    expect(source.reads.length).toBeGreaterThan(0);
  });

  it("limits.maxFileSize refuses large files before fetching", async () => {
    const built = await buildArchive(FILES);
    const source = new CountingSource(new MemorySource(built.data));
    // decodeIndex already enforces the limit; a pre-decoded index shows the per-read check.
    await expectCode(
      Archive.open({ index: built.index, source, limits: { maxFileSize: 1000 } }),
      "ERR_LIMIT_EXCEEDED",
    );
    const archive = await Archive.open({
      index: decodeIndex(built.index),
      source,
      limits: { maxFileSize: 1000 },
    });
    await expectCode(archive.readFile("big.bin"), "ERR_LIMIT_EXCEEDED", "max-file-size");
    expect(() => archive.createReadStream("big.bin")).toThrow(
      expect.objectContaining({ code: "ERR_LIMIT_EXCEEDED" }),
    );
    expect(source.requests).toBe(0);
    expect(await archive.readFile("docs.md", { encoding: "utf8" })).toBe("top-level docs");
  });
});

describe("content cache", () => {
  it("a hit is served without source reads, across archives", async () => {
    const cache = new MemoryCache();
    const { archive, source } = await open(FILES, { cache });
    const first = await archive.readFile("docs/guide.md");
    expect(source.requests).toBe(1);
    expect(await cache.has(cacheKeys.file(sha256Hex(first)))).toBe(true);
    const second = await archive.readFile("docs/guide.md");
    expect(Buffer.from(second).equals(Buffer.from(first))).toBe(true);
    expect(source.requests).toBe(1);
    // Another archive sharing the cache
    const other = await open(FILES, { cache });
    await other.archive.readFile("docs/guide.md");
    expect(other.source.requests).toBe(0);
    // Streams are served from the cache too
    const { chunks } = await collect(other.archive.createReadStream("docs/guide.md"));
    expect(Buffer.from(concat(chunks)).equals(Buffer.from(first))).toBe(true);
    expect(other.source.requests).toBe(0);
  });

  it("a verified stream of a missed file fills the cache; a bad stream does not", async () => {
    const cache = new MemoryCache();
    const { archive, source, built } = await open(FILES, { cache });
    const { error } = await collect(archive.createReadStream("docs-old/readme.txt"));
    expect(error).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 0));
    const key = cacheKeys.file(sha256Hex(built.contents.get("docs-old/readme.txt")!));
    expect(await cache.has(key)).toBe(true);
    source.reset();
    expect(await archive.readFile("docs-old/readme.txt", { encoding: "utf8" })).toBe("old docs ".repeat(30));
    expect(source.requests).toBe(0);

    const target = entryOf(built, "docs.md");
    const bad = await open(FILES, {
      cache,
      corrupt: (data) => {
        data[target.offset]! ^= 1;
      },
    });
    expect((await collect(bad.archive.createReadStream("docs.md"))).error).toMatchObject({
      code: "ERR_INTEGRITY",
    });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(await cache.has(cacheKeys.file(sha256Hex(built.contents.get("docs.md")!)))).toBe(false);
  });

  it("a corrupt cache entry is deleted and re-fetched", async () => {
    const cache = new MemoryCache();
    const { archive, source, built } = await open(FILES, { cache });
    const content = built.contents.get("docs.md")!;
    const key = cacheKeys.file(sha256Hex(content));
    const bad = content.slice();
    bad[0]! ^= 1;
    await cache.set(key, bad);
    expect(await archive.readFile("docs.md", { encoding: "utf8" })).toBe("top-level docs");
    expect(source.requests).toBe(1);
    const stored = await cache.get(key);
    expect(Buffer.from(stored!).equals(Buffer.from(content))).toBe(true);
    // wrong length too
    await cache.set(key, new Uint8Array(3));
    const { chunks } = await collect(archive.createReadStream("docs.md"));
    expect(Buffer.from(concat(chunks)).toString()).toBe("top-level docs");
    expect(source.requests).toBe(2);
  });

  it("a cache whose every method throws or rejects never fails a read", async () => {
    const errors: string[] = [];
    const broken: Cache = {
      supportsTtl: false,
      get: () => {
        throw new Error("get down");
      },
      set: () => Promise.reject(new Error("set down")),
      delete: () => {
        throw new Error("delete down");
      },
      close: () => Promise.reject(new Error("close down")),
    };
    const built = await buildArchive(FILES);
    const archive = await Archive.open({
      index: built.index,
      source: new MemorySource(built.data),
      cache: broken,
      onCacheError: (_e, { operation }) => errors.push(operation),
    });
    expect(await archive.readFile("docs.md", { encoding: "utf8" })).toBe("top-level docs");
    const { chunks, error } = await collect(archive.createReadStream("docs/guide.md"));
    expect(error).toBeUndefined();
    expect(concat(chunks).byteLength).toBe("# Guide\n".length * 50);
    expect(errors).toContain("get");
    expect(errors).toContain("set");
  });

  it("single-flight: concurrent reads of one missing file cause one source read", async () => {
    const cache = new MemoryCache();
    const { archive, source } = await open(FILES, { cache });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    source.beforeRead = () => gate;
    const reads = Array.from({ length: 10 }, () => archive.readFile("docs/guide.md"));
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    const results = await Promise.all(reads);
    expect(source.requests).toBe(1);
    for (const r of results) expect(new TextDecoder().decode(r)).toBe("# Guide\n".repeat(50));
    // Each caller got its own copy.
    results[0]![0] = 0;
    expect(results[1]![0]).toBe("#".charCodeAt(0));
  });

  it("single-flight never hands one entry's bytes to another entry with the same hash", async () => {
    // A hostile index: b claims a's SHA-256 with a different size.
    const built = await buildArchive([
      { path: "a", content: "hello" },
      { path: "b", content: "hello, world" },
    ]);
    const a = built.entries.find((e) => e.path === "a")!;
    const entries = built.entries.map((e) => (e.path === "b" ? { ...e, sha256: a.sha256 } : e));
    const index = encodeIndex({ entries, dataSize: built.data.byteLength });
    const source = new CountingSource(new MemorySource(built.data));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    source.beforeRead = () => gate;
    const archive = await Archive.open({ index, source, cache: new MemoryCache() });
    const reads = Promise.allSettled([archive.readFile("a"), archive.readFile("b")]);
    release();
    const [ra, rb] = await reads;
    expect(ra.status === "fulfilled" && new TextDecoder().decode(ra.value)).toBe("hello");
    expect(rb.status).toBe("rejected");
    expect((rb as PromiseRejectedResult).reason).toMatchObject({ code: "ERR_INTEGRITY" });
  });

  it("a consumer changing streamed chunks does not poison the content cache", async () => {
    const cache = new MemoryCache();
    const { archive, source } = await open(FILES, { cache });
    const reader = archive.createReadStream("big.bin").getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      value.fill(0);
    }
    await new Promise((resolve) => setTimeout(resolve, 10)); // the cache write is not awaited
    const before = source.requests;
    const bytes = await archive.readFile("big.bin");
    expect(sha256Hex(bytes)).toBe(sha256Hex(pseudoRandomBytes(100_000, 7)));
    expect(source.requests).toBe(before); // served from the (intact) cache
  });

  it("single-flight survives one caller aborting", async () => {
    const { archive, source } = await open(FILES);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    source.beforeRead = () => gate;
    const controller = new AbortController();
    const aborted = archive.readFile("docs.md", { signal: controller.signal });
    const kept = archive.readFile("docs.md", { encoding: "utf8" });
    const reason = new Error("stop");
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    release();
    expect(await kept).toBe("top-level docs");
    expect(source.requests).toBe(1);
  });

  it("files above maxCachedFileSize are not cached", async () => {
    const cache = new MemoryCache();
    const built = await buildArchive(FILES);
    const source = new CountingSource(new MemorySource(built.data));
    const archive = await Archive.open({ index: built.index, source, cache, maxCachedFileSize: 1000 });
    await archive.readFile("big.bin");
    await archive.readFile("big.bin");
    expect(source.requests).toBe(2);
    await archive.readFile("docs.md");
    await archive.readFile("docs.md");
    expect(source.requests).toBe(3);
  });
});

describe("edge cases", () => {
  it("an empty archive has a root directory and nothing else", async () => {
    const built = await buildArchive([]);
    const archive = await Archive.open({ index: built.index, source: new MemorySource(new Uint8Array(0)) });
    expect(archive.fileCount).toBe(0);
    expect(await archive.stat(".")).toMatchObject({ type: "directory" });
    expect(await archive.readDir(".")).toEqual([]);
    expect(await archive.dirStats()).toEqual({ fileCount: 0, totalSize: 0, storedSize: 0 });
    expect(await archive.glob("**")).toEqual([]);
    await expectCode(archive.stat("x"), "ERR_NOT_FOUND");
  });

  it("aborting a stream errors it with signal.reason", async () => {
    const { archive, source } = await open();
    const controller = new AbortController();
    const reason = new Error("stop streaming");
    let reads = 0;
    source.beforeRead = () => {
      if (++reads === 2) controller.abort(reason);
    };
    const { chunks, error } = await collect(
      archive.createReadStream("big.bin", { signal: controller.signal }),
    );
    expect(error).toBe(reason);
    expect(concat(chunks).byteLength).toBeLessThan(100_000);
  });

  it("cancelling a stream early is fine and a later read still works", async () => {
    const { archive } = await open();
    const reader = archive.createReadStream("big.bin").getReader();
    await reader.read();
    await reader.cancel();
    expect((await archive.readFile("big.bin")).byteLength).toBe(100_000);
  });

  it("readFile rejects an unknown encoding and an already aborted signal", async () => {
    const { archive, source } = await open();
    await expectCode(archive.readFile("docs.md", { encoding: "latin1" as "utf8" }), "ERR_INVALID_ARGUMENT");
    const reason = new Error("early");
    await expect(archive.readFile("docs.md", { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(source.requests).toBe(0);
  });

  it("glob does not match dotfiles with * unless asked", async () => {
    const { archive } = await open([
      { path: ".env", content: "x" },
      { path: "a/.hidden", content: "y" },
      { path: "a/b", content: "z" },
    ]);
    expect(await archive.glob("**")).toEqual(["a/b"]);
    expect(await archive.glob("**/.*")).toEqual([".env", "a/.hidden"]);
  });
});

describe("close", () => {
  it("is idempotent, rejects later operations with ERR_CLOSED and closes an owned source", async () => {
    const built = await buildArchive(FILES);
    const source = new CountingSource(new MemorySource(built.data));
    const archive = await Archive.open({ index: built.index, source, ownsSource: true });
    await archive.close();
    await archive.close();
    expect(source.closeCount).toBe(1);
    await expectCode(archive.readFile("docs.md"), "ERR_CLOSED");
    await expectCode(archive.stat("docs.md"), "ERR_CLOSED");
    await expectCode(archive.readDir("."), "ERR_CLOSED");
    expect(() => archive.createReadStream("docs.md")).toThrow(
      expect.objectContaining({ code: "ERR_CLOSED" }),
    );
  });

  it("does not close a source it does not own; supports await using", async () => {
    const built = await buildArchive(FILES);
    const source = new CountingSource(new MemorySource(built.data));
    {
      await using archive = await Archive.open({ index: built.index, source });
      await archive.readFile("docs.md");
    }
    expect(source.closeCount).toBe(0);
  });
});
