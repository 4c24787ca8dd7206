import { symlinkSync, writeFileSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Archive } from "./archive.ts";
import { BlobError } from "./errors.ts";
import { ByteBudget } from "./extract.ts";
import { MemorySource } from "./sources.ts";
import { buildArchive, goWalkOrder, pseudoRandomBytes, type TestFile } from "./test-support/build-archive.ts";
import { CountingSource } from "./test-support/counting-source.ts";
import { rejection } from "./test-support/rejection.ts";

const FILES: TestFile[] = [
  { path: "docs/guide.md", content: "# Guide\n".repeat(50), compression: "zstd", mode: 0o600 },
  { path: "docs/api/ref.md", content: "reference", compression: "none", mode: 0o755 },
  { path: "docs.md", content: "top-level docs", compression: "none", mtimeNs: 1_234_567_890_123_456_789n },
  { path: "docs-old/readme.txt", content: "old docs ".repeat(30), compression: "zstd" },
  { path: "empty.txt", content: "", compression: "none" },
  { path: "empty.zst", content: "", compression: "zstd" },
  { path: "caf\u00e9/\u65e5\u672c.txt", content: "日本語", compression: "zstd" },
  { path: "src/a.ts", content: "export const a = 1;\n", compression: "none" },
  { path: "src-gen/b.ts", content: "export const b = 2;\n", compression: "none" },
];

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), "blobkit-extract-"));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function open(
  files: readonly TestFile[] = FILES,
  options: { order?: "sorted" | "as-given"; corrupt?: (data: Uint8Array) => void; stream?: boolean } = {},
) {
  const built = await buildArchive(files, { order: options.order });
  const data = built.data.slice();
  options.corrupt?.(data);
  const source = new CountingSource(new MemorySource(data), { stream: options.stream });
  const archive = await Archive.open({ index: built.index, source });
  return { archive, source, built };
}

async function listTree(dir: string): Promise<string[]> {
  const names = (await readdir(dir, { recursive: true })) as string[];
  return names.map((n) => n.split("\\").join("/")).sort();
}

async function tempFiles(dir: string): Promise<string[]> {
  return (await listTree(dir)).filter((n) => n.split("/").pop()!.startsWith(".blobkit-"));
}

async function expectFiles(
  dest: string,
  built: { contents: ReadonlyMap<string, Uint8Array> },
  paths: string[],
) {
  for (const path of paths) {
    const bytes = await readFile(join(dest, path));
    expect(Buffer.compare(bytes, Buffer.from(built.contents.get(path)!)), path).toBe(0);
  }
}

