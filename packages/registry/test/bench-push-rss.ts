// Child process of bench.ts: pushes a directory and reports its own peak RSS. It imports the built package
// (dist), as users run it: `tsc -b` first.
// Usage: node bench-push-rss.ts <reference> <dir>
import { anonymousCredentials, Client } from "@blobkit/registry";

const [reference, dir] = process.argv.slice(2);
if (reference === undefined || dir === undefined)
  throw new Error("usage: bench-push-rss.ts <reference> <dir>");
const client = new Client({ credentials: anonymousCredentials });
const start = performance.now();
await client.push(reference, dir);
const ms = performance.now() - start;
await client.close();
process.stdout.write(JSON.stringify({ maxRssMiB: process.resourceUsage().maxRSS / 1024, ms }));
