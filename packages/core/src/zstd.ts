/**
 * The one place blobkit touches zstd: native libzstd through `node:zlib` (Node ≥ 22.15). Async calls run on
 * libuv's thread pool, so compressing several files at once uses every core.
 *
 * Internal module: exported from the package for the other blobkit packages, not a stable public API.
 */
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import { BlobError } from "./errors.ts";

/** Default zstd level: the `zstd` CLI's and the Go tool's default. @internal */
export const DEFAULT_ZSTD_LEVEL = 3;

/** Valid levels for {@link zstdCompress}: negative "fast" levels up to 22. @internal */
export const MIN_ZSTD_LEVEL = -7;
/** @internal */
export const MAX_ZSTD_LEVEL = 22;

/** Largest output chunk of a one-shot decode (bigger files take several thread-pool rounds). */
const MAX_OUTPUT_CHUNK = 16 * 1024 * 1024;
/**
 * Entries up to this size are (de)compressed on the calling thread: an async call costs ~60 µs of
 * main-thread setup plus a thread-pool hop (measured: decoding 16 KiB outright costs ~50 µs), so below this
 * size the hop does not pay. Larger ones go to the pool.
 */
const SYNC_MAX = 128 * 1024;
/** Output chunk of the streaming encoder and decoder. */
const STREAM_OUTPUT_CHUNK = 256 * 1024;

const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag, ZSTD_d_windowLogMax } = zlib.constants;

/** Throws `ERR_INVALID_ARGUMENT` unless `level` is an integer zstd level. @internal */
export function assertZstdLevel(level: number): void {
  if (!Number.isInteger(level) || level < MIN_ZSTD_LEVEL || level > MAX_ZSTD_LEVEL || level === 0) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `zstd level must be an integer in ${MIN_ZSTD_LEVEL}..-1 or 1..${MAX_ZSTD_LEVEL}, got ${String(level)}`,
    );
  }
}

/**
 * Compresses `data` into one zstd frame with a content checksum (as the Go writer does). An empty input gives
 * an empty output, like the Go writer, which readers treat as an empty file. The pledged size lets libzstd
 * size its tables for the input (small files would otherwise pay for a full-window context) and records the
 * content size in the frame.
 *
 * @internal
 */
