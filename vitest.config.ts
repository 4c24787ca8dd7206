import { existsSync, readdirSync } from "node:fs";
import { defineConfig } from "vitest/config";

// Every workspace package gets two projects: `<pkg>:unit` (pure, fast, runs on every supported Node) and
// `<pkg>:integration` (`*.integration.test.ts`, real services started by the harness). Tests import the
// packages' TypeScript sources through the `source` export condition, so no build is needed to test.
const conditions = ["source"];
const packages = ["packages", "apps"].flatMap((root) =>
  readdirSync(root)
    .filter((name) => existsSync(`${root}/${name}/package.json`))
    .map((name) => ({ name, dir: `${root}/${name}` })),
);

export default defineConfig({
  test: {
    projects: packages.flatMap(({ name, dir }) => [
      {
        resolve: { conditions },
        ssr: { resolve: { conditions } },
        test: {
          name: `${name}:unit`,
          root: dir,
          include: ["src/**/*.test.ts", "test/**/*.test.ts"],
          exclude: ["**/*.integration.test.ts", "**/node_modules/**"],
          testTimeout: 30_000,
        },
      },
      {
        resolve: { conditions },
        ssr: { resolve: { conditions } },
        test: {
          name: `${name}:integration`,
          root: dir,
          include: ["src/**/*.integration.test.ts", "test/**/*.integration.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ]),
  },
});
