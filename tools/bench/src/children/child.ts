// Child process of the benchmark harness: one operation in a fresh Node process over the built packages
// (as applications run them), then its own peak RSS on stdout as JSON.
// Usage: node child.ts <op> …args
//   pull-extract <ref> <dest>     blobkit pull + extract everything
//   push <ref> <dir>              blobkit push of a directory (create + upload)
//   create <dir> <out>            createLocalArchive
//   stream <ref> <path>           blobkit pull + createReadStream of one file, discarded
//   zip-stream <url> <entry>      zip.js HttpRangeReader: one entry streamed, discarded
import { createLocalArchive } from "@blobkit/core";
import { anonymousCredentials, Client } from "@blobkit/registry";
import { configure, HttpReader, ZipReader } from "@zip.js/zip.js";

const [op, a, b] = process.argv.slice(2) as [string, string, string];
const start = performance.now();
let bytes = 0;
if (op === "pull-extract" || op === "stream") {
  const client = new Client({ credentials: anonymousCredentials });
  const archive = await client.pull(a);
  if (op === "pull-extract") {
    bytes = (await archive.extract(b)).totalBytes;
  } else {
    for await (const chunk of archive.createReadStream(b)) bytes += chunk.byteLength;
  }
  await archive.close();
  await client.close();
} else if (op === "push") {
  const client = new Client({ credentials: anonymousCredentials });
  await client.push(a, b);
  await client.close();
} else if (op === "create") {
  bytes = (await createLocalArchive(a, b)).dataSize;
} else if (op === "zip-stream") {
  configure({ useWebWorkers: false });
  const reader = new ZipReader(
    new HttpReader(a, { useRangeHeader: true, forceRangeRequests: true, combineSizeEocd: true }),
  );
  const entry = (await reader.getEntries()).find((e) => e.filename === b);
  if (entry === undefined || entry.directory) throw new Error(`no entry ${b}`);
  await entry.getData(
    new WritableStream<Uint8Array>({
      write(chunk) {
        bytes += chunk.byteLength;
      },
    }),
  );
  await reader.close();
} else {
  throw new Error(`unknown op ${op}`);
}
const ms = performance.now() - start;
console.log(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS, ms, bytes }));
