import { randomBytes } from "node:crypto";
import {
  appendFile,
  mkdir,
  mkdtemp,
  realpath,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "./digest.ts";
import type { ByteSource, ReadOptions } from "./source.ts";
import { FileSource, MemorySource, streamSource } from "./sources.ts";

async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

const concat = (chunks: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(chunks));

/** A source without `stream()` that records its reads, optionally holding each read until released. */
class RecordingSource implements ByteSource {
  readonly id = "recording";
  readonly reads: { offset: number; length: number; signal: AbortSignal | undefined }[] = [];
  readonly #inner: MemorySource;
  constructor(bytes: Uint8Array) {
    this.#inner = new MemorySource(bytes);
  }
  size(options?: ReadOptions): Promise<number> {
    return this.#inner.size(options);
  }
  read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    this.reads.push({ offset, length, signal: options.signal });
    return this.#inner.read(offset, length, options);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

describe("MemorySource", () => {
  it("defaults its id to memory:<first 16 hex of the SHA-256>, or uses the given one", () => {
    const bytes = new TextEncoder().encode("hello");
    expect(new MemorySource(bytes).id).toBe(`memory:${sha256Hex(bytes).slice(0, 16)}`);
    expect(new MemorySource(bytes).id).toBe("memory:2cf24dba5fb0a30e");
    expect(new MemorySource(bytes, { id: "sha256:abc" }).id).toBe("sha256:abc");
  });

  it("reads views without exposing the backing buffer", async () => {
    const backing = new Uint8Array([9, 1, 2, 3, 9]);
    const source = new MemorySource(backing.subarray(1, 4));
    expect(await source.size()).toBe(3);
    const got = await source.read(0, 3);
    expect(got).toEqual(new Uint8Array([1, 2, 3]));
    expect(got.buffer).not.toBe(backing.buffer);
    await expect(source.read(1, 3)).rejects.toMatchObject({ code: "ERR_OUT_OF_RANGE" });
  });

  it("rejects a non-Uint8Array", () => {
    expect(() => new MemorySource("abc" as unknown as Uint8Array)).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
    );
  });

  it("streams in chunks of at most 1 MiB", async () => {
    const bytes = randomBytes(2.5 * 1024 * 1024);
    const chunks = await drain(new MemorySource(bytes).stream(0, bytes.length));
    expect(chunks.map((c) => c.length)).toEqual([1 << 20, 1 << 20, bytes.length - (2 << 20)]);
    expect(Buffer.from(concat(chunks)).equals(bytes)).toBe(true);
  });
});

describe("FileSource", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "blobkit-sources-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fileWith(bytes: Uint8Array, name = "data.bin"): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, bytes);
    return path;
  }

  it("defaults its id to file:<realpath>:<size>:<mtimeNs>", async () => {
    const path = await fileWith(randomBytes(1234));
    const link = join(dir, "link.bin");
    await symlink(path, link);
    const info = await stat(path, { bigint: true });
    const source = await FileSource.open(link);
    try {
      expect(source.id).toBe(`file:${await realpath(path)}:1234:${info.mtimeNs}`);
      expect(source.path).toBe(link);
    } finally {
      await source.close();
    }
    const named = await FileSource.open(path, { id: "sha256:given" });
    expect(named.id).toBe("sha256:given");
    await named.close();
  });

  it("maps open failures to ERR_NOT_FOUND and ERR_IS_DIRECTORY", async () => {
    await expect(FileSource.open(join(dir, "missing"))).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    await mkdir(join(dir, "sub"));
    await expect(FileSource.open(join(dir, "sub"))).rejects.toMatchObject({ code: "ERR_IS_DIRECTORY" });
    await expect(FileSource.open("")).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
    const reason = new Error("stop");
    await expect(FileSource.open(join(dir, "x"), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it("rejects with ERR_SOURCE_CHANGED when the file shrank after it was opened", async () => {
    const bytes = randomBytes(10_000);
    const path = await fileWith(bytes);
    const source = await FileSource.open(path);
    try {
      await truncate(path, 6000);
      expect(await source.size()).toBe(10_000);
      expect(Buffer.from(await source.read(1000, 5000)).equals(bytes.subarray(1000, 6000))).toBe(true);
      await expect(source.read(5000, 2000)).rejects.toMatchObject({
        code: "ERR_SOURCE_CHANGED",
        reason: "shrunk",
      });
      await expect(source.read(8000, 10)).rejects.toMatchObject({ code: "ERR_SOURCE_CHANGED" });
      await expect(drain(source.stream(0, 10_000))).rejects.toMatchObject({ code: "ERR_SOURCE_CHANGED" });
    } finally {
      await source.close();
    }
  });

  it("keeps the size it saw at open when the file grows", async () => {
    const path = await fileWith(randomBytes(100));
    const source = await FileSource.open(path);
    try {
      await appendFile(path, randomBytes(100));
      expect(await source.size()).toBe(100);
      await expect(source.read(100, 1)).rejects.toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    } finally {
      await source.close();
    }
  });

  it("serves concurrent reads through one handle with positional reads", async () => {
    const bytes = randomBytes(300_000);
    const source = await FileSource.open(await fileWith(bytes));
    try {
      const ranges = Array.from({ length: 40 }, (_, i) => [(i * 7919) % 290_000, 1000 + i * 97] as const);
      const results = await Promise.all(ranges.map(([o, n]) => source.read(o, n)));
      results.forEach((got, i) => {
        const [o, n] = ranges[i]!;
        expect(got).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(got).equals(bytes.subarray(o, o + n))).toBe(true);
      });
    } finally {
      await source.close();
    }
  });

  it("close() while reads are in flight: they finish or reject with ERR_CLOSED; dispose closes", async () => {
    const bytes = randomBytes(3 * 1024 * 1024);
    const source = await FileSource.open(await fileWith(bytes));
    const reads = Array.from({ length: 8 }, (_, i) => source.read(i * 1000, 2 * 1024 * 1024));
    await source.close();
    for (const outcome of await Promise.allSettled(reads)) {
      if (outcome.status === "rejected") expect(outcome.reason).toMatchObject({ code: "ERR_CLOSED" });
      else expect(outcome.value.length).toBe(2 * 1024 * 1024);
    }
    await expect(source.size()).rejects.toMatchObject({ code: "ERR_CLOSED" });

    const other = await FileSource.open(await fileWith(bytes, "other.bin"));
    await other[Symbol.asyncDispose]();
    await expect(other.read(0, 1)).rejects.toMatchObject({ code: "ERR_CLOSED" });
  });

  it("streams in 1 MiB chunks and stops reading when cancelled", async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 5);
    const source = await FileSource.open(await fileWith(bytes));
    try {
      const chunks = await drain(source.stream(3, bytes.length - 3));
      expect(chunks.map((c) => c.length)).toEqual([1 << 20, 1 << 20, 1 << 20, 2]);
      expect(Buffer.from(concat(chunks)).equals(bytes.subarray(3))).toBe(true);
      const reader = source.stream(0, bytes.length).getReader();
      expect((await reader.read()).value?.length).toBe(1 << 20);
      await reader.cancel();
      expect(await source.read(0, 4)).toEqual(new Uint8Array(bytes.subarray(0, 4)));
    } finally {
      await source.close();
    }
  });
});

