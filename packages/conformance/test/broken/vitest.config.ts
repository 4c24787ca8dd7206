import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Runs the conformance suites against the deliberately broken implementations in this directory (and a
// correct control). Used only by src/catches-bugs.test.ts, which runs it in a child vitest and checks that the
// expected tests fail. The files are named *.broken.ts so that the normal test projects never pick them up.
const conditions = ["source"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["**/*.broken.ts"],
    testTimeout: 10_000,
    hookTimeout: 10_000,
  },
});
