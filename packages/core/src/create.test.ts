import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  mkdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type ArchiveInput,
  CREATE_BUFFER_THRESHOLD,
  type CreateOptions,
  type CreateProgress,
  type CreateResult,
  createArchive,
  createArchiveInternal,
} from "./create.ts";
import { sha256Hex } from "./digest.ts";
import { isBlobError } from "./errors.ts";
import { decodeIndex } from "./format/index-codec.ts";
import { rejection } from "./test-support/rejection.ts";
import { useTempDirs } from "./test-support/temp-dirs.ts";
import { zstdDecompress } from "./zstd.ts";

// ------------------------------------------------------------------------------------------------
// helpers

const tempDir = useTempDirs("blobkit-create-");

/** Writes `files` (relative path → content) below `root`, creating parent directories. */
function writeTree(root: string, files: Record<string, string | Uint8Array>): void {
  for (const [path, content] of Object.entries(files)) {
    const abs = join(root, path);
    mkdirSync(join(abs, ".."), { recursive: true });
    writeFileSync(abs, content);
  }
}

/** A Node writable collecting everything (optionally slow, with a tiny buffer, to exercise backpressure). */
function nodeSink(options: { slow?: boolean } = {}): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    highWaterMark: options.slow ? 1024 : 16 * 1024,
    write(chunk: Buffer, _enc, callback) {
      chunks.push(Buffer.from(chunk));
      if (options.slow) setImmediate(callback);
      else callback();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

function webSink(): { stream: WritableStream<Uint8Array>; bytes: () => Buffer; closed: () => boolean } {
  const chunks: Buffer[] = [];
  let closed = false;
  const stream = new WritableStream<Uint8Array>(
    {
      async write(chunk) {
        chunks.push(Buffer.from(chunk));
        await new Promise((r) => setImmediate(r));
      },
      close() {
        closed = true;
      },
    },
    new CountQueuingStrategy({ highWaterMark: 2 }),
  );
  return { stream, bytes: () => Buffer.concat(chunks), closed: () => closed };
}

interface Decoded {
  paths: string[];
  contents: Map<string, Buffer>;
  index: ReturnType<typeof decodeIndex>;
}

/** Decodes the index and checks every invariant of the produced archive; returns the file contents. */
async function verify(result: CreateResult, data: Buffer, shared = false): Promise<Decoded> {
  const index = decodeIndex(result.index);
  expect(index.sortedOnDisk).toBe(true);
  expect(result.dataSize).toBe(data.length);
  if (!shared) expect(result.storedSize).toBe(data.length);
  expect(index.dataSize).toBe(data.length);
  expect(result.dataDigest).toBe(`sha256:${sha256Hex(data)}`);
  expect(index.dataSha256).toBe(sha256Hex(data));
  expect(result.indexDigest).toBe(`sha256:${sha256Hex(result.index)}`);
  expect(index.length).toBe(result.fileCount);
  const paths: string[] = [];
  const contents = new Map<string, Buffer>();
  let offset = 0;
  let total = 0;
  for (let rank = 0; rank < index.length; rank++) {
    const path = index.path(rank);
    if (!shared || index.offset(rank) >= offset) {
      expect(index.offset(rank)).toBe(offset);
      offset += index.storedSize(rank);
    }
    const stored = data.subarray(index.offset(rank), index.offset(rank) + index.storedSize(rank));
    const content =
      index.compression(rank) === "zstd"
        ? Buffer.from(
            await zstdDecompress(stored, index.size(rank), { maxDecoderMemory: 1 << 27, subject: path }),
          )
        : stored;
    if (index.compression(rank) === "none") expect(stored.length).toBe(index.size(rank));
    expect(sha256Hex(content)).toBe(index.sha256(rank));
    total += content.length;
    paths.push(path);
    contents.set(path, content);
  }
  expect(offset).toBe(data.length);
  expect(result.totalSize).toBe(total);
  // Unsigned UTF-8 byte order.
  const sorted = [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  expect(paths).toEqual(sorted);
  return { paths, contents, index };
}

async function create(
  input: Parameters<typeof createArchive>[0],
  options?: CreateOptions,
): Promise<{ result: CreateResult; decoded: Decoded; data: Buffer }> {
  const sink = nodeSink();
  const result = await createArchive(input, sink.stream, options);
  const data = sink.bytes();
  return { result, decoded: await verify(result, data), data };
}

const compressible = (n: number): Buffer => {
  const line = Buffer.from("the quick brown fox jumps over the lazy dog 0123456789\n");
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += line.length) line.copy(out, i);
  return out;
};

// ------------------------------------------------------------------------------------------------

describe("createArchive — programmatic input", () => {
  it("round-trips bytes, strings and streamed contents with their metadata", async () => {
    const big = compressible(20_000);
    async function* gen(): AsyncGenerator<Uint8Array> {
      yield big.subarray(0, 5000);
      yield new Uint8Array(0);
      yield big.subarray(5000);
    }
    const input: ArchiveInput[] = [
      {
        path: "b/text.txt",
        content: "héllo wörld",
        mode: 0o100755,
        mtime: new Date(1_700_000_000_123),
        uid: 7,
        gid: 9,
      },
      { path: "a.bin", content: new Uint8Array([1, 2, 3]), mtime: 42n },
      { path: "c/gen.txt", content: () => gen() },
      {
        path: "c/web.txt",
        size: 11,
        content: () =>
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(Buffer.from("hello "));
              controller.enqueue(Buffer.from("world"));
              controller.close();
            },
          }),
      },
    ];
    const { result, decoded } = await create(input);
    expect(decoded.paths).toEqual(["a.bin", "b/text.txt", "c/gen.txt", "c/web.txt"]);
    expect(decoded.contents.get("b/text.txt")!.toString()).toBe("héllo wörld");
    expect(decoded.contents.get("c/gen.txt")!.equals(big)).toBe(true);
    expect(decoded.contents.get("c/web.txt")!.toString()).toBe("hello world");
    const text = decoded.index.get("b/text.txt")!;
    expect(text.mode).toBe(0o755);
    expect(text.uid).toBe(7);
    expect(text.gid).toBe(9);
    expect(text.mtimeNs).toBe(1_700_000_000_123_000_000n);
    expect(decoded.index.get("a.bin")!.mtimeNs).toBe(42n);
    expect(decoded.index.get("a.bin")!.mode).toBe(0o644);
    expect(decoded.index.get("c/gen.txt")!.compression).toBe("zstd");
    expect(result.fileCount).toBe(4);
    expect(result.skipped).toEqual([]);
  });

  it("leaves the caller's buffers intact (only buffers it read itself are freed early)", async () => {
    const big = compressible(300 * 1024);
    const chunks = [compressible(CREATE_BUFFER_THRESHOLD), compressible(1024 * 1024)];
    const copies = [Buffer.from(big), ...chunks.map((c) => Buffer.from(c))];
    await create([
      { path: "bytes.txt", content: big },
      {
        path: "stream.txt",
        content: async function* () {
          yield* chunks;
        },
      },
    ]);
    expect(big.equals(copies[0]!)).toBe(true);
    expect(chunks[0]!.equals(copies[1]!)).toBe(true);
    expect(chunks[1]!.equals(copies[2]!)).toBe(true);
  });

  it("accepts a sync generator and an async iterable", async () => {
    function* sync(): Generator<ArchiveInput> {
      yield { path: "z", content: "1" };
      yield { path: "y", content: "2" };
    }
    async function* asyncGen(): AsyncGenerator<ArchiveInput> {
      yield { path: "z", content: "1" };
      yield { path: "y", content: "2" };
    }
    const a = await create(sync(), { deterministic: true });
    const b = await create(asyncGen(), { deterministic: true });
    expect(a.decoded.paths).toEqual(["y", "z"]);
    expect(b.result.indexDigest).toBe(a.result.indexDigest);
    expect(b.result.dataDigest).toBe(a.result.dataDigest);
  });

  it("creates an empty archive", async () => {
    const { result, data } = await create([]);
    expect(result.fileCount).toBe(0);
    expect(data.length).toBe(0);
    expect(result.dataDigest).toBe(`sha256:${sha256Hex(new Uint8Array(0))}`);
  });

  it("rejects duplicates, invalid paths and files below files", async () => {
    const dup = await rejection(
      create([
        { path: "a", content: "1" },
        { path: "a", content: "2" },
      ]),
    );
    expect(isBlobError(dup, "ERR_INVALID_ARGUMENT") && dup.reason).toBe("duplicate-path");
    for (const path of ["/abs", "a/../b", "a//b", "./a", "", "a/"]) {
      const error = await rejection(create([{ path, content: "x" }]));
      expect(isBlobError(error, "ERR_INVALID_PATH"), path).toBe(true);
    }
    const conflict = await rejection(
      create([
        { path: "a", content: "1" },
        { path: "a.txt", content: "2" },
        { path: "a/b", content: "3" },
      ]),
    );
    expect(isBlobError(conflict, "ERR_INVALID_ARGUMENT") && conflict.reason).toBe("file-directory-conflict");
  });

  it("rejects bad metadata before writing anything", async () => {
    for (const entry of [
      { path: "a", content: "x", mtime: 2n ** 63n },
      { path: "a", content: "x", uid: -1 },
      { path: "a", content: "x", gid: 2 ** 32 },
      { path: "a", content: "x", mode: 1.5 },
      { path: "a", content: "x", size: -1 },
      { path: "a", content: 42 as unknown as string },
    ] as ArchiveInput[]) {
      const sink = nodeSink();
      const error = await rejection(createArchive([entry], sink.stream));
      expect(
        isBlobError(error, "ERR_INVALID_ARGUMENT"),
        JSON.stringify(entry, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)),
      ).toBe(true);
      expect(sink.bytes().length).toBe(0);
    }
  });

  it("rejects bad options", async () => {
    for (const options of [
      { compression: "gzip" },
      { level: 0 },
      { level: 23 },
      { concurrency: 0 },
      { maxFiles: -1 },
      { changeDetection: "paranoid" },
      { skipCompression: { minSize: -1 } },
    ] as CreateOptions[]) {
      const error = await rejection(create([], options));
      expect(isBlobError(error, "ERR_INVALID_ARGUMENT"), JSON.stringify(options)).toBe(true);
    }
  });

  it("fails with ERR_FILE_CHANGED when content does not match its declared size", async () => {
    const bytes = await rejection(create([{ path: "a", content: new Uint8Array(10), size: 11 }]));
    expect(isBlobError(bytes, "ERR_FILE_CHANGED")).toBe(true);
    const short = await rejection(
      create([
        {
          path: "s",
          size: 100,
          content: async function* () {
            yield new Uint8Array(50);
          },
        },
      ]),
    );
    expect(isBlobError(short, "ERR_FILE_CHANGED")).toBe(true);
    expect((short as { subject?: string }).subject).toBe("s");
    const long = await rejection(
      create([
        {
          path: "l",
          size: 10,
          content: async function* () {
            yield new Uint8Array(11);
          },
        },
      ]),
    );
    expect(isBlobError(long, "ERR_FILE_CHANGED")).toBe(true);
  });

  it("enforces maxFiles with ERR_LIMIT_EXCEEDED too-many-files", async () => {
    const input = Array.from({ length: 6 }, (_, i) => ({ path: `f${i}`, content: "x" }));
    const error = await rejection(create(input, { maxFiles: 5 }));
    expect(isBlobError(error, "ERR_LIMIT_EXCEEDED") && error.reason).toBe("too-many-files");
    const ok = await create(input.slice(0, 5), { maxFiles: 5 });
    expect(ok.result.fileCount).toBe(5);
    const viaLimits = await rejection(create(input, { limits: { maxFiles: 3 } }));
    expect(isBlobError(viaLimits, "ERR_LIMIT_EXCEEDED")).toBe(true);
  });

  it("enforces limits.maxFileSize", async () => {
    const error = await rejection(
      create([{ path: "big", content: new Uint8Array(2000) }], { limits: { maxFileSize: 1000 } }),
    );
    expect(isBlobError(error, "ERR_LIMIT_EXCEEDED") && error.reason).toBe("file-too-large");
  });

  it("propagates an error thrown by a content stream", async () => {
    const error = await rejection(
      create([
        {
          path: "bad",
          content: async function* () {
            yield new Uint8Array(5);
            throw new Error("boom");
          },
        },
      ]),
    );
    expect(isBlobError(error, "ERR_IO")).toBe(true);
    expect((error as Error).message).toContain("boom");
  });
});

