/**
 * `pnpm demo`: the main job on the embedded default — pack a directory into a local archive
 * (`index.blob` + `data.blob`), open it lazily, read files back (hash-verified) and extract it.
 *
 * Usage: pnpm demo [sourceDir] [outDir]   (defaults: packages/core/src → .demo/)
 */
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createLocalArchive, openLocalArchive } from "../packages/core/src/index.ts";

const sourceDir = resolve(process.argv[2] ?? "packages/core/src");
const outDir = resolve(process.argv[3] ?? ".demo");
const archiveDir = join(outDir, "archive");
const extractDir = join(outDir, "extracted");
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MiB`;

await rm(outDir, { recursive: true, force: true });

let t = performance.now();
const created = await createLocalArchive(sourceDir, archiveDir, { compression: "zstd" });
console.log(
  `created  ${archiveDir}: ${created.fileCount} files, ${mib(created.totalSize)} → data ${mib(created.dataSize)}` +
    ` + index ${created.index.byteLength} B in ${(performance.now() - t).toFixed(0)} ms`,
);
console.log(`         index ${created.indexDigest}\n         data  ${created.dataDigest}`);
for (const s of created.skipped) console.log(`         skipped ${s.path} (${s.kind})`);

t = performance.now();
await using archive = await openLocalArchive(archiveDir);
console.log(`opened   ${archive.fileCount} entries in ${(performance.now() - t).toFixed(2)} ms`);

const top = await archive.readDir(".");
console.log(`readDir  . → ${top.map((e) => (e.type === "directory" ? `${e.name}/` : e.name)).join("  ")}`);

// Read every file back through the lazy reader and compare with the original on disk.
let checked = 0;
for await (const file of archive.walk()) {
  const bytes = await archive.readFile(file.path);
  const original = await readFile(join(sourceDir, file.path));
  if (!Buffer.from(bytes).equals(original)) throw new Error(`demo: ${file.path} differs from the source`);
  checked++;
}
console.log(`verified ${checked} files read back byte-for-byte (each SHA-256 checked by the reader)`);

t = performance.now();
const extracted = await archive.extract(extractDir);
console.log(
  `extract  ${extracted.fileCount} files (${mib(extracted.totalBytes)}) to ${extractDir} in ${(performance.now() - t).toFixed(0)} ms`,
);
const sample = top.find((e) => e.type === "file")?.name;
if (sample !== undefined) {
  const digest = createHash("sha256")
    .update(await readFile(join(extractDir, sample)))
    .digest("hex");
  console.log(`sample   ${sample} sha256:${digest}`);
}
console.log("ok");
