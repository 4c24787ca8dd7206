/**
 * Test helper: builds archives (index + data bytes) from a list of files without the archive writer, so
 * reader tests do not depend on `createArchive`. Not part of the public API.
 *
 * @internal
 */
import { sha256Hex } from "../digest.ts";
import { encodeIndex } from "../format/index-codec.ts";
import type { Compression, IndexEntryInput } from "../format/types.ts";
import { comparePaths } from "../paths.ts";
import { zstdCompress } from "../zstd.ts";

/** One file of a test archive. @internal */
export interface TestFile {
  readonly path: string;
  readonly content: Uint8Array | string;
  /** Default `"none"`. */
  readonly compression?: Compression | undefined;
  /** Default 0o644. */
  readonly mode?: number | undefined;
  /** Default 1 700 000 000 s (as ns). */
  readonly mtimeNs?: bigint | undefined;
}

/** Options of {@link buildArchive}. @internal */
export interface BuildArchiveOptions {
  /** `"sorted"` (default): byte-sorted entries and data; `"as-given"`: keep the list order (Go walk order). */
  readonly order?: "sorted" | "as-given" | undefined;
  /** Omit `data_hash` from the index. */
  readonly omitDataHash?: boolean | undefined;
}

/** A built test archive. @internal */
export interface BuiltArchive {
  readonly index: Uint8Array;
  readonly data: Uint8Array;
  /** Entries in data order, with offsets. */
  readonly entries: readonly IndexEntryInput[];
  /** Content of each path. */
  readonly contents: ReadonlyMap<string, Uint8Array>;
}

const encoder = new TextEncoder();

/**
 * Builds an archive: data = stored bytes of each file concatenated in entry order.
 *
 * @internal
 */
export async function buildArchive(
  files: readonly TestFile[],
  options: BuildArchiveOptions = {},
): Promise<BuiltArchive> {
  const order = options.order ?? "sorted";
  const list = order === "sorted" ? [...files].sort((a, b) => comparePaths(a.path, b.path)) : [...files];
  const entries: IndexEntryInput[] = [];
  const chunks: Uint8Array[] = [];
  const contents = new Map<string, Uint8Array>();
  let offset = 0;
  for (const file of list) {
    const content = typeof file.content === "string" ? encoder.encode(file.content) : file.content;
    const compression = file.compression ?? "none";
    const stored = compression === "zstd" ? await zstdCompress(content) : content;
    contents.set(file.path, content);
    entries.push({
      path: file.path,
      offset,
      storedSize: stored.byteLength,
      size: content.byteLength,
      sha256: sha256Hex(content),
      mode: file.mode ?? 0o644,
      uid: 1000,
      gid: 1000,
      mtimeNs: file.mtimeNs ?? 1_700_000_000_000_000_000n,
      compression,
    });
    chunks.push(stored);
    offset += stored.byteLength;
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.byteLength;
  }
  const index = encodeIndex(
    {
      entries,
      dataSize: data.byteLength,
      dataSha256: options.omitDataHash === true ? undefined : sha256Hex(data),
    },
    { order },
  );
  return { index, data, entries, contents };
}

/**
 * Deterministic pseudo-random bytes (incompressible enough for tests).
 *
 * @internal
 */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Sorts files in Go `fs.WalkDir` order (depth-first, each directory's names in byte order), the order the
 * Go writer stores entries in. Differs from byte order for names like `docs`, `docs.md`, `docs-old`.
 *
 * @internal
 */
export function goWalkOrder<T extends { readonly path: string }>(files: readonly T[]): T[] {
  return [...files].sort((a, b) => {
    const x = a.path.split("/");
    const y = b.path.split("/");
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = comparePaths(x[i]!, y[i]!);
      if (c !== 0) return c;
    }
    return x.length - y.length;
  });
}
