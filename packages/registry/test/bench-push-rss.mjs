// Child process of bench.ts: pushes a directory and reports its own peak RSS, overall and per phase (packing
// into the spool, uploading). Plain JavaScript importing the built package (dist), as users run it — a .ts
// child would also count Node's type stripper (tens of MiB). `tsc -b` first.
// Usage: node bench-push-rss.mjs <reference> <dir>
import { anonymousCredentials, Client } from "@blobkit/registry";

const [reference, dir] = process.argv.slice(2);
if (reference === undefined || dir === undefined)
  throw new Error("usage: bench-push-rss.mjs <reference> <dir>");
// memoryUsage.rss(), not memoryUsage(): full heap statistics would free dead buffers early and flatter the peak.
const peaks = { start: process.memoryUsage.rss(), create: 0, upload: 0 };
let phase = "create";
const sampler = setInterval(() => {
  peaks[phase] = Math.max(peaks[phase], process.memoryUsage.rss());
}, 20);
const client = new Client({ credentials: anonymousCredentials });
const start = performance.now();
await client.push(reference, dir, {
  onProgress: (event) => {
    phase = event.phase;
  },
});
const ms = performance.now() - start;
clearInterval(sampler);
await client.close();
const mib = (bytes) => Math.round(bytes / 1024 / 1024);
process.stdout.write(
  JSON.stringify({
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    ms,
    startMiB: mib(peaks.start),
    createMiB: mib(peaks.create),
    uploadMiB: mib(peaks.upload),
  }),
);