describe("createArchive — compression decisions", () => {
  it("stores small files, skip-listed extensions and incompressible data raw, the rest as zstd", async () => {
    const random = randomBytes(64 * 1024);
    const { decoded } = await create([
      { path: "empty.txt", content: new Uint8Array(0) },
      { path: "small.txt", content: compressible(1023) },
      { path: "exact.txt", content: compressible(1024) },
      { path: "image.PNG", content: compressible(50_000) },
      { path: "random.bin", content: random },
      { path: "k128.txt", content: compressible(128 * 1024) },
      { path: "k128p1.txt", content: compressible(128 * 1024 + 1) },
      { path: "noext", content: compressible(4000) },
    ]);
    const c = (p: string): string => decoded.index.get(p)!.compression;
    expect(c("empty.txt")).toBe("none");
    expect(decoded.index.get("empty.txt")!.storedSize).toBe(0);
    expect(c("small.txt")).toBe("none");
    expect(c("exact.txt")).toBe("zstd");
    expect(c("image.PNG")).toBe("none");
    expect(c("random.bin")).toBe("none");
    expect(c("k128.txt")).toBe("zstd");
    expect(c("k128p1.txt")).toBe("zstd");
    expect(decoded.contents.get("random.bin")!.equals(random)).toBe(true);
    expect(decoded.contents.get("k128p1.txt")!.length).toBe(128 * 1024 + 1);
    expect(decoded.index.get("k128.txt")!.storedSize).toBeLessThan(128 * 1024);
  });

  it("honours compression none, skipCompression false and custom rules", async () => {
    const files = [
      { path: "a.png", content: compressible(5000) },
      { path: "b.txt", content: compressible(100) },
      { path: "c.log", content: compressible(5000) },
    ];
    const none = await create(files, { compression: "none" });
    expect(none.decoded.paths.map((p) => none.decoded.index.get(p)!.compression)).toEqual([
      "none",
      "none",
      "none",
    ]);
    const all = await create(files, { skipCompression: false });
    expect(all.decoded.paths.map((p) => all.decoded.index.get(p)!.compression)).toEqual([
      "zstd",
      "zstd",
      "zstd",
    ]);
    const custom = await create(files, { skipCompression: { minSize: 0, extensions: ["LOG"] } });
    expect(custom.decoded.paths.map((p) => custom.decoded.index.get(p)!.compression)).toEqual([
      "zstd",
      "zstd",
      "none",
    ]);
    const level = await create(files, { level: 19 });
    expect(level.decoded.index.get("c.log")!.compression).toBe("zstd");
  });

  it("probes files of 256 KiB and more: samples that do not shrink keep the file raw unless probe is off", async () => {
    // Random where the probe looks (start, middle, end), compressible everywhere else.
    const n = 512 * 1024;
    const tricky = compressible(n);
    const sample = 16 * 1024;
    const middle = Math.floor((n - sample) / 2);
    for (const at of [0, middle, n - sample]) randomBytes(sample).copy(tricky, at);
    const files = [
      { path: "tricky.bin", content: tricky },
      { path: "text.txt", content: compressible(n) },
      { path: "noise.bin", content: randomBytes(n) },
    ];
    const probed = await create(files);
    const c = (r: typeof probed, p: string): string => r.decoded.index.get(p)!.compression;
    expect(c(probed, "tricky.bin")).toBe("none");
    expect(c(probed, "text.txt")).toBe("zstd");
    expect(c(probed, "noise.bin")).toBe("none");
    const whole = await create(files, { skipCompression: { probe: false } });
    expect(c(whole, "tricky.bin")).toBe("zstd");
    expect(whole.decoded.index.get("tricky.bin")!.storedSize).toBeLessThan(n / 2);
    expect(c(whole, "noise.bin")).toBe("none");
    expect(probed.decoded.contents.get("tricky.bin")!.equals(tricky)).toBe(true);
    expect(
      isBlobError(
        await create(files, { skipCompression: { probe: "yes" as never } }).catch((e) => e),
        "ERR_INVALID_ARGUMENT",
      ),
    ).toBe(true);
  });

  it("streams files above the buffering threshold (zstd kept even when larger) and unknown-size streams", async () => {
    const n = CREATE_BUFFER_THRESHOLD + 100_000;
    const text = compressible(n);
    const random = randomBytes(n);
    async function* chunks(buf: Buffer): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < buf.length; i += 300_000) yield buf.subarray(i, i + 300_000);
    }
    const { decoded } = await create(
      [
        { path: "big.txt", content: text },
        { path: "big.rand", content: random },
        { path: "big.zip", content: text },
        { path: "unknown.txt", content: () => chunks(text) },
        { path: "declared.rand", size: n, content: () => chunks(random) },
      ],
      { concurrency: 3 },
    );
    expect(decoded.contents.get("big.txt")!.equals(text)).toBe(true);
    expect(decoded.contents.get("big.rand")!.equals(random)).toBe(true);
    expect(decoded.contents.get("unknown.txt")!.equals(text)).toBe(true);
    expect(decoded.contents.get("declared.rand")!.equals(random)).toBe(true);
    expect(decoded.index.get("big.txt")!.compression).toBe("zstd");
    expect(decoded.index.get("big.txt")!.storedSize).toBeLessThan(n / 10);
    // Documented: a streamed zstd entry is kept although it did not shrink.
    expect(decoded.index.get("big.rand")!.compression).toBe("zstd");
    expect(decoded.index.get("big.zip")!.compression).toBe("none");
    expect(decoded.index.get("unknown.txt")!.compression).toBe("zstd");
  });

  it("dedupe stores identical buffered contents once, deterministically", async () => {
    const same = compressible(30_000);
    const big = randomBytes(CREATE_BUFFER_THRESHOLD + 10);
    const input = (): ArchiveInput[] => [
      { path: "a/one.txt", content: same, mtime: 0n },
      { path: "b/two.txt", content: Buffer.from(same), mtime: 0n },
      { path: "c/three.png", content: Buffer.from(same), mtime: 0n },
      { path: "d/tiny1", content: "tiny", mtime: 0n },
      { path: "d/tiny2", content: "tiny", mtime: 0n },
      { path: "e/empty1", content: "", mtime: 0n },
      { path: "e/empty2", content: "", mtime: 0n },
      { path: "f/big1", content: big, mtime: 0n },
      { path: "f/big2", content: Buffer.from(big), mtime: 0n },
    ];
    const plain = await create(input());
    const sink = nodeSink();
    const result = await createArchive(input(), sink.stream, { dedupe: true, concurrency: 3 });
    const decoded = await verify(result, sink.bytes(), true);
    const e = (p: string) => decoded.index.get(p)!;
    expect(e("b/two.txt").offset).toBe(e("a/one.txt").offset);
    // The shared bytes keep the first file's compression, even for a skip-listed extension.
    expect(e("c/three.png")).toMatchObject({ offset: e("a/one.txt").offset, compression: "zstd" });
    expect(e("d/tiny2").offset).toBe(e("d/tiny1").offset);
    // Streamed files (> 4 MiB) are written as they are read, so they are not deduplicated.
    expect(e("f/big2").offset).not.toBe(e("f/big1").offset);
    const pngPlain = plain.decoded.index.get("c/three.png")!;
    expect(pngPlain.compression).toBe("none");
    expect(result.dataSize).toBe(plain.result.dataSize - e("a/one.txt").storedSize - pngPlain.storedSize - 4);
    let sum = 0;
    for (const path of decoded.paths) sum += e(path).storedSize;
    expect(result.storedSize).toBe(sum);
    expect(result.storedSize).toBeGreaterThan(result.dataSize);
    for (const [path, content] of plain.decoded.contents)
      expect(decoded.contents.get(path)!.equals(content)).toBe(true);
    const again = nodeSink();
    const second = await createArchive(input(), again.stream, { dedupe: true, concurrency: 1 });
    expect(second.indexDigest).toBe(result.indexDigest);
    expect(second.dataDigest).toBe(result.dataDigest);
  });

  it("gives the same archive whatever the concurrency", async () => {
    const input = Array.from({ length: 40 }, (_, i) => ({
      path: `d${i % 3}/f${i}.txt`,
      content: compressible(500 + i * 997),
      mtime: 1n,
    }));
    const one = await create(input, { concurrency: 1 });
    const four = await create(input, { concurrency: 4 });
    expect(four.result.indexDigest).toBe(one.result.indexDigest);
    expect(four.result.dataDigest).toBe(one.result.dataDigest);
  });
});

