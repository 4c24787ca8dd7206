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
  if (data.byteLength === 0) return Promise.resolve(new Uint8Array(0));
  const options = {
    params: { [ZSTD_c_compressionLevel]: level, [ZSTD_c_checksumFlag]: 1 },
    pledgedSrcSize: data.byteLength,
    // One output chunk for the whole frame: the default 16 KiB chunks cost a thread-pool round trip each.
    chunkSize: Math.max(64 * 1024, data.byteLength + (data.byteLength >> 7) + 1024),
  } as zlib.ZstdOptions;
  if (data.byteLength <= SYNC_MAX) {
    try {
      return Promise.resolve(zlib.zstdCompressSync(data, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return new Promise((resolve, reject) => {
    zlib.zstdCompress(data, options, (error, result) => (error ? reject(error) : resolve(result)));
  });
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
  const zlibOptions: zlib.ZstdOptions = {
    // One byte of headroom lets us tell "too long" apart from "exactly right".
    maxOutputLength: Math.max(1, expectedSize + 1),
    // Output chunks sized to the file: the default 16 KiB chunks cost a thread-pool round trip each.
    chunkSize: Math.max(1024, Math.min(expectedSize + 1, MAX_OUTPUT_CHUNK)),
    params: { [ZSTD_d_windowLogMax]: windowLogMax(options.maxDecoderMemory) },
  };
  let output: Uint8Array;
  try {
    output =
      expectedSize <= SYNC_MAX
        ? zlib.zstdDecompressSync(stored, zlibOptions)
        : await new Promise<Uint8Array>((resolve, reject) => {
            zlib.zstdDecompress(stored, zlibOptions, (error, result) =>
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
  if (output.byteLength !== expectedSize) {
    throw decompressionError(
      `zstd entry expanded to ${output.byteLength} bytes, expected ${expectedSize}`,
      options.subject,
    );
  }
  return output;
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
  const decoder = zlib.createZstdDecompress({
    chunkSize: STREAM_OUTPUT_CHUNK,
    params: { [ZSTD_d_windowLogMax]: windowLogMax(options.maxDecoderMemory) },
  });
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (chunk.byteLength > 0) sawInput = true;
      if (!decoder.write(chunk)) decoder.once("drain", () => callback());
      else callback();
    },
    flush(callback: TransformCallback) {
      if (!sawInput) {
        // Zero stored bytes: an empty file (Go) — the decoder would call it truncated.
        decoder.destroy();
        callback(
          expectedSize === 0
            ? null
            : decompressionError(`empty zstd entry but ${expectedSize} bytes expected`, options.subject),
        );
        return;
      }
      decoder.once("end", () => {
        callback(
          produced === expectedSize
            ? null
            : decompressionError(
                `zstd entry expanded to ${produced} bytes, expected ${expectedSize}`,
                options.subject,
              ),
        );
      });
      decoder.end();
    },
    destroy(error, callback) {
      decoder.destroy();
      callback(error);
    },
  });
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
  const read = transform._read.bind(transform);
  transform._read = (size: number): void => {
    if (decoder.isPaused()) decoder.resume();
    read(size);
  };
  decoder.on("error", (cause) => {
    transform.destroy(
      decompressionError(`zstd decompression failed: ${cause.message}`, options.subject, cause),
    );
  });
  return transform;
}
