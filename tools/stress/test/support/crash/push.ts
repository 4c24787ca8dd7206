// Crash-consistency child (crash.test.ts): pushes <src> to <reference> (a registry reference or `oci:<dir>:<tag>`).
// Run with `node --conditions=source push.ts <reference> <src>`; prints "start" once loaded, "done <ms>" at the end.
import { Client } from "@blobkit/registry";

const [reference = "", src = ""] = process.argv.slice(2);
const client = new Client({ credentials: { get: async () => undefined } });
process.stdout.write("start\n");
const started = performance.now();
await client.push(reference, src);
await client.close();
process.stdout.write(`done ${Math.round(performance.now() - started)}\n`);
