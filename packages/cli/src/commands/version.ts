import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { object, string, stringMap } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";

const PACKAGES = [
  "@blobkit/core",
  "@blobkit/registry",
  "@blobkit/cache-disk",
  "@blobkit/cache-redis",
] as const;

/** The `version` of the package.json at or above `file` whose name is `name`. */
async function versionNear(file: string, name: string): Promise<string> {
  let dir = dirname(file);
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === name) return pkg.version ?? "unknown";
    } catch {
      // keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return "unknown";
}

/** Versions of the CLI and the blobkit packages it runs with. */
export async function versions(): Promise<{ version: string; packages: Record<string, string> }> {
  const version = await versionNear(fileURLToPath(import.meta.url), "@blobkit/cli");
  const packages: Record<string, string> = { "@blobkit/cli": version };
  for (const name of PACKAGES) {
    try {
      packages[name] = await versionNear(fileURLToPath(import.meta.resolve(name)), name);
    } catch {
      packages[name] = "missing";
    }
  }
  return { version, packages };
}

export const version: CommandSpec = {
  name: "version",
  summary: "Print the versions of blob, its packages and Node.js",
  examples: [{ command: "blob version --json", description: "machine-readable" }],
  json: object({ version: string(), node: string(), packages: stringMap("package → version") }),
  async action(ctx) {
    const v = await versions();
    await ctx.result(
      { version: v.version, node: process.version, packages: v.packages },
      () =>
        [
          `blob ${v.version}`,
          `  node: ${process.version}`,
          ...Object.entries(v.packages).map(([k, x]) => `  ${k}: ${x}`),
        ].join("\n"),
      { quietable: false },
    );
  },
};
