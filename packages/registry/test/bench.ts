// Registry benchmarks in one run against local docker-registry instances (run from the repository root:
// `node --conditions=source packages/registry/test/bench.ts`; part of `pnpm bench`).
//
// 1. Cold read of one 64 KiB file from a 1 GiB archive: requests and bytes on the wire (target ≤ 3 requests,
//    bytes = manifest + index + the file's stored bytes).
// 2. Warm read with manifest and index cached (target 1 request, exactly the file's stored bytes).
// 3. Push throughput of the same two blobs (data + index) versus curl's POST + PUT uploads (target ≥ 0.8×).
// 4. Peak RSS of a child process pushing a 2 GiB tree (target ≤ 200 MiB).
//
// BENCH_ARCHIVE_MIB and BENCH_RSS_TREE_MIB shrink the data for a quick run.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createLocalArchive, decodeIndex, MemoryCache } from "@blobkit/core";
import { anonymousCredentials } from "../src/auth/index.ts";
import { Client } from "../src/client.ts";
import { startRegistry } from "./registry-server.ts";
import { startWildProxy } from "./wild-proxy.ts";

const run = promisify(execFile);
const MIB = 1024 * 1024;
const ARCHIVE_MIB = Number(process.env.BENCH_ARCHIVE_MIB ?? 1024);
const RSS_TREE_MIB = Number(process.env.BENCH_RSS_TREE_MIB ?? 2048);