describe("createArchive — directories", () => {
  it("writes byte-sorted entries for tricky names and captures metadata", async () => {
    const root = tempDir();
    const nfc = "caf\u00e9.txt";
    const nfd = "cafe\u0301.txt";
    writeTree(root, {
      "docs/guide.md": "guide",
      "docs.md": "docs",
      "docs-old/readme.txt": "old",
      "a b/x.txt": "space",
      "B.txt": "upper",
      "a.txt": "lower",
      [nfc]: "nfc",
      [nfd]: "nfd",
      "src/deep/er/file.ts": "deep",
      "\u{1F600}.txt": "emoji",
      "\uFFFD.txt": "replacement char",
    });
    mkdirSync(join(root, "empty-dir"));
    const { decoded, result } = await create(root);
    expect(decoded.paths).toEqual(
      [
        "B.txt",
        "a b/x.txt",
        "a.txt",
        "cafe\u0301.txt",
        "caf\u00e9.txt",
        "docs-old/readme.txt",
        "docs.md",
        "docs/guide.md",
        "src/deep/er/file.ts",
        "\uFFFD.txt",
        "\u{1F600}.txt",
      ].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
    expect(decoded.paths.indexOf("docs.md")).toBeLessThan(decoded.paths.indexOf("docs/guide.md"));
    expect(decoded.paths.indexOf("docs-old/readme.txt")).toBeLessThan(decoded.paths.indexOf("docs.md"));
    expect(decoded.contents.get(nfc)!.toString()).toBe("nfc");
    expect(decoded.contents.get(nfd)!.toString()).toBe("nfd");
    expect(result.skipped).toEqual([]);
    // Lookups work for every name (the Go writer's walk order breaks these).
    for (const path of decoded.paths) expect(decoded.index.find(path)).toBeGreaterThanOrEqual(0);
  });

  it("captures mode, uid/gid and nanosecond mtime from lstat", async () => {
    const root = tempDir();
    writeTree(root, { "x.sh": "#!/bin/sh\n" });
    execFileSync("chmod", ["4751", join(root, "x.sh")]);
    utimesSync(join(root, "x.sh"), 1_600_000_000, 1_600_000_000.5);
    const { decoded } = await create(root);
    const e = decoded.index.get("x.sh")!;
    expect(e.mode).toBe(0o751);
    expect(e.uid).toBe(process.getuid?.() ?? 0);
    expect(e.gid).toBe(process.getgid?.() ?? 0);
    expect(e.mtimeNs).toBe(1_600_000_000_500_000_000n);
  });

  it("skips and reports symlinks, FIFOs and non-UTF-8 names without following them", async () => {
    const root = tempDir();
    const outside = tempDir();
    writeTree(outside, { "secret.txt": "secret" });
    writeTree(root, { "real.txt": "real", "sub/inner.txt": "inner" });
    symlinkSync(join(outside, "secret.txt"), join(root, "link-file"));
    symlinkSync(outside, join(root, "sub", "link-dir"));
    let fifo = false;
    try {
      execFileSync("mkfifo", [join(root, "pipe")]);
      fifo = true;
    } catch {
      console.warn("mkfifo unavailable: FIFO assertion skipped");
    }
    let nonUtf8 = false;
    try {
      writeFileSync(
        Buffer.concat([Buffer.from(`${root}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from(".txt")]),
        "x",
      );
      nonUtf8 = true;
    } catch {
      console.warn("file system rejects non-UTF-8 names: assertion skipped");
    }
    const { decoded, result } = await create(root);
    expect(decoded.paths).toEqual(["real.txt", "sub/inner.txt"]);
    expect(result.skipped).toContainEqual({ path: "link-file", kind: "symlink" });
    expect(result.skipped).toContainEqual({ path: "sub/link-dir", kind: "symlink" });
    if (fifo) expect(result.skipped).toContainEqual({ path: "pipe", kind: "fifo" });
    if (nonUtf8)
      expect(result.skipped).toContainEqual({ path: "bad-\uFFFD\uFFFD.txt", kind: "non-utf8-name" });
    expect(result.skipped.length).toBe(2 + (fifo ? 1 : 0) + (nonUtf8 ? 1 : 0));
  });

  it("reports a missing or non-directory source", async () => {
    const root = tempDir();
    const missing = await rejection(create(join(root, "nope")));
    expect(isBlobError(missing, "ERR_NOT_FOUND")).toBe(true);
    writeTree(root, { f: "x" });
    const file = await rejection(create(join(root, "f")));
    expect(isBlobError(file, "ERR_NOT_DIRECTORY")).toBe(true);
  });

  it("enforces maxFiles while scanning", async () => {
    const root = tempDir();
    writeTree(root, { a: "1", b: "2", "c/d": "3" });
    const error = await rejection(create(root, { maxFiles: 2 }));
    expect(isBlobError(error, "ERR_LIMIT_EXCEEDED") && error.reason).toBe("too-many-files");
  });

  it("detects a file that shrinks after the scan (ERR_FILE_CHANGED)", async () => {
    const root = tempDir();
    writeTree(root, { "a.txt": compressible(5000), "b.txt": compressible(3000) });
    for (const changeDetection of ["none", "strict"] as const) {
      writeFileSync(join(root, "b.txt"), compressible(3000));
      const error = await rejection(
        create(root, {
          changeDetection,
          onProgress: (e) => {
            if (e.stage === "scanning" && e.filesTotal > 0) truncateSync(join(root, "b.txt"), 100);
          },
        }),
      );
      expect(isBlobError(error, "ERR_FILE_CHANGED"), changeDetection).toBe(true);
      expect((error as { subject?: string }).subject).toBe("b.txt");
    }
  });

  it("both modes refuse a file replaced by another of the same size (it is not the scanned file)", async () => {
    const root = tempDir();
    writeTree(root, { "a.txt": "AAAA", "b.txt": "BBBB" });
    const replace = (e: CreateProgress): void => {
      if (e.stage === "scanning" && e.filesTotal > 0) {
        writeFileSync(join(root, "new"), "CCCC");
        renameSync(join(root, "new"), join(root, "a.txt"));
      }
    };
    const strict = await rejection(create(root, { changeDetection: "strict", onProgress: replace }));
    expect(isBlobError(strict, "ERR_FILE_CHANGED") && strict.reason).toBe("replaced");
    const relaxed = await rejection(create(root, { onProgress: replace }));
    expect(isBlobError(relaxed, "ERR_FILE_CHANGED") && relaxed.reason).toBe("replaced");
  });

  it("a directory swapped for a symlink after the scan never pulls in files from outside", async () => {
    const root = tempDir();
    const outside = tempDir();
    writeTree(root, { "sub/a.txt": "mine" });
    writeTree(outside, { "a.txt": "SECRET" });
    const swap = (e: CreateProgress): void => {
      if (e.stage === "scanning" && e.filesTotal > 0) {
        renameSync(join(root, "sub"), join(root, "sub-old"));
        symlinkSync(outside, join(root, "sub"));
      }
    };
    const error = await rejection(create(root, { onProgress: swap }));
    expect(isBlobError(error, "ERR_FILE_CHANGED") && error.reason).toBe("replaced");
  });

  it("strict mode detects a metadata change by the end of the read", async () => {
    const root = tempDir();
    writeTree(root, { "a.txt": "AAAA" });
    const error = await rejection(
      create(root, {
        changeDetection: "strict",
        onProgress: (e) => {
          if (e.stage === "scanning" && e.filesTotal > 0) utimesSync(join(root, "a.txt"), 1, 1);
        },
      }),
    );
    expect(isBlobError(error, "ERR_FILE_CHANGED") && error.reason).toBe("metadata-changed");
  });

  it("round-trips a 10 000-file tree", async () => {
    const root = tempDir();
    for (let d = 0; d < 100; d++) {
      const dir = join(root, `dir${d}`);
      mkdirSync(dir);
      for (let f = 0; f < 100; f++)
        writeFileSync(join(dir, `file${f}.txt`), `content of ${d}/${f}\n`.repeat(1 + (f % 80)));
    }
    const { result, decoded } = await create(root);
    expect(result.fileCount).toBe(10_000);
    expect(decoded.contents.get("dir42/file7.txt")!.toString()).toBe("content of 42/7\n".repeat(8));
    expect(decoded.index.get("dir42/file79.txt")!.compression).toBe("zstd");
  }, 30_000);
});

describe("createArchive — small files on worker threads", () => {
  const withThreads = (threads: number) =>
    async function createWith(
      root: string,
      options: CreateOptions = {},
    ): Promise<{ result: CreateResult; data: Buffer }> {
      const sink = nodeSink();
      const result = await createArchiveInternal(root, sink.stream, options, { smallFileThreads: threads });
      const data = sink.bytes();
      await verify(result, data);
      return { result, data };
    };

  it("gives byte-identical archives with and without worker threads", async () => {
    const root = tempDir();
    const files: Record<string, string | Uint8Array> = {};
    for (let i = 0; i < 300; i++) {
      const kind = i % 6;
      files[`d${i % 7}/f${i}${kind === 3 ? ".png" : ".txt"}`] =
        kind === 0
          ? ""
          : kind === 1
            ? randomBytes(1000 + i * 10)
            : kind === 2
              ? `tiny ${i}`
              : compressible(500 + i * 400);
    }
    // Around the pool's size limit (128 KiB) and the streaming threshold.
    files["edge/at-limit.txt"] = compressible(128 * 1024);
    files["edge/above-limit.txt"] = compressible(128 * 1024 + 1);
    files["edge/streamed.txt"] = compressible(CREATE_BUFFER_THRESHOLD + 1);
    writeTree(root, files);
    const options: CreateOptions = { deterministic: { mtime: new Date(0), uid: 0, gid: 0 }, dedupe: true };
    const local = await withThreads(0)(root, options);
    for (const threads of [1, 2, 3]) {
      const pooled = await withThreads(threads)(root, options);
      expect(Buffer.compare(pooled.result.index, local.result.index), `threads ${threads}`).toBe(0);
      expect(pooled.data.equals(local.data), `threads ${threads}`).toBe(true);
    }
  });

  it("falls back to the calling thread when the workers cannot start", async () => {
    const root = tempDir();
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 50; i++) files[`f${i}.txt`] = compressible(1500 + i * 300);
    writeTree(root, files);
    const local = await withThreads(0)(root);
    const sink = nodeSink();
    const result = await createArchiveInternal(
      root,
      sink.stream,
      {},
      { smallFileThreads: 2, smallFileWorker: new URL("./no-such-worker.js", import.meta.url) },
    );
    expect(Buffer.compare(result.index, local.result.index)).toBe(0);
    expect(sink.bytes().equals(local.data)).toBe(true);
  });

  it("reports files changed after the scan with the same typed errors", async () => {
    const scenarios: {
      name: string;
      strict?: boolean;
      change: (root: string) => void;
      reason: string;
      /** The first file (in path order) the change affects. */
      subject?: string;
    }[] = [
      { name: "shrunk", change: (root) => truncateSync(join(root, "m/b.txt"), 100), reason: "size-changed" },
      {
        name: "replaced",
        change: (root) => {
          writeFileSync(join(root, "new"), compressible(3000));
          renameSync(join(root, "new"), join(root, "m/b.txt"));
        },
        reason: "replaced",
      },
      {
        name: "metadata",
        strict: true,
        change: (root) => utimesSync(join(root, "m/b.txt"), 1, 1),
        reason: "metadata-changed",
      },
      {
        name: "directory swapped for a symlink",
        change: (root) => {
          const outside = tempDir();
          writeTree(outside, { "b.txt": compressible(3000) });
          renameSync(join(root, "m"), join(root, "m-old"));
          symlinkSync(outside, join(root, "m"));
        },
        reason: "replaced",
        subject: "m/a.txt",
      },
    ];
    for (const scenario of scenarios) {
      for (const threads of [0, 2]) {
        const root = tempDir();
        writeTree(root, { "m/a.txt": compressible(5000), "m/b.txt": compressible(3000), "z.txt": "z" });
        const error = await rejection(
          withThreads(threads)(root, {
            changeDetection: scenario.strict ? "strict" : "none",
            onProgress: (e) => {
              if (e.stage === "scanning" && e.filesTotal > 0) scenario.change(root);
            },
          }),
        );
        const label = `${scenario.name}, ${threads} threads`;
        expect(isBlobError(error, "ERR_FILE_CHANGED") && error.reason, label).toBe(scenario.reason);
        expect((error as { subject?: string }).subject, label).toBe(scenario.subject ?? "m/b.txt");
      }
    }
  });

  it("an abort while the workers are busy rejects with signal.reason and stops the threads", async () => {
    const root = tempDir();
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 2000; i++) files[`d${i % 10}/f${i}.txt`] = compressible(2000 + (i % 50) * 100);
    writeTree(root, files);
    const threads = (): number =>
      Number(/^Threads:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))![1]);
    // A first run starts whatever helper threads Node keeps for good (libuv, V8 platform).
    await withThreads(2)(root);
    const before = threads();
    const controller = new AbortController();
    const reason = new Error("stop");
    const sink = nodeSink();
    let writes = 0;
    const error = await rejection(
      createArchiveInternal(
        root,
        sink.stream,
        {
          signal: controller.signal,
          onProgress: (e) => {
            if (e.stage === "writing" && ++writes === 100) controller.abort(reason);
          },
        },
        { smallFileThreads: 2 },
      ),
    );
    expect(error).toBe(reason);
    expect(writes).toBeLessThan(2000);
    expect(sink.stream.destroyed).toBe(true);
    // The workers are gone once the promise settled.
    expect(threads()).toBe(before);
  });
});

describe("createArchive — determinism", () => {
  function tree(mtime: number): string {
    const root = tempDir();
    writeTree(root, { "a.txt": compressible(3000), "b/c.bin": randomSeeded(), "b/d.txt": "tiny" });
    for (const p of ["a.txt", "b/c.bin", "b/d.txt"]) utimesSync(join(root, p), mtime, mtime);
    return root;
  }
  const seed = randomBytes(2000);
  const randomSeeded = (): Buffer => seed;

  beforeEach(() => {
    vi.unstubAllEnvs();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("gives identical digests on two runs and across different mtimes", async () => {
    vi.stubEnv("SOURCE_DATE_EPOCH", "");
    const a = await create(tree(1_000_000), { deterministic: true });
    const b = await create(tree(2_000_000), { deterministic: true });
    expect(b.result.indexDigest).toBe(a.result.indexDigest);
    expect(b.result.dataDigest).toBe(a.result.dataDigest);
    const e = a.decoded.index.get("a.txt")!;
    expect(e.mtimeNs).toBe(0n);
    expect(e.uid).toBe(0);
    expect(e.gid).toBe(0);
    expect(e.mode).toBe(0o644 & ~process.umask());
    const plain1 = await create(tree(1_000_000));
    const plain2 = await create(tree(2_000_000));
    expect(plain2.result.indexDigest).not.toBe(plain1.result.indexDigest);
    expect(plain2.result.dataDigest).toBe(plain1.result.dataDigest);
  });

  it("honours SOURCE_DATE_EPOCH and explicit values", async () => {
    vi.stubEnv("SOURCE_DATE_EPOCH", "1700000000");
    const a = await create(tree(5), { deterministic: true });
    expect(a.decoded.index.get("a.txt")!.mtimeNs).toBe(1_700_000_000_000_000_000n);
    const b = await create([{ path: "x", content: "x", mtime: 99n, uid: 5 }], {
      deterministic: { mtime: new Date(1000), uid: 3 },
    });
    expect(b.decoded.index.get("x")).toMatchObject({ mtimeNs: 1_000_000_000n, uid: 3, gid: 0 });
    vi.stubEnv("SOURCE_DATE_EPOCH", "yesterday");
    const error = await rejection(create([], { deterministic: true }));
    expect(isBlobError(error, "ERR_INVALID_ARGUMENT")).toBe(true);
  });
});

describe("createArchive — progress, abort and outputs", () => {
  it("emits monotonic progress ending at the totals", async () => {
    const root = tempDir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`f${String(i).padStart(2, "0")}.txt`] = "x".repeat(i * 100);
    writeTree(root, files);
    const events: CreateProgress[] = [];
    const { result } = await create(root, { onProgress: (e) => events.push({ ...e }) });
    expect(events[0]).toMatchObject({ stage: "scanning", filesDone: 0 });
    const last = events[events.length - 1]!;
    expect(last).toEqual({
      stage: "done",
      filesDone: 30,
      filesTotal: 30,
      bytesDone: result.totalSize,
      bytesTotal: result.totalSize,
    });
    const writing = events.filter((e) => e.stage === "writing");
    expect(writing.length).toBe(30);
    expect(writing.map((e) => e.path)).toEqual(Object.keys(files).sort());
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.filesDone).toBeGreaterThanOrEqual(events[i - 1]!.filesDone);
      expect(events[i]!.bytesDone).toBeGreaterThanOrEqual(events[i - 1]!.bytesDone);
      expect(events[i]!.filesTotal).toBeGreaterThanOrEqual(events[i - 1]!.filesTotal);
      expect(events[i]!.bytesTotal).toBeGreaterThanOrEqual(events[i - 1]!.bytesTotal);
    }
    for (const e of writing) expect(e).toMatchObject({ filesTotal: 30, bytesTotal: result.totalSize });
  });

  it("counts unknown-size contents into bytesTotal as they are read", async () => {
    const events: CreateProgress[] = [];
    await create(
      [
        { path: "a", content: "12345" },
        {
          path: "b",
          content: async function* () {
            yield new Uint8Array(7);
          },
        },
      ],
      { onProgress: (e) => events.push(e) },
    );
    expect(events.find((e) => e.stage === "scanning" && e.filesTotal === 2)!.bytesTotal).toBe(5);
    expect(events[events.length - 1]).toMatchObject({ bytesDone: 12, bytesTotal: 12 });
  });

  it("aborts mid-way with signal.reason", async () => {
    const controller = new AbortController();
    const input = Array.from({ length: 200 }, (_, i) => ({ path: `f${i}`, content: compressible(2000) }));
    const reason = new Error("stop!");
    const sink = nodeSink();
    let writes = 0;
    const error = await rejection(
      createArchive(input, sink.stream, {
        signal: controller.signal,
        onProgress: (e) => {
          if (e.stage === "writing" && ++writes === 10) controller.abort(reason);
        },
      }),
    );
    expect(error).toBe(reason);
    expect(writes).toBeLessThan(200);
    expect(sink.stream.destroyed).toBe(true);
  });

  it("aborting while a large file is being compressed always settles (never hangs)", async () => {
    const dir = tempDir();
    writeTree(dir, { "big.txt": compressible(24 * 1024 * 1024) });
    // The abort lands at different points of the streamed compression: between reads, during a read,
    // while the encoder is draining.
    for (const delay of [1, 3, 7, 12, 20, 30]) {
      const controller = new AbortController();
      const reason = new Error(`abort after ${delay} ms`);
      const run = createArchive(dir, nodeSink().stream, { signal: controller.signal, concurrency: 1 });
      setTimeout(() => controller.abort(reason), delay);
      const settled = await Promise.race([
        run.then(
          () => "resolved",
          (error: unknown) => (error === reason ? "aborted" : error),
        ),
        new Promise((resolve) => setTimeout(() => resolve("hung"), 5000)),
      ]);
      expect(["aborted", "resolved"]).toContain(settled);
    }
  });

  it("aborts while a content stream is pending, and rejects at once for an aborted signal", async () => {
    const controller = new AbortController();
    const pending = createArchive(
      [
        {
          path: "slow",
          content: () => new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) }),
        },
      ],
      nodeSink().stream,
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 20);
    const error = await rejection(pending);
    expect((error as Error).name).toBe("AbortError");
    const stuck = new AbortController();
    const stuckRun = createArchive(
      [
        {
          path: "stuck",
          content: async function* () {
            await new Promise(() => {});
            yield new Uint8Array(1);
          },
        },
      ],
      nodeSink().stream,
      { signal: stuck.signal },
    );
    setTimeout(() => stuck.abort(new Error("stuck aborted")), 20);
    expect(((await rejection(stuckRun)) as Error).message).toBe("stuck aborted");
    const pre = await rejection(
      createArchive([{ path: "a", content: "x" }], nodeSink().stream, { signal: AbortSignal.abort("early") }),
    );
    expect(pre).toBe("early");
  });

  it("bounds the bytes read ahead of a stalled output", async () => {
    const mib = 1024 * 1024;
    const zeros = new Uint8Array(mib);
    let pulled = 0;
    const input: ArchiveInput[] = Array.from({ length: 120 }, (_, i) => ({
      path: `f${String(i).padStart(3, "0")}`,
      size: mib,
      content: async function* () {
        pulled += mib;
        yield zeros;
      },
    }));
    let release: (() => void) | undefined;
    let written = 0;
    const sink = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, callback) {
        written += chunk.length;
        if (release === undefined) release = callback;
        else callback();
      },
    });
    const run = createArchive(input, sink, { compression: "none", concurrency: 4 });
    // Wait until the producers stop making progress while the sink holds its first write.
    let last = -1;
    let stable = 0;
    while (stable < 20) {
      await new Promise((r) => setTimeout(r, 5));
      stable = pulled === last ? stable + 1 : 0;
      last = pulled;
    }
    expect(written).toBe(mib);
    expect(pulled).toBeLessThanOrEqual(64 * mib + 8 * mib);
    expect(pulled).toBeLessThan(120 * mib);
    release!();
    const result = await run;
    expect(result.dataSize).toBe(120 * mib);
  });

  it("an exception from onProgress fails the creation", async () => {
    const boom = new Error("progress failed");
    const error = await rejection(
      create([{ path: "a", content: "x" }], {
        onProgress: (e) => {
          if (e.stage === "writing") throw boom;
        },
      }),
    );
    expect(error).toBe(boom);
  });

  it("writes to a web WritableStream and a slow Node Writable with backpressure", async () => {
    const input = (): ArchiveInput[] =>
      Array.from({ length: 50 }, (_, i) => ({
        path: `f${i}`,
        content: compressible(3000 + i * 5000),
        mtime: 0n,
      }));
    const web = webSink();
    const webResult = await createArchive(input(), web.stream);
    expect(web.closed()).toBe(true);
    await verify(webResult, web.bytes());
    const slow = nodeSink({ slow: true });
    const slowResult = await createArchive(input(), slow.stream);
    expect(slow.stream.writableFinished).toBe(true);
    await verify(slowResult, slow.bytes());
    expect(slowResult.dataDigest).toBe(webResult.dataDigest);
    expect(slowResult.indexDigest).toBe(webResult.indexDigest);
  });

  it("fails with ERR_IO when the output stream fails", async () => {
    const stream = new Writable({
      write(_chunk, _enc, callback) {
        callback(new Error("disk full"));
      },
    });
    const error = await rejection(createArchive([{ path: "a", content: compressible(5000) }], stream));
    expect(isBlobError(error, "ERR_IO")).toBe(true);
    const web = new WritableStream<Uint8Array>({
      write() {
        throw new Error("sink broke");
      },
    });
    const webError = await rejection(
      createArchive(
        Array.from({ length: 5 }, (_, i) => ({ path: `f${i}`, content: "x" })),
        web,
      ),
    );
    expect(isBlobError(webError, "ERR_IO")).toBe(true);
  });

  it("the data digest equals the SHA-256 of the bytes the stream received", async () => {
    const sink = nodeSink();
    const result = await createArchive([{ path: "a", content: compressible(10_000) }], sink.stream);
    expect(result.dataDigest).toBe(`sha256:${createHash("sha256").update(sink.bytes()).digest("hex")}`);
  });
});
