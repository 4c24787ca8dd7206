// Crash-consistency child (crash.test.ts): pulls <reference> and extracts it into <dest>.
// Run with `node --conditions=source extract.ts <reference> <dest>`; prints "start", then "done <ms>".
import { Client } from "@blobkit/registry";

const [reference = "", dest = ""] = process.argv.slice(2);
const client = new Client({ credentials: { get: async () => undefined } });
process.stdout.write("start\n");
const started = performance.now();
const archive = await client.pull(reference);
await archive.extract(dest);
await archive.close();
await client.close();
process.stdout.write(`done ${Math.round(performance.now() - started)}\n`);
