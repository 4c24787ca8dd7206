import { join } from "node:path";
import { acquireFileLock } from "../src/layout/lock.ts";

// Takes the index.json lock of the image layout in argv[2] and exits without releasing it: a crashed holder
// (layout.test.ts checks that the lock is then recovered at once).
const dir = process.argv[2]!;
await acquireFileLock(join(dir, "index.json.lock"), {
  tempDir: join(dir, "ingest"),
  timeoutMs: 5000,
  staleMs: 60_000,
});
process.exit(0);
