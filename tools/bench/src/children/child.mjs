// Child process of the benchmark harness: one operation in a fresh Node process over the built packages
// (as applications run them), then its own peak RSS on stdout as JSON.
//
// Plain JavaScript, and each operation imports only what it uses: a .ts child would also count Node's type
// stripper (~10 MiB), and importing zip.js into blobkit's runs would count zip.js against blobkit.
//
// Usage: node child.mjs <op> …args
//   pull-extract <ref> <dest>     blobkit pull + extract everything
//   push <ref> <dir>              blobkit push of a directory (create + upload)
//   create <dir> <out>            createLocalArchive
//   stream <ref> <path>           blobkit pull + createReadStream of one file, discarded
//   zip-stream <url> <entry>      zip.js HttpRangeReader: one entry streamed, discarded

const [op, a, b] = process.argv.slice(2);
const start = performance.now();
let bytes = 0;
if (op === "pull-extract" || op === "stream") {
  const { anonymousCredentials, Client } = await import("@blobkit/registry");
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
  const { anonymousCredentials, Client } = await import("@blobkit/registry");
  const client = new Client({ credentials: anonymousCredentials });
  await client.push(a, b);
  await client.close();
} else if (op === "create") {
  const { createLocalArchive } = await import("@blobkit/core");
  bytes = (await createLocalArchive(a, b)).dataSize;
} else if (op === "zip-stream") {
  const { configure, HttpReader, ZipReader } = await import("@zip.js/zip.js");
  configure({ useWebWorkers: false });
  const reader = new ZipReader(
    new HttpReader(a, { useRangeHeader: true, forceRangeRequests: true, combineSizeEocd: true }),
  );
  const entry = (await reader.getEntries()).find((e) => e.filename === b);
  if (entry === undefined || entry.directory) throw new Error(`no entry ${b}`);
  await entry.getData(
    new WritableStream({
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
