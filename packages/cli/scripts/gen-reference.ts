// docs/cli.md from the command table, formatted by the repository's Biome (so `biome check` accepts it).
// Write it: pnpm --filter @blobkit/cli gen-reference   (node --conditions=source scripts/gen-reference.ts)
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateReference } from "../src/reference.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** Where the reference lives. */
export const REFERENCE_PATH: string = fileURLToPath(new URL("../../../docs/cli.md", import.meta.url));

/** The reference exactly as it must be committed: generated, then formatted by Biome. */
export function renderReference(): string {
  const biome = fileURLToPath(new URL("../../../node_modules/@biomejs/biome/bin/biome", import.meta.url));
  const result = spawnSync(process.execPath, [biome, "format", "--stdin-file-path=docs/cli.md"], {
    cwd: ROOT,
    input: generateReference(),
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`biome format failed: ${result.stderr}`);
  return result.stdout;
}

if (import.meta.main) {
  writeFileSync(REFERENCE_PATH, renderReference());
  process.stdout.write(`wrote ${REFERENCE_PATH}\n`);
}
