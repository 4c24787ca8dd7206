// Child process of `pnpm bench` for peak-RSS runs: plain JavaScript over the built package, so the numbers
// are what an application using @blobkit/core pays (no TypeScript loader in the process).
// Usage: node scripts/bench-child.mjs create|extract FROM TO
import { createLocalArchive, openLocalArchive } from "../packages/core/dist/index.js";

const [op, from, to] = process.argv.slice(2);
if (op === "create") {
  await createLocalArchive(from, to, { compression: "zstd" });
} else if (op === "extract") {
  const archive = await openLocalArchive(from);
  try {
    await archive.extract(to);
  } finally {
    await archive.close();
  }
} else {
  throw new Error(`unknown operation ${op}`);
}
console.log(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS }));