describe("streamSource", () => {
  const bytes = new Uint8Array(randomBytes(2500));

  it("falls back to chunked reads of chunkSize", async () => {
    const source = new RecordingSource(bytes);
    const chunks = await drain(streamSource(source, 0, 2500, { chunkSize: 1000 }));
    expect(chunks.map((c) => c.length)).toEqual([1000, 1000, 500]);
    expect(concat(chunks)).toEqual(bytes);
    expect(source.reads.map((r) => [r.offset, r.length])).toEqual([
      [0, 1000],
      [1000, 1000],
      [2000, 500],
    ]);
  });

  it("is pull-based: reads at most one chunk ahead of the consumer", async () => {
    const source = new RecordingSource(new Uint8Array(100_000));
    const reader = streamSource(source, 0, 100_000, { chunkSize: 1000 }).getReader();
    await reader.read();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(source.reads.length).toBeLessThanOrEqual(2);
    await reader.cancel();
  });

  it("uses the source's own stream() when it has one", async () => {
    const source = new MemorySource(bytes);
    let calls = 0;
    const original = source.stream.bind(source);
    source.stream = (offset, length, options) => {
      calls++;
      return original(offset, length, options);
    };
    expect(concat(await drain(streamSource(source, 10, 100)))).toEqual(bytes.subarray(10, 110));
    expect(calls).toBe(1);
  });

  it("errors before reading anything when the range is invalid or past the end", async () => {
    const source = new RecordingSource(bytes);
    await expect(drain(streamSource(source, 2000, 501))).rejects.toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    await expect(drain(streamSource(source, 2501, 0))).rejects.toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    await expect(drain(streamSource(source, -1, 5))).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
    await expect(drain(streamSource(source, 0, 0.5))).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
    expect(source.reads).toEqual([]);
    expect(await drain(streamSource(source, 2500, 0))).toEqual([]);
    expect(() => streamSource(source, 0, 1, { chunkSize: 0 })).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
    );
  });

  it("errors with signal.reason when aborted mid-stream and aborts the read in flight", async () => {
    const source = new RecordingSource(bytes);
    const controller = new AbortController();
    const reason = { why: "test" };
    const reader = streamSource(source, 0, 2500, { chunkSize: 100, signal: controller.signal }).getReader();
    expect((await reader.read()).value?.length).toBe(100);
    controller.abort(reason);
    await expect(reader.read()).rejects.toBe(reason);
    expect(source.reads.every((r) => r.signal?.aborted)).toBe(true);
  });

  it("aborts the read in flight when the consumer cancels", async () => {
    const source = new RecordingSource(bytes);
    const reader = streamSource(source, 0, 2500, { chunkSize: 100 }).getReader();
    await reader.read();
    await reader.cancel("done");
    expect(source.reads.length).toBeGreaterThan(0);
    expect(source.reads.every((r) => r.signal?.aborted)).toBe(true);
  });
});
