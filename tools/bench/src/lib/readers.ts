// The readers under comparison, opened the same way by every read comparison: blobkit through the real
// registry (`Client.pull`), blobkit over plain HTTP (`HttpSource` on the data blob, index fetched whole) and
// zip.js `HttpRangeReader` on the zip of the same tree. All of them go through the same nginx.
import { open } from "node:fs/promises";
import { Archive, type ArchiveIndex, decodeIndex } from "@blobkit/core";
import { HttpSource } from "@blobkit/http-source";
import { anonymousCredentials, Client } from "@blobkit/registry";
import {
  configure,
  type Entry,
  type FileEntry,
  HttpReader,
  Uint8ArrayWriter,
  ZipReader,
} from "@zip.js/zip.js";
import { request } from "undici";
import type { Context } from "./context.ts";
import type { DatasetName } from "./datasets.ts";

configure({ useWebWorkers: false });

export interface OpenBlobkit {
  archive: Archive;
  close(): Promise<void>;
}

/** `Client.pull` of the dataset's pushed archive: manifest + index fetched, data read lazily. */
export async function openRegistry(ctx: Context, name: DatasetName): Promise<OpenBlobkit> {
  const ref = await ctx.pushed(name);
  const client = new Client({ credentials: anonymousCredentials });
  const archive = await client.pull(ref);
  return {
    archive,
    close: async () => {
      await archive.close();
      await client.close();
    },
  };
}

/** Index fetched with one GET, data read through `HttpSource` (size from the index: no probe). */
export async function openHttp(ctx: Context, name: DatasetName): Promise<OpenBlobkit> {
  const { indexPath, dataPath } = await ctx.blobkit(name);
  const response = await request(ctx.url(indexPath));
  const bytes = new Uint8Array(await response.body.arrayBuffer());
  const index: ArchiveIndex = decodeIndex(bytes);
  const source = new HttpSource(ctx.url(dataPath), { size: index.dataSize });
  const archive = await Archive.open({ index, source, ownsSource: true });
  return { archive, close: () => archive.close() };
}

export interface OpenZip {
  entries: Map<string, FileEntry>;
  read(path: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

/**
 * zip.js's HTTP reader in range mode (what `HttpRangeReader` does) in its cheapest configuration: the size and
 * the end of central directory come from one suffix-range GET (`combineSizeEocd`). `forceRangeRequests`:
 * nginx sends `Accept-Ranges` on 200 answers only, not on the 206 zip.js checks.
 */
export const ZIP_HTTP_OPTIONS = { useRangeHeader: true, forceRangeRequests: true, combineSizeEocd: true };

export async function openZip(ctx: Context, name: DatasetName): Promise<OpenZip> {
  const reader = new ZipReader(new HttpReader(ctx.url(await ctx.zip(name)), ZIP_HTTP_OPTIONS));
  const entries = new Map<string, FileEntry>();
  for (const e of (await reader.getEntries()) as Entry[]) if (!e.directory) entries.set(e.filename, e);
  return {
    entries,
    async read(path) {
      const entry = entries.get(path);
      if (entry === undefined) throw new Error(`zip: no entry ${path}`);
      return entry.getData(new Uint8ArrayWriter());
    },
    close: () => reader.close(),
  };
}

/** Checks `got` against the file on disk (once per comparison, outside the timings). */
export async function assertSameAsTree(ctx: Context, name: DatasetName, path: string, got: Uint8Array) {
  const ds = await ctx.dataset(name);
  const fh = await open(`${ds.tree}/${path}`, "r");
  try {
    const want = (await fh.readFile()) as Uint8Array;
    if (Buffer.compare(Buffer.from(want), Buffer.from(got)) !== 0)
      throw new Error(`content mismatch: ${path}`);
  } finally {
    await fh.close();
  }
}

/**
 * Size of the zip's central directory (zip64-aware): what a zip reader must fetch to list the archive, the
 * counterpart of blobkit's index.
 */
export async function zipCentralDirectorySize(path: string): Promise<{ size: number; entries: number }> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    const tailLen = Math.min(size, 65_557 + 20 + 56);
    const tail = Buffer.alloc(tailLen);
    await fh.read(tail, 0, tailLen, size - tailLen);
    const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (eocd < 0) throw new Error("no EOCD");
    let cdSize = tail.readUInt32LE(eocd + 12);
    let entries = tail.readUInt16LE(eocd + 10);
    if (cdSize === 0xffffffff || entries === 0xffff) {
      const loc = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x06, 0x07]), eocd);
      const z64Offset = Number(tail.readBigUInt64LE(loc + 8));
      const z64 = Buffer.alloc(56);
      await fh.read(z64, 0, 56, z64Offset);
      entries = Number(z64.readBigUInt64LE(32));
      cdSize = Number(z64.readBigUInt64LE(40));
    }
    return { size: cdSize, entries };
  } finally {
    await fh.close();
  }
}