async function writeRandomTree(dir: string, mib: number): Promise<void> {
  for (let i = 0; i < mib; i++) {
    const sub = join(dir, `d${i % 16}`);
    if (i < 16) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${i}.bin`), randomBytes(MIB));
  }
}

async function curlUpload(origin: string, repository: string, path: string, digest: string): Promise<void> {
  const { stdout } = await run("curl", [
    "-sS",
    "-X",
    "POST",
    "-D",
    "-",
    "-o",
    "/dev/null",
    `${origin}/v2/${repository}/blobs/uploads/`,
  ]);
  const location = /^location:\s*(\S+)/im.exec(stdout)?.[1];
  if (location === undefined) throw new Error(`no upload location: ${stdout}`);
  const url = new URL(location, origin);
  url.searchParams.set("digest", digest);
  const put = await run("curl", [
    "-sS",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "-X",
    "PUT",
    "-H",
    "Content-Type: application/octet-stream",
    "-T",
    path,
    url.href,
  ]);
  if (put.stdout !== "201") throw new Error(`curl upload answered ${put.stdout}`);
}

const work = await mkdtemp(join(tmpdir(), "blobkit-registry-bench-"));
const registries = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
const [main, curlTarget, rssTarget] = registries as [
  (typeof registries)[number],
  (typeof registries)[number],
  (typeof registries)[number],
];
try {
  // --- A 1 GiB archive with one 64 KiB file among 1 MiB random files.
  const tree = join(work, "tree");
  await writeRandomTree(tree, ARCHIVE_MIB);
  await mkdir(join(tree, "target"), { recursive: true });
  await writeFile(join(tree, "target/file-64k.bin"), randomBytes(64 * 1024));
  const local = await createLocalArchive(tree, join(work, "archive"));
  const index = await readFile(local.indexPath);
  const dataSize = decodeIndex(index).dataSize;

  // --- Push throughput: the same two blobs, ours vs curl, each into an empty registry.
  const client = new Client({ credentials: anonymousCredentials });
  let start = performance.now();
  await client.push(`${main.host}/bench/archive:v1`, { index, data: { path: local.dataPath } });
  const oursMs = performance.now() - start;
  start = performance.now();
  await curlUpload(curlTarget.origin, "bench/curl", local.dataPath, local.dataDigest);
  await curlUpload(curlTarget.origin, "bench/curl", local.indexPath, local.indexDigest);
  const curlMs = performance.now() - start;
  const mibPerS = (ms: number): string => ((dataSize + index.length) / MIB / (ms / 1000)).toFixed(0);
  console.log(`push of ${(dataSize / MIB).toFixed(0)} MiB data + ${index.length} B index`);
  console.log(`  blobkit push   ${oursMs.toFixed(0)} ms (${mibPerS(oursMs)} MiB/s)`);
  console.log(`  curl POST+PUT  ${curlMs.toFixed(0)} ms (${mibPerS(curlMs)} MiB/s)`);
  console.log(`  ratio (curl time / ours): ${(curlMs / oursMs).toFixed(2)}× (target ≥ 0.8×)`);

  // --- Cold and warm reads through a counting proxy.
  const proxy = await startWildProxy(main.origin, {});
  const ref = `${proxy.host}/bench/archive:v1`;
  const cold = new Client({ credentials: anonymousCredentials });
  start = performance.now();
  const archive = await cold.pull(ref);
  const stat = await archive.stat("target/file-64k.bin");
  await archive.readFile("target/file-64k.bin");
  const coldMs = performance.now() - start;
  await archive.close();
  const coldRequests = proxy.seen.length;
  const coldBytes = proxy.seen.reduce((n, r) => n + r.bytes, 0);
  const manifestSize = (await cold.fetch(ref)).descriptor.size;
  const expected = manifestSize + index.length + stat.storedSize;
  console.log(`cold read of one 64 KiB file from a ${(dataSize / MIB).toFixed(0)} MiB archive`);
  console.log(`  ${coldRequests} requests, ${coldBytes} bytes on the wire, ${coldMs.toFixed(1)} ms`);
  console.log(
    `  expected bytes = manifest ${manifestSize} + index ${index.length} + file ${stat.storedSize} = ${expected}`,
  );
  await cold.close();

  const cache = new MemoryCache();
  const warmClient = new Client({ credentials: anonymousCredentials, cache });
  const warmup = await warmClient.pull(ref);
  await warmup.close();
  proxy.seen.length = 0;
  start = performance.now();
  const warm = await warmClient.pull(ref);
  await warm.readFile("target/file-64k.bin");
  const warmMs = performance.now() - start;
  await warm.close();
  console.log("warm read (manifest and index cached)");
  console.log(
    `  ${proxy.seen.length} request(s), ${proxy.seen.reduce((n, r) => n + r.bytes, 0)} bytes (file stored size ${stat.storedSize}), ${warmMs.toFixed(1)} ms`,
  );
  await warmClient.close();
  await proxy.stop();
  await client.close();
  await rm(tree, { recursive: true, force: true });
  await rm(join(work, "archive"), { recursive: true, force: true });

  // --- Peak RSS of a child process pushing a big tree (creation + upload, streamed through the spool).
  const big = join(work, "big");
  await writeRandomTree(big, RSS_TREE_MIB);
  const child = spawn(
    process.execPath,
    [
      "--conditions=source",
      join(import.meta.dirname, "bench-push-rss.mjs"),
      `${rssTarget.host}/bench/big:v1`,
      big,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`push child exited with ${code}`);
  const result = JSON.parse(output) as {
    maxRssMiB: number;
    ms: number;
    startMiB: number;
    createMiB: number;
    uploadMiB: number;
  };
  console.log(`push of a ${RSS_TREE_MIB} MiB tree (create + upload) in a child process`);
  console.log(
    `  peak RSS ${result.maxRssMiB.toFixed(0)} MiB (target ≤ 200 MiB), ${(result.ms / 1000).toFixed(1)} s (${(RSS_TREE_MIB / (result.ms / 1000)).toFixed(0)} MiB/s)`,
  );
  console.log(
    `  RSS at start ${result.startMiB} MiB, peak while packing ${result.createMiB} MiB, while uploading ${result.uploadMiB} MiB`,
  );
} finally {
  await Promise.all(registries.map((r) => r.stop()));
  await rm(work, { recursive: true, force: true });
}
