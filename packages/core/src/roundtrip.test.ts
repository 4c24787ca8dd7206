/**
 * Property tests across the whole pipeline: generated trees → createArchive (from a directory and from a
 * list) → Archive (stat, readFile, createReadStream, readDir, walk, dirStats) → extract, compared with a
 * model of the tree. Trees are generated from a seeded PRNG, so a failure names a reproducible seed.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { Archive } from "./archive.ts";
import { type ArchiveInput, createArchive } from "./create.ts";
import { sha256Hex } from "./digest.ts";
import { comparePaths } from "./paths.ts";
import { MemorySource } from "./sources.ts";
import { pseudoRandomBytes } from "./test-support/build-archive.ts";
import { useTempDirs } from "./test-support/temp-dirs.ts";

const tempDir = useTempDirs("blobkit-roundtrip-");

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Names that stress byte order, normalization and prefixes: `docs/` beside `docs.md` and `docs-old/`. */
const NAMES = [
  "docs",
  "docs.md",
  "docs-old",
  "docs old",
  "Docs",
  "a",
  "b.txt",
  "caf\u00e9",
  "cafe\u0301",
  "\u65e5\u672c",
  "\u{1F600}",
  "name with spaces",
  "x!y",
  "z",
];
const SIZES = [0, 1, 100, 1023, 1024, 4096, 128 * 1024, 128 * 1024 + 1, 300_000];

/** A random valid tree: no path is both a file and a directory. */
function generateTree(seed: number, fileCount: number): Map<string, Uint8Array> {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const files = new Map<string, Uint8Array>();
  const dirs = new Set<string>();
  for (let attempt = 0; files.size < fileCount && attempt < fileCount * 20; attempt++) {
    const depth = Math.floor(rand() * 3);
    const parts = Array.from({ length: depth + 1 }, () => pick(NAMES));
    const path = parts.join("/");
    const prefixes = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
    if (files.has(path) || dirs.has(path) || prefixes.some((p) => files.has(p))) continue;
    const size = pick(SIZES);
    const kind = rand();
    const content =
      kind < 0.4
        ? pseudoRandomBytes(size, seed * 1000 + files.size + 1) // incompressible
        : new Uint8Array(Buffer.alloc(size, `${path}\n`)); // compressible
    files.set(path, content);
    for (const p of prefixes) dirs.add(p);
  }
  return files;
}

/** Children of `dir` in the model: names and whether each is a directory, byte-sorted. */
function modelReadDir(files: Map<string, Uint8Array>, dir: string): { name: string; type: string }[] {
  const prefix = dir === "." ? "" : `${dir}/`;
  const children = new Map<string, string>();
  for (const path of files.keys()) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length);
    const slash = rest.indexOf("/");
    children.set(slash === -1 ? rest : rest.slice(0, slash), slash === -1 ? "file" : "directory");
  }
  return [...children].sort(([a], [b]) => comparePaths(a, b)).map(([name, type]) => ({ name, type }));
}

function sink(): { stream: Writable; bytes: () => Uint8Array } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { stream, bytes: () => new Uint8Array(Buffer.concat(chunks)) };
}

async function checkArchive(archive: Archive, files: Map<string, Uint8Array>, seed: number): Promise<void> {
  const sorted = [...files.keys()].sort(comparePaths);
  const walked: string[] = [];
  for await (const stat of archive.walk()) walked.push(stat.path);
  expect(walked, `seed ${seed}`).toEqual(sorted);
  for (const [path, content] of files) {
    const bytes = await archive.readFile(path);
    expect(sha256Hex(bytes), `seed ${seed}: ${path}`).toBe(sha256Hex(content));
    expect((await archive.stat(path)).size).toBe(content.byteLength);
  }
  // Streamed reads of a few files.
  for (const path of sorted.slice(0, 3)) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of archive.createReadStream(path)) chunks.push(chunk);
    expect(sha256Hex(Buffer.concat(chunks))).toBe(sha256Hex(files.get(path)!));
  }
  const dirs = new Set(["."]);
  for (const path of files.keys()) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  for (const dir of dirs) {
    const listed = (await archive.readDir(dir)).map((e) => ({ name: e.name, type: e.type }));
    expect(listed, `seed ${seed}: readDir(${dir})`).toEqual(modelReadDir(files, dir));
    const prefix = dir === "." ? "" : `${dir}/`;
    const inside = [...files].filter(([p]) => p.startsWith(prefix));
    const stats = await archive.dirStats(dir);
    expect(stats.fileCount).toBe(inside.length);
    expect(stats.totalSize).toBe(inside.reduce((n, [, c]) => n + c.byteLength, 0));
  }
}

describe("round trip on generated trees", () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: directory → archive → reader → extract`, async () => {
      const files = generateTree(seed, 40);
      const root = tempDir();
      for (const [path, content] of files) {
        mkdirSync(join(root, path, ".."), { recursive: true });
        writeFileSync(join(root, path), content);
      }
      const out = sink();
      const result = await createArchive(root, out.stream, { deterministic: true });
      expect(result.fileCount).toBe(files.size);
      expect(result.skipped).toEqual([]);
      await using archive = await Archive.open({
        index: result.index,
        source: new MemorySource(out.bytes()),
      });
      await checkArchive(archive, files, seed);

      const dest = tempDir();
      const extracted = await archive.extract(dest);
      expect(extracted.fileCount).toBe(files.size);
      for (const [path, content] of files) {
        expect(sha256Hex(readFileSync(join(dest, path))), `seed ${seed}: extracted ${path}`).toBe(
          sha256Hex(content),
        );
      }
      const leftovers = (readdirSync(dest, { recursive: true }) as string[]).filter((n) =>
        n.split("/").pop()!.startsWith(".blobkit-"),
      );
      expect(leftovers).toEqual([]);

      // The same tree given as a list, in another order, gives the same archive.
      const shuffled: ArchiveInput[] = [...files].reverse().map(([path, content]) => ({ path, content }));
      const again = sink();
      const fromList = await createArchive(shuffled, again.stream, { deterministic: true });
      expect(fromList.dataDigest).toBe(result.dataDigest);
      expect(fromList.fileCount).toBe(files.size);
    });
  }

  it("10 000+ files from a list round-trip", async () => {
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 10_050; i++) {
      files.set(
        `d${i % 50}/s${i % 7}/f-${i}${i % 3 === 0 ? ".md" : ".txt"}`,
        new TextEncoder().encode(`file ${i}\n`),
      );
    }
    const out = sink();
    const input: ArchiveInput[] = [...files].map(([path, content]) => ({ path, content }));
    const result = await createArchive(input, out.stream);
    expect(result.fileCount).toBe(10_050);
    await using archive = await Archive.open({ index: result.index, source: new MemorySource(out.bytes()) });
    let n = 0;
    for await (const stat of archive.walk()) {
      expect(new TextDecoder().decode(await archive.readFile(stat.path))).toBe(
        new TextDecoder().decode(files.get(stat.path)),
      );
      n++;
    }
    expect(n).toBe(10_050);
    expect((await archive.readDir(".")).length).toBe(50);
    expect((await archive.dirStats("d7")).fileCount).toBe(201);
  });
});
