import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../test/registry-server.ts";
import { pseudoRandomBytes, readTree, writeTree } from "../test/support.ts";
import { anonymousCredentials } from "./auth/index.ts";
import { Client } from "./client.ts";

// Interoperability with a third-party OCI client: Debian's skopeo must copy and inspect our artifacts
// unchanged, and we must read what it wrote.

const SKOPEO = "/usr/bin/skopeo";
if (!existsSync(SKOPEO))
  throw new Error(`${SKOPEO} is missing: apt-get install -y --no-install-recommends skopeo`);
const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<Buffer> {
  const { stdout } = await run(SKOPEO, ["--insecure-policy", ...args], {
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

let registry: RunningRegistry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "blobkit-skopeo-"));
});

afterAll(async () => {
  await registry?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("skopeo interoperability", () => {
  it("inspects our manifest byte for byte and copies registry → layout → registry keeping the digest", async () => {
    const src = join(work, "src");
    await writeTree(src, [
      { path: "models/weights.bin", content: pseudoRandomBytes(2 * 1024 * 1024, 3) },
      { path: "config.yaml", content: "replicas: 3\n" },
      { path: "run", content: "#!/bin/sh\n", mode: 0o755 },
    ]);
    const client = new Client({ credentials: anonymousCredentials });
    try {
      const pushed = await client.push(`${registry.host}/interop/app:v1`, src, {
        annotations: { "org.opencontainers.image.source": "https://example.com/<repo>&x" },
      });
      const ours = (await client.fetch(`${registry.host}/interop/app:v1`)).manifest.raw;

      const raw = await skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        `docker://${registry.host}/interop/app:v1`,
      );
      expect(Buffer.compare(raw, Buffer.from(ours))).toBe(0);

      const layout = join(work, "skopeo-layout");
      await skopeo(
        "copy",
        "--src-tls-verify=false",
        `docker://${registry.host}/interop/app:v1`,
        `oci:${layout}:v1`,
      );
      await skopeo(
        "copy",
        "--dest-tls-verify=false",
        `oci:${layout}:v1`,
        `docker://${registry.host}/interop/back:v1`,
      );
      // Our client reads the layout skopeo wrote, and the registry copy skopeo pushed, at the same digest.
      for (const ref of [`oci:${layout}:v1`, `${registry.host}/interop/back:v1`]) {
        const fetched = await client.fetch(ref);
        expect(fetched.descriptor.digest, ref).toBe(pushed.descriptor.digest);
        const archive = await client.pull(ref);
        try {
          const dest = join(work, `extract-${ref.startsWith("oci:") ? "layout" : "registry"}`);
          await archive.extract(dest, { preserveMode: true });
          const tree = await readTree(dest);
          const source = await readTree(src);
          expect([...tree.keys()].sort()).toEqual([...source.keys()].sort());
          for (const [path, file] of source) {
            expect(tree.get(path)?.bytes.equals(file.bytes), path).toBe(true);
            expect(tree.get(path)?.mode, path).toBe(file.mode);
          }
        } finally {
          await archive.close();
        }
      }
      // And skopeo reads a layout we wrote.
      const ourLayout = join(work, "our-layout");
      await client.copy(`${registry.host}/interop/app:v1`, `oci:${ourLayout}:v1`);
      const fromOurLayout = await skopeo("inspect", "--raw", `oci:${ourLayout}:v1`);
      expect(Buffer.compare(fromOurLayout, Buffer.from(ours))).toBe(0);
    } finally {
      await client.close();
    }
  });
});