describe("extract", () => {
  it("extracts everything, verified, with default permissions and no temp files", async () => {
    const { archive, built } = await open();
    const dest = join(tmp, "out");
    const events: number[] = [];
    const result = await archive.extract(dest, { onProgress: (e) => events.push(e.filesDone) });
    expect(result).toEqual({
      fileCount: FILES.length,
      totalBytes: [...built.contents.values()].reduce((n, c) => n + c.byteLength, 0),
      skipped: 0,
    });
    await expectFiles(
      dest,
      built,
      FILES.map((f) => f.path),
    );
    const umask = process.umask();
    expect((await stat(join(dest, "docs/guide.md"))).mode & 0o777).toBe(0o644 & ~umask);
    expect(await tempFiles(dest)).toEqual([]);
    expect(events).toEqual(FILES.map((_, i) => i + 1));
  });

  it("extracts a walk-ordered (Go) archive identically", async () => {
    const { archive, built } = await open(goWalkOrder(FILES), { order: "as-given" });
    const dest = join(tmp, "go");
    await archive.extract(dest);
    await expectFiles(
      dest,
      built,
      FILES.map((f) => f.path),
    );
  });

  it("prefix and paths select subsets; files keep their archive paths", async () => {
    const { archive, built } = await open();
    const a = join(tmp, "a");
    expect((await archive.extract(a, { prefix: "docs" })).fileCount).toBe(2);
    expect((await listTree(a)).filter((n) => n.includes("."))).toEqual(["docs/api/ref.md", "docs/guide.md"]);
    await expectFiles(a, built, ["docs/api/ref.md", "docs/guide.md"]);
    const b = join(tmp, "b");
    expect((await archive.extract(b, { paths: ["docs.md", "src", "src/a.ts"] })).fileCount).toBe(2);
    expect(await listTree(b)).toEqual(["docs.md", "src", "src/a.ts"]);
    await expect(archive.extract(b, { paths: ["nope"] })).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    await expect(archive.extract(b, { paths: ["../x"] })).rejects.toMatchObject({ code: "ERR_INVALID_PATH" });
    await expect(archive.extract(b, { paths: ["a"], prefix: "b" })).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
  });

  it("writes everything into an existing empty directory, and re-extraction skips it all", async () => {
    const { archive, built } = await open();
    const dest = join(tmp, "empty");
    await mkdir(dest);
    const first = await archive.extract(dest);
    expect(first).toMatchObject({ fileCount: FILES.length, skipped: 0 });
    await expectFiles(
      dest,
      built,
      FILES.map((f) => f.path),
    );
    const again = await archive.extract(dest);
    expect(again).toMatchObject({ fileCount: 0, skipped: FILES.length });
  });

  it("skips existing files unless overwrite is set", async () => {
    const { archive, built } = await open();
    const dest = join(tmp, "o");
    await mkdir(join(dest, "src"), { recursive: true });
    await writeFile(join(dest, "docs.md"), "mine");
    await writeFile(join(dest, "src/a.ts"), "mine too");
    const first = await archive.extract(dest);
    expect(first.skipped).toBe(2);
    expect(first.fileCount).toBe(FILES.length - 2);
    expect(await readFile(join(dest, "docs.md"), "utf8")).toBe("mine");
    const second = await archive.extract(dest, { overwrite: true });
    expect(second).toMatchObject({ fileCount: FILES.length, skipped: 0 });
    await expectFiles(dest, built, ["docs.md", "src/a.ts"]);
  });

  it("an existing directory at a file's target is ERR_IS_DIRECTORY", async () => {
    const { archive } = await open();
    const dest = join(tmp, "d");
    await mkdir(join(dest, "docs.md"), { recursive: true });
    await expect(archive.extract(dest, { overwrite: true })).rejects.toMatchObject({
      code: "ERR_IS_DIRECTORY",
    });
    await expect(archive.extract(dest)).rejects.toMatchObject({ code: "ERR_IS_DIRECTORY" });
  });

  it("a regular file where a directory is needed is ERR_NOT_DIRECTORY", async () => {
    const { archive } = await open();
    const dest = join(tmp, "nd");
    await mkdir(dest);
    await writeFile(join(dest, "docs"), "file");
    await expect(archive.extract(dest)).rejects.toMatchObject({ code: "ERR_NOT_DIRECTORY" });
  });

  it("preserveMode and preserveTimes apply the archived metadata", async () => {
    const { archive } = await open();
    const dest = join(tmp, "p");
    await archive.extract(dest, { preserveMode: true, preserveTimes: true });
    expect((await stat(join(dest, "docs/guide.md"))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dest, "docs/api/ref.md"))).mode & 0o777).toBe(0o755);
    const s = await stat(join(dest, "docs.md"), { bigint: true });
    expect(s.mtimeNs / 1000n).toBe(1_234_567_890_123_456n);
  });

  it("a symlink in dest pointing outside is refused and nothing is written outside", async () => {
    const { archive } = await open();
    const dest = join(tmp, "jail");
    const outside = join(tmp, "outside");
    await mkdir(dest);
    await mkdir(outside);
    await symlink(outside, join(dest, "docs"));
    const error = await rejection(archive.extract(dest));
    expect(error).toBeInstanceOf(BlobError);
    expect(error).toMatchObject({ code: "ERR_PATH_ESCAPE", reason: "symlink" });
    expect(await readdir(outside)).toEqual([]);
    expect(await tempFiles(dest)).toEqual([]);
    expect((await lstat(join(dest, "docs"))).isSymbolicLink()).toBe(true);
    // A symlink deeper down is refused too.
    const dest2 = join(tmp, "jail2");
    await mkdir(join(dest2, "docs"), { recursive: true });
    await symlink(outside, join(dest2, "docs", "api"));
    await expect(archive.extract(dest2)).rejects.toMatchObject({ code: "ERR_PATH_ESCAPE" });
    expect(await readdir(outside)).toEqual([]);
  });

  it("a symlink or file that appears where a directory is still to be created is refused (empty destination)", async () => {
    // An empty destination skips the up-front checks; the directory creation itself must catch the swap.
    const files: TestFile[] = [
      { path: "a.txt", content: "first", compression: "none" },
      { path: "z/b.txt", content: "second", compression: "none" },
    ];
    const outside = join(tmp, "outside");
    await mkdir(outside);
    for (const [swap, expected] of [
      [(dir: string) => symlinkSync(outside, dir), { code: "ERR_PATH_ESCAPE", reason: "symlink" }],
      [(dir: string) => writeFileSync(dir, "not a directory"), { code: "ERR_NOT_DIRECTORY" }],
    ] as const) {
      const { archive } = await open(files);
      const dest = await mkdtemp(join(tmp, "swap-"));
      const error = await rejection(
        archive.extract(dest, {
          concurrency: 1,
          onProgress: (event) => {
            // Runs after a.txt is placed, before z/ is created for z/b.txt.
            if (event.filesDone === 1) swap(join(dest, "z"));
          },
        }),
      );
      expect(error).toMatchObject(expected);
      expect(await readdir(outside)).toEqual([]);
      expect(await tempFiles(dest)).toEqual([]);
    }
  });

  it("an existing symlink at a file target is replaced (overwrite) without writing through it", async () => {
    const { archive } = await open();
    const dest = join(tmp, "ls");
    const victim = join(tmp, "victim.txt");
    await writeFile(victim, "untouched");
    await mkdir(dest);
    await symlink(victim, join(dest, "docs.md"));
    expect((await archive.extract(dest)).skipped).toBe(1);
    await archive.extract(dest, { overwrite: true });
    expect(await readFile(victim, "utf8")).toBe("untouched");
    expect((await lstat(join(dest, "docs.md"))).isFile()).toBe(true);
    expect(await readFile(join(dest, "docs.md"), "utf8")).toBe("top-level docs");
  });

  it("a corrupt file fails the extraction without temp files or a partial target", async () => {
    const built = await buildArchive(FILES);
    const target = built.entries.find((e) => e.path === "src/a.ts")!;
    const { archive } = await open(FILES, {
      corrupt: (data) => {
        data[target.offset + 2]! ^= 0xff;
      },
    });
    const dest = join(tmp, "c");
    await expect(archive.extract(dest, { concurrency: 1 })).rejects.toMatchObject({
      code: "ERR_INTEGRITY",
      subject: "src/a.ts",
    });
    expect(await tempFiles(dest)).toEqual([]);
    await expect(stat(join(dest, "src/a.ts"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("coalesces adjacent small files into one range read", async () => {
    const { archive, source, built } = await open();
    await archive.extract(join(tmp, "r"));
    expect(source.reads).toEqual([[0, built.data.byteLength]]);
    expect(source.streams).toEqual([]);
  });

  it("maxRequestBytes caps each range read", async () => {
    const files: TestFile[] = Array.from({ length: 10 }, (_, i) => ({
      path: `f/${i}.bin`,
      content: pseudoRandomBytes(1000, i + 1),
    }));
    const { archive, source, built } = await open(files);
    const dest = join(tmp, "cap");
    await archive.extract(dest, { maxRequestBytes: 2500, concurrency: 2 });
    expect(source.reads.length).toBe(5);
    for (const [, length] of source.reads) expect(length).toBeLessThanOrEqual(2500);
    const covered = source.reads.reduce((n, [, length]) => n + length, 0);
    expect(covered).toBe(built.data.byteLength);
    await expectFiles(
      dest,
      built,
      files.map((f) => f.path),
    );
  });

  it("streams files larger than maxRequestBytes (raw and zstd) and verifies them", async () => {
    const files: TestFile[] = [
      { path: "big/raw.bin", content: pseudoRandomBytes(200_000, 9) },
      { path: "big/zeros.zst", content: new Uint8Array(300_000), compression: "zstd" },
      { path: "small.txt", content: "small" },
    ];
    const { archive, source, built } = await open(files);
    const dest = join(tmp, "s");
    await archive.extract(dest, { maxRequestBytes: 64 * 1024 });
    await expectFiles(
      dest,
      built,
      files.map((f) => f.path),
    );
    expect(source.streams.length).toBe(2);
    expect(source.reads.every(([, length]) => length <= 64 * 1024)).toBe(true);
  });

  it("a corrupt streamed file fails without temp files or target", async () => {
    const content = pseudoRandomBytes(200_000, 11);
    const { archive } = await open([{ path: "big.bin", content }], {
      corrupt: (data) => {
        data[150_000]! ^= 1;
      },
    });
    const dest = join(tmp, "sc");
    await expect(archive.extract(dest, { maxRequestBytes: 10_000 })).rejects.toMatchObject({
      code: "ERR_INTEGRITY",
      reason: "hash-mismatch",
    });
    expect(await listTree(dest)).toEqual([]);
  });

  it("abort mid-extraction rejects with signal.reason and leaves no temp files", async () => {
    const files: TestFile[] = Array.from({ length: 40 }, (_, i) => ({
      path: `d${i % 4}/${i}.bin`,
      content: pseudoRandomBytes(2000, i + 1),
      compression: i % 2 === 0 ? "zstd" : "none",
    }));
    const { archive, source } = await open(files);
    const controller = new AbortController();
    const reason = new Error("user abort");
    let reads = 0;
    source.beforeRead = async () => {
      reads++;
      if (reads === 5) controller.abort(reason);
      await new Promise((resolve) => setTimeout(resolve, 1));
    };
    const dest = join(tmp, "abort");
    const error = await rejection(
      archive.extract(dest, { signal: controller.signal, maxRequestBytes: 4000, concurrency: 3 }),
    );
    expect(error).toBe(reason);
    expect(await tempFiles(dest)).toEqual([]);
    // Every file that exists is complete.
    for (const name of await listTree(dest)) {
      if (!name.endsWith(".bin")) continue;
      expect((await stat(join(dest, name))).size).toBe(2000);
    }
  });

  it("close() stops a running extraction with ERR_CLOSED and leaves no temp files", async () => {
    const files: TestFile[] = Array.from({ length: 40 }, (_, i) => ({
      path: `d${i % 4}/${i}.bin`,
      content: pseudoRandomBytes(2000, i + 1),
    }));
    const { archive, source } = await open(files);
    let reads = 0;
    source.beforeRead = async () => {
      if (++reads === 3) void archive.close();
      await new Promise((resolve) => setTimeout(resolve, 1));
    };
    const dest = join(tmp, "closed");
    const error = await rejection(archive.extract(dest, { maxRequestBytes: 4000, concurrency: 2 }));
    expect(error).toMatchObject({ code: "ERR_CLOSED" });
    expect(reads).toBeLessThan(10);
    expect(await tempFiles(dest)).toEqual([]);
  });

  it("an already aborted signal rejects before anything happens", async () => {
    const { archive, source } = await open();
    const reason = new Error("early");
    await expect(archive.extract(join(tmp, "e"), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(source.requests).toBe(0);
  });

  it("a readAheadBytes budget smaller than a group does not hang", async () => {
    const files: TestFile[] = Array.from({ length: 12 }, (_, i) => ({
      path: `x/${i}.bin`,
      content: pseudoRandomBytes(1500, i + 3),
    }));
    const { archive, built } = await open(files);
    const dest = join(tmp, "ra");
    const result = await archive.extract(dest, { readAheadBytes: 1, maxRequestBytes: 3000, concurrency: 4 });
    expect(result.fileCount).toBe(12);
    await expectFiles(
      dest,
      built,
      files.map((f) => f.path),
    );
  });

  it("refuses files above limits.maxFileSize before fetching", async () => {
    const built = await buildArchive([{ path: "big.bin", content: pseudoRandomBytes(5000) }]);
    const source = new CountingSource(new MemorySource(built.data));
    const { decodeIndex } = await import("./format/index-codec.ts");
    const archive = await Archive.open({
      index: decodeIndex(built.index),
      source,
      limits: { maxFileSize: 100 },
    });
    await expect(archive.extract(join(tmp, "l"))).rejects.toMatchObject({ code: "ERR_LIMIT_EXCEEDED" });
    expect(source.requests).toBe(0);
  });
});

describe("ByteBudget", () => {
  it("admits an oversized request when nothing is held, FIFO otherwise", async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(25);
    expect(budget.held).toBe(25);
    const order: string[] = [];
    const a = budget.acquire(5).then(() => order.push("a"));
    const b = budget.acquire(1).then(() => order.push("b"));
    await Promise.resolve();
    expect(order).toEqual([]);
    budget.release(25);
    await Promise.all([a, b]);
    expect(order).toEqual(["a", "b"]);
    expect(budget.held).toBe(6);
  });

  it("a waiting acquire rejects on abort", async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(10);
    const controller = new AbortController();
    const waiting = budget.acquire(5, controller.signal);
    controller.abort(new Error("x"));
    await expect(waiting).rejects.toThrow("x");
    budget.release(10);
    expect(budget.held).toBe(0);
  });
});