export function zstdCompress(data: Uint8Array, level: number = DEFAULT_ZSTD_LEVEL): Promise<Uint8Array> {
  if (data.byteLength <= SYNC_MAX) {
    try {
      return Promise.resolve(zstdCompressSync(data, level));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return new Promise((resolve, reject) => {
    zlib.zstdCompress(data, compressOptions(data, level), (error, result) =>
      error ? reject(error) : resolve(result),
    );
  });
}

/**
 * {@link zstdCompress} on the calling thread, whatever the size (for small files, and for worker threads).
 *
 * @internal
 */
export function zstdCompressSync(data: Uint8Array, level: number = DEFAULT_ZSTD_LEVEL): Uint8Array {
  if (data.byteLength === 0) return new Uint8Array(0);
  return zlib.zstdCompressSync(data, compressOptions(data, level));
}

function compressOptions(data: Uint8Array, level: number): zlib.ZstdOptions {
  return {
    params: { [ZSTD_c_compressionLevel]: level, [ZSTD_c_checksumFlag]: 1 },
    pledgedSrcSize: data.byteLength,
    // One output chunk for the whole frame (zstd's compress bound plus the frame header): the default 16 KiB
    // chunks cost a thread-pool round trip each, and a fixed 64 KiB floor made every small file allocate
    // (and the GC collect) a buffer many times its size.
    chunkSize: data.byteLength + (data.byteLength >> 7) + 1024,
  } as zlib.ZstdOptions;
}

/** Inputs smaller than this are never probed: compressing them whole is as cheap as the probe. */
const PROBE_MIN = 256 * 1024;
const PROBE_SAMPLE = 16 * 1024;

/**
 * Whether `data` (at least 256 KiB) looks incompressible: three 16 KiB samples — start, middle, end — do not
 * shrink by 3 % at `level`. A cheap guess (about 1 % of the work of compressing 4 MiB) that lets archive
 * creation skip compressions it would throw away; a file that only compresses between the samples is
 * stored raw, which is still correct, just larger.
 *
 * @internal
 */
export function looksIncompressible(data: Uint8Array, level: number = DEFAULT_ZSTD_LEVEL): boolean {
  if (data.byteLength < PROBE_MIN) return false;
  const sample = Buffer.allocUnsafe(3 * PROBE_SAMPLE);
  const middle = Math.floor((data.byteLength - PROBE_SAMPLE) / 2);
  sample.set(data.subarray(0, PROBE_SAMPLE), 0);
  sample.set(data.subarray(middle, middle + PROBE_SAMPLE), PROBE_SAMPLE);
  sample.set(data.subarray(data.byteLength - PROBE_SAMPLE), 2 * PROBE_SAMPLE);
  const compressed = zlib.zstdCompressSync(sample, {
    params: { [ZSTD_c_compressionLevel]: level },
  } as zlib.ZstdOptions);
  return compressed.byteLength > sample.byteLength * 0.97;
}

/**
 * A streaming zstd encoder producing one frame (with a content checksum) for inputs too large to buffer.
 *
 * @internal
 */
export function createZstdCompressStream(level: number = DEFAULT_ZSTD_LEVEL): zlib.ZstdCompress {
  return zlib.createZstdCompress({
    params: { [ZSTD_c_compressionLevel]: level, [ZSTD_c_checksumFlag]: 1 },
    chunkSize: STREAM_OUTPUT_CHUNK,
  });
}

/** Largest window log allowed for a decoder memory budget (at least 10, libzstd's minimum). */
function windowLogMax(maxDecoderMemory: number): number {
  return Math.max(10, Math.min(31, Math.floor(Math.log2(maxDecoderMemory))));
}

function decompressionError(message: string, subject: string | undefined, cause?: unknown): BlobError {
  return new BlobError("ERR_DECOMPRESSION", message, { subject, cause });
}

/** Options of the zstd decoders. @internal */
export interface ZstdDecodeOptions {
  /** Largest window the decoder may allocate (bytes). */
  maxDecoderMemory: number;
  /** Path named in errors. */
  subject?: string | undefined;
}

/** Decodes one zstd frame allowing at most `maxSize` bytes of output (one more shows "too long"). */
async function decodeFrame(
  frame: Uint8Array,
  maxSize: number,
  options: ZstdDecodeOptions,
): Promise<Uint8Array> {
  const zlibOptions: zlib.ZstdOptions = {
    // One byte of headroom lets us tell "too long" apart from "exactly right".
    maxOutputLength: Math.max(1, maxSize + 1),
    // Output chunks sized to the file: the default 16 KiB chunks cost a thread-pool round trip each.
    chunkSize: Math.max(1024, Math.min(maxSize + 1, MAX_OUTPUT_CHUNK)),
    params: { [ZSTD_d_windowLogMax]: windowLogMax(options.maxDecoderMemory) },
  };
  try {
    return maxSize <= SYNC_MAX
      ? zlib.zstdDecompressSync(frame, zlibOptions)
      : await new Promise<Uint8Array>((resolve, reject) => {
          zlib.zstdDecompress(frame, zlibOptions, (error, result) =>
            error ? reject(error) : resolve(result),
          );
        });
  } catch (cause) {
    throw decompressionError(
      `zstd decompression failed: ${(cause as Error).message}`,
      options.subject,
      cause,
    );
  }
}

/**
 * Decompresses a complete stored entry that must expand to exactly `expectedSize` bytes. Zero stored bytes
 * are an empty file (Go writes empty files that way). Anything else — a corrupt frame, a short or long
 * result, a window beyond the memory budget — is `ERR_DECOMPRESSION`.
 *
 * @internal
 */
export async function zstdDecompress(
  stored: Uint8Array,
  expectedSize: number,
  options: ZstdDecodeOptions,
): Promise<Uint8Array> {
  if (stored.byteLength === 0) {
    if (expectedSize === 0) return new Uint8Array(0);
    throw decompressionError(`empty zstd entry but ${expectedSize} bytes expected`, options.subject);
  }
  let ends: number[];
  const scanner = new ZstdFrameScanner();
  try {
    ends = scanner.feed(stored);
    if (!scanner.atBoundary) throw new Error("truncated zstd frame");
  } catch (cause) {
    throw decompressionError(
      `zstd decompression failed: ${(cause as Error).message}`,
      options.subject,
      cause,
    );
  }
  let output: Uint8Array;
  if (ends.length === 1) output = await decodeFrame(stored, expectedSize, options);
  else {
    // Several frames (valid zstd; the Go reader accepts it): Node would stop after the first one.
    const parts: Uint8Array[] = [];
    let start = 0;
    let total = 0;
    for (const end of ends) {
      const part = await decodeFrame(stored.subarray(start, end), expectedSize - total, options);
      parts.push(part);
      total += part.byteLength;
      start = end;
    }
    output = Buffer.concat(parts, total);
  }
  if (output.byteLength !== expectedSize) {
    throw decompressionError(
      `zstd entry expanded to ${output.byteLength} bytes, expected ${expectedSize}`,
      options.subject,
    );
  }
  return output;
}

type ScanState = "magic" | "descriptor" | "block" | "skippableSize" | "skip";

/**
 * Finds where the frames of a zstd stream end (RFC 8878 §3.1) by reading only frame and block headers.
 * Node's zstd decoder stops after the first frame and drops the rest, so every frame gets its own decoder.
 *
 * @internal
 */
export class ZstdFrameScanner {
  #state: ScanState = "magic";
  /** Bytes collected for the fixed-size field being read (magic, block header, skippable size). */
  readonly #field = new Uint8Array(4);
  #have = 0;
  /** Bytes to pass over, then continue in #after. */
  #skip = 0;
  #after: "block" | "end" = "end";
  #checksum = false;
  /** Bytes of the current, unfinished frame seen so far (0 between frames). */
  #inFrame = 0;

  /** True between frames: everything fed so far ends exactly at a frame boundary. */
  get atBoundary(): boolean {
    return this.#inFrame === 0 && this.#state === "magic" && this.#have === 0;
  }

  /** Feeds the next bytes; returns the offsets within `chunk` just past each frame that ends in it. */
  feed(chunk: Uint8Array): number[] {
    const ends: number[] = [];
    let i = 0;
    // A finished skip of zero bytes (an empty last block at the very end) still has to end its frame.
    while (i < chunk.byteLength || (this.#state === "skip" && this.#skip === 0)) {
      if (this.#state === "skip") {
        const n = Math.min(this.#skip, chunk.byteLength - i);
        this.#skip -= n;
        i += n;
        this.#inFrame += n;
        if (this.#skip > 0) break;
        if (this.#after === "block") this.#expect("block");
        else {
          ends.push(i);
          this.#inFrame = 0;
          this.#expect("magic");
        }
        continue;
      }
      this.#field[this.#have++] = chunk[i++]!;
      this.#inFrame++;
      const need = this.#state === "descriptor" ? 1 : this.#state === "block" ? 3 : 4;
      if (this.#have < need) continue;
      this.#have = 0;
      const f = this.#field;
      switch (this.#state) {
        case "magic": {
          const magic = (f[0]! | (f[1]! << 8) | (f[2]! << 16) | (f[3]! << 24)) >>> 0;
          if (magic === 0xfd2fb528) this.#expect("descriptor");
          else if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) this.#expect("skippableSize");
          else throw new Error("not a zstd frame (bad magic number)");
          break;
        }
        case "descriptor": {
          const d = f[0]!;
          const fcsFlag = d >> 6;
          const singleSegment = (d & 0x20) !== 0;
          if ((d & 0x08) !== 0) throw new Error("reserved bit set in a zstd frame header");
          this.#checksum = (d & 0x04) !== 0;
          const dictionaryId = [0, 1, 2, 4][d & 0x03]!;
          const contentSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
          this.#skipThen((singleSegment ? 0 : 1) + dictionaryId + contentSize, "block");
          break;
        }
        case "block": {
          const header = f[0]! | (f[1]! << 8) | (f[2]! << 16);
          const last = (header & 1) === 1;
          const type = (header >> 1) & 3;
          if (type === 3) throw new Error("reserved zstd block type");
          const body = type === 1 ? 1 : header >>> 3; // an RLE block stores one byte
          if (!last) this.#skipThen(body, "block");
          else this.#skipThen(body + (this.#checksum ? 4 : 0), "end");
          break;
        }
        case "skippableSize":
          this.#skipThen((f[0]! | (f[1]! << 8) | (f[2]! << 16) | (f[3]! << 24)) >>> 0, "end");
          break;
      }
    }
    return ends;
  }

  #expect(state: ScanState): void {
    this.#state = state;
    this.#have = 0;
  }

  #skipThen(bytes: number, after: "block" | "end"): void {
    this.#state = "skip";
    this.#skip = bytes;
    this.#after = after;
  }
}

/**
 * A Node transform that decompresses one stored entry and fails with `ERR_DECOMPRESSION` unless the output
 * is exactly `expectedSize` bytes. Memory stays bounded by the window and the stream buffers, not the file,
 * also when the consumer is slower than the decoder.
 *
 * @internal
 */
export function createZstdDecompressTransform(expectedSize: number, options: ZstdDecodeOptions): Transform {
  let produced = 0;
  let sawInput = false;
  const scanner = new ZstdFrameScanner();
  const decodeError = (cause: Error): BlobError =>
    cause instanceof BlobError
      ? cause
      : decompressionError(`zstd decompression failed: ${cause.message}`, options.subject, cause);

  // One decoder per frame (Node's stops after the first). `fed`: whether the current one got any input.
  let decoder: zlib.ZstdDecompress;
  let fed = false;
  const startDecoder = (): void => {
    decoder = zlib.createZstdDecompress({
      chunkSize: STREAM_OUTPUT_CHUNK,
      params: { [ZSTD_d_windowLogMax]: windowLogMax(options.maxDecoderMemory) },
    });
    fed = false;
    decoder.on("data", (chunk: Buffer) => {
      produced += chunk.byteLength;
      if (produced > expectedSize) {
        transform.destroy(
          decompressionError(`zstd entry expands beyond ${expectedSize} bytes`, options.subject),
        );
        return;
      }
      // Backpressure: a slow consumer pauses the decoder, whose full buffers then hold back the input side.
      if (!transform.push(chunk)) decoder.pause();
    });
    decoder.on("error", (cause) => transform.destroy(decodeError(cause)));
  };
  const write = (piece: Uint8Array): Promise<void> => {
    fed = true;
    if (decoder.write(piece)) return Promise.resolve();
    const current = decoder;
    return new Promise((resolve, reject) => {
      const done = (): void => {
        current.off("drain", done);
        current.off("close", closed);
        resolve();
      };
      const closed = (): void => {
        current.off("drain", done);
        reject(decompressionError("zstd decoder closed", options.subject));
      };
      current.once("drain", done);
      current.once("close", closed);
    });
  };
  /** Ends the current decoder and waits until all its output was pushed. */
  const finish = (): Promise<void> => {
    const current = decoder;
    if (!fed) {
      current.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      current.once("end", resolve);
      current.once("close", () =>
        current.readableEnded
          ? resolve()
          : reject(decompressionError("zstd decoder closed", options.subject)),
      );
      current.end();
    });
  };

  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      (async () => {
        if (chunk.byteLength > 0) sawInput = true;
        let at = 0;
        for (const end of scanner.feed(chunk)) {
          await write(chunk.subarray(at, end));
          at = end;
          await finish();
          startDecoder();
        }
        if (at < chunk.byteLength) await write(chunk.subarray(at));
      })().then(
        () => callback(),
        (error: Error) => callback(decodeError(error)),
      );
    },
    flush(callback: TransformCallback) {
      if (!sawInput) {
        // Zero stored bytes: an empty file (Go).
        decoder.destroy();
        callback(
          expectedSize === 0
            ? null
            : decompressionError(`empty zstd entry but ${expectedSize} bytes expected`, options.subject),
        );
        return;
      }
      if (!scanner.atBoundary) {
        decoder.destroy();
        callback(decompressionError("truncated zstd frame", options.subject));
        return;
      }
      finish().then(
        () =>
          callback(
            produced === expectedSize
              ? null
              : decompressionError(
                  `zstd entry expanded to ${produced} bytes, expected ${expectedSize}`,
                  options.subject,
                ),
          ),
        (error: Error) => callback(decodeError(error)),
      );
    },
    destroy(error, callback) {
      decoder.destroy();
      callback(error);
    },
  });
  startDecoder();
  const read = transform._read.bind(transform);
  transform._read = (size: number): void => {
    if (decoder.isPaused()) decoder.resume();
    read(size);
  };
  return transform;
}
