import { defineConfig } from "vitest/config";

// `pnpm test:stress`: the long-running reliability and security run (tools/stress), beside the normal suite.
// Tests import the packages' TypeScript sources through the `source` export condition, like the main suite.
const conditions = ["source"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    name: "stress",
    root: "tools/stress",
    include: ["test/**/*.test.ts"],
    testTimeout: 30 * 60_000,
    hookTimeout: 5 * 60_000,
    // One file at a time: the fault and crash runs start their own servers and measure time.
    fileParallelism: false,
  },
});
