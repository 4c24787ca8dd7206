// `pnpm --filter @blobkit/docs build`: syncs the copied pages, then `astro build` with telemetry off, offline.
// Extra arguments go to astro (e.g. `--outDir /tmp/site`).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { docsRoot, syncContent } from "./sync-content.mjs";

syncContent();
// A production build whatever the caller's environment: a build started from a test runner inherits Vite's
// mode variables (vitest sets MODE=test, DEV=1, NODE_ENV=test…), which Astro's server-side `import.meta.env`
// reads, so the pages would render dev-only fallbacks ("search is only available in production builds").
const VITE_MODE_VARS = new Set(["MODE", "DEV", "PROD", "SSR", "BASE_URL", "TEST", "NODE_ENV"]);
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !VITE_MODE_VARS.has(key) && !key.startsWith("VITEST")),
);
const astro = join(docsRoot, "node_modules", "astro", "bin", "astro.mjs");
const result = spawnSync(process.execPath, [astro, "build", ...process.argv.slice(2)], {
  cwd: docsRoot,
  stdio: "inherit",
  env: { ...env, NODE_ENV: "production", ASTRO_TELEMETRY_DISABLED: "1" },
});
process.exit(result.status ?? 1);
