import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants, zstdCompressSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { createZstdDecompressTransform, zstdCompress, zstdDecompress } from "./zstd.ts";

const opts = { maxDecoderMemory: 128 * 1024 * 1024, subject: "f.txt" };

async function streamDecode(
  stored: Uint8Array,
  expected: number,
  chunk = 7,
  options: { maxDecoderMemory: number } = opts,
): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < stored.byteLength; i += chunk) chunks.push(stored.subarray(i, i + chunk));
  const t = createZstdDecompressTransform(expected, options);
  t.on("data", (c: Buffer) => parts.push(c));
  await pipeline(Readable.from(chunks), t);
  return Buffer.concat(parts);
}

describe("zstd", () => {
  it("round-trips text and random bytes, whole and streamed", async () => {
    for (const data of [Buffer.from("hello ".repeat(5000)), randomBytes(300_000)]) {
      const stored = await zstdCompress(data, 3);
      expect(Buffer.from(await zstdDecompress(stored, data.length, opts)).equals(data)).toBe(true);
      expect(Buffer.from(await streamDecode(stored, data.length, 4096)).equals(data)).toBe(true);
    }
  });

  it("treats zero stored bytes as an empty file", async () => {
    expect(await zstdCompress(new Uint8Array(0))).toHaveLength(0);
    expect(await zstdDecompress(new Uint8Array(0), 0, opts)).toHaveLength(0);
    expect(await streamDecode(new Uint8Array(0), 0)).toHaveLength(0);
    await expect(zstdDecompress(new Uint8Array(0), 1, opts)).rejects.toMatchObject({
      code: "ERR_DECOMPRESSION",
    });
    await expect(streamDecode(new Uint8Array(0), 1)).rejects.toMatchObject({ code: "ERR_DECOMPRESSION" });
  });

  it("rejects output that is shorter or longer than expected", async () => {
    const data = Buffer.from("abc".repeat(1000));
    const stored = await zstdCompress(data);
    for (const wrong of [data.length - 1, data.length + 1, 0]) {
      await expect(zstdDecompress(stored, wrong, opts)).rejects.toMatchObject({ code: "ERR_DECOMPRESSION" });
      await expect(streamDecode(stored, wrong)).rejects.toMatchObject({ code: "ERR_DECOMPRESSION" });
    }
  });

  it("rejects corrupt and truncated frames", async () => {
    const data = randomBytes(10_000);
    const stored = await zstdCompress(Buffer.concat([data, data]));
    const truncated = stored.subarray(0, stored.length - 5);
    const flipped = Buffer.from(stored);
    flipped.writeUInt8(flipped.readUInt8(flipped.length - 1) ^ 0xff, flipped.length - 1); // content checksum
    for (const bad of [truncated, flipped, randomBytes(64)]) {
      await expect(zstdDecompress(bad, 20_000, opts)).rejects.toMatchObject({ code: "ERR_DECOMPRESSION" });
      await expect(streamDecode(bad, 20_000)).rejects.toMatchObject({ code: "ERR_DECOMPRESSION" });
    }
  });

  it("refuses frames whose window exceeds the decoder memory budget when streaming", async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const both = Buffer.concat([data, data]);
    // An 8 MiB window: the second copy of `data` is one long match 4 MiB back.
    const stored = zstdCompressSync(both, {
      params: { [constants.ZSTD_c_compressionLevel]: 1, [constants.ZSTD_c_windowLog]: 23 },
    });
    expect(stored.length).toBeLessThan(data.length * 1.5);
    await expect(
      streamDecode(stored, both.length, 65536, { maxDecoderMemory: 1024 * 1024 }),
    ).rejects.toMatchObject({ code: "ERR_DECOMPRESSION" });
    const streamed = await streamDecode(stored, both.length, 65536, { maxDecoderMemory: 8 * 1024 * 1024 });
    expect(Buffer.from(streamed).equals(both)).toBe(true);
    // A one-shot decode writes straight into the exact-size output buffer, which serves as the window: no
    // window is allocated, so the budget does not apply (the output size is bounded by maxFileSize instead).
    const whole = await zstdDecompress(stored, both.length, { maxDecoderMemory: 1024 * 1024 });
    expect(Buffer.from(whole).equals(both)).toBe(true);
  });

  it("decodes outputs larger than one output chunk", async () => {
    const data = Buffer.alloc(20 * 1024 * 1024 + 17, "blobkit ");
    const stored = await zstdCompress(data, 1);
    expect(Buffer.from(await zstdDecompress(stored, data.length, opts)).equals(data)).toBe(true);
  });

  it("decodes entries made of several frames, skippable frames included (Node alone stops after one)", async () => {
    const a = Buffer.alloc(100_003, "a");
    const b = randomBytes(50_000);
    const c = Buffer.alloc(300_000, "c"); // > SYNC_MAX: decoded on the thread pool
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from("abc")]);
    const stored = Buffer.concat([
      await zstdCompress(a),
      skippable,
      await zstdCompress(b),
      await zstdCompress(c),
    ]);
    const expected = Buffer.concat([a, b, c]);
    expect(Buffer.from(await zstdDecompress(stored, expected.length, opts)).equals(expected)).toBe(true);
    for (const chunk of [1, 7, 4096, 1 << 20]) {
      expect(Buffer.from(await streamDecode(stored, expected.length, chunk)).equals(expected)).toBe(true);
    }
    // A frame cut off, or bytes after the last frame that are not a frame, are errors.
    for (const bad of [stored.subarray(0, stored.length - 3), Buffer.concat([stored, Buffer.from("junk")])]) {
      await expect(zstdDecompress(bad, expected.length, opts)).rejects.toMatchObject({
        code: "ERR_DECOMPRESSION",
      });
      await expect(streamDecode(bad, expected.length, 4096)).rejects.toMatchObject({
        code: "ERR_DECOMPRESSION",
      });
    }
  });

  it("rejects random bytes with ERR_DECOMPRESSION only", async () => {
    for (let seed = 0; seed < 200; seed++) {
      const junk = randomBytes(4 + (seed % 64));
      if (seed % 2 === 0) junk.writeUInt32LE(0xfd2fb528, 0); // a valid magic number, garbage after it
      const one = await zstdDecompress(junk, 10, opts).then(
        () => "resolved",
        (e: unknown) => (e as { code?: string }).code,
      );
      expect(one).toBe("ERR_DECOMPRESSION");
      const streamed = await streamDecode(junk, 10, 5).then(
        () => "resolved",
        (e: unknown) => (e as { code?: string }).code,
      );
      expect(streamed).toBe("ERR_DECOMPRESSION");
    }
  });

  it("holds back decoding while the consumer does not read (bounded buffering)", async () => {
    const size = 64 * 1024 * 1024;
    const stored = zstdCompressSync(Buffer.alloc(size)); // 64 MiB of zeros: a few KiB stored
    const t = createZstdDecompressTransform(size, opts);
    t.end(stored);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(t.readableLength).toBeLessThan(4 * 1024 * 1024);
    let total = 0;
    for await (const chunk of t) total += (chunk as Buffer).byteLength;
    expect(total).toBe(size);
  });
});
