import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Archive,
  createLocalArchive,
  createManifest,
  type Descriptor,
  MEDIA_TYPE_DATA,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  parseManifest,
} from "@blobkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blobOf, EMPTY_CONFIG, imageManifest } from "../test/layout-fixtures.ts";
import { OciLayoutStore } from "./layout.ts";

// Interop with a third-party OCI client: Debian's skopeo (1.9.3) must inspect and copy the layouts this store
// writes, unchanged, and this store must read the layouts skopeo writes.
const SKOPEO = "/usr/bin/skopeo";

let root: string;
let policy: string;

beforeAll(async () => {
  if (!existsSync(SKOPEO)) {
    throw new Error(`${SKOPEO} is missing: install it with \`apt-get install -y skopeo\``);
  }
  root = mkdtempSync(join(tmpdir(), "blobkit-layout-skopeo-"));
  // skopeo refuses to copy without a signature policy; this one accepts anything (local test data).
  policy = join(root, "policy.json");
  await writeFile(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
});

afterAll(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

/**
 * Runs skopeo with our policy file; resolves to its stdout bytes, rejects with its stderr. Copies pass
 * `--preserve-digests`, so skopeo fails rather than rewrite a manifest (it copies the bytes as they are).
 */
function skopeo(...args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      SKOPEO,
      ["--policy", policy, ...args],
      { encoding: "buffer", timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error)
          reject(new Error(`skopeo ${args.join(" ")} failed: ${stderr.toString()}`, { cause: error }));
        else resolve(stdout);
      },
    );
  });
}

interface PushedArchive {
  manifest: Descriptor;
  bytes: Uint8Array;
  index: Descriptor;
  data: Descriptor;
}

/** Creates an archive of a small tree and pushes it (config, index, data, manifest) into `store` as `tag`. */
async function pushArchive(store: OciLayoutStore, tag: string): Promise<PushedArchive> {
  const src = join(root, `src-${tag}`);
  await mkdir(join(src, "docs"), { recursive: true });
  await writeFile(join(src, "hello.txt"), "hello, layout\n");
  await writeFile(join(src, "docs", "guide.md"), "# Guide\n".repeat(500));
  const out = join(root, `out-${tag}`);
  const created = await createLocalArchive(src, out, { overwrite: true });
  const index: Descriptor = {
    mediaType: MEDIA_TYPE_INDEX,
    digest: created.indexDigest,
    size: created.index.length,
  };
  const data: Descriptor = { mediaType: MEDIA_TYPE_DATA, digest: created.dataDigest, size: created.dataSize };
  await store.pushBlob(EMPTY_CONFIG.descriptor, EMPTY_CONFIG.bytes);
  await store.pushBlob(index, { path: created.indexPath });
  await store.pushBlob(data, { path: created.dataPath });
  const m = createManifest({
    index,
    data,
    annotations: { "org.example.note": "a <b> & c" },
    created: new Date("2026-01-24T10:30:00Z"),
  });
  const manifest = await store.pushManifest(m.bytes, MEDIA_TYPE_OCI_MANIFEST, { tag });
  return { manifest, bytes: m.bytes, index, data };
}

/** Opens the archive `tag` of `store` through the store (manifest, index blob, data blob) and reads a file. */
async function readHello(store: OciLayoutStore, tag: string): Promise<string> {
  const fetched = await store.fetchManifest(tag);
  const manifest = parseManifest(fetched.bytes, { expectedDigest: fetched.descriptor.digest });
  const index = await store.fetchBlob(manifest.index);
  const archive = await Archive.open({ index, source: await store.openBlob(manifest.data) });
  try {
    return new TextDecoder().decode(await archive.readFile("hello.txt"));
  } finally {
    await archive.close();
  }
}

describe("OCI image layouts shared with skopeo", () => {
  it("skopeo inspect --raw prints our manifest byte for byte", async () => {
    const store = await OciLayoutStore.open(join(root, "inspect"), { create: true });
    const pushed = await pushArchive(store, "v1");
    // An untagged referrer in index.json must not confuse skopeo.
    const bundle = blobOf('{"bundle":true}', "application/vnd.dev.sigstore.bundle.v0.3+json");
    await store.pushBlob(bundle.descriptor, bundle.bytes);
    const sig = imageManifest([bundle.descriptor], {
      artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      subject: pushed.manifest,
    });
    await store.pushManifest(sig.bytes, MEDIA_TYPE_OCI_MANIFEST);
    const raw = await skopeo("inspect", "--raw", `oci:${store.dir}:v1`);
    expect(Buffer.compare(raw, pushed.bytes)).toBe(0);
    // (skopeo 1.9.3 cannot address a layout manifest by digest: `oci:<dir>@<digest>` is read as a path.)
  });

  it("skopeo copy --all from our layout to a new one: we read the same digests and blobs", async () => {
    const a = await OciLayoutStore.open(join(root, "copy-a"), { create: true });
    const pushed = await pushArchive(a, "v1");
    const bDir = join(root, "copy-b");
    await skopeo("copy", "--preserve-digests", "--all", `oci:${a.dir}:v1`, `oci:${bDir}:v1`);
    const b = await OciLayoutStore.open(bDir);
    expect(await b.resolve("v1")).toEqual(pushed.manifest);
    const fetched = await b.fetchManifest("v1");
    expect(Buffer.compare(fetched.bytes, pushed.bytes)).toBe(0);
    for (const d of [EMPTY_CONFIG.descriptor, pushed.index, pushed.data]) {
      expect(Buffer.compare(await b.fetchBlob(d), await a.fetchBlob(d)), d.digest).toBe(0);
    }
    expect(await readHello(b, "v1")).toBe("hello, layout\n");
  });

  it("reads layouts skopeo wrote (tags included), and skopeo reads them after we changed them", async () => {
    const a = await OciLayoutStore.open(join(root, "mixed-a"), { create: true });
    const pushed = await pushArchive(a, "v1");
    // Into a layout this store created (with its ingest/ directory) and into one skopeo creates.
    const ours = await OciLayoutStore.open(join(root, "mixed-ours"), { create: true });
    await skopeo("copy", "--preserve-digests", `oci:${a.dir}:v1`, `oci:${ours.dir}:release`);
    const theirsDir = join(root, "mixed-theirs");
    await skopeo("copy", "--preserve-digests", `oci:${a.dir}:v1`, `oci:${theirsDir}:one`);
    await skopeo("copy", "--preserve-digests", `oci:${a.dir}:v1`, `oci:${theirsDir}:two`);
    const theirs = await OciLayoutStore.open(theirsDir);
    for (const [store, expected] of [
      [ours, ["release"]],
      [theirs, ["one", "two"]],
    ] as const) {
      const tags: string[] = [];
      for await (const tag of store.listTags()) tags.push(tag);
      expect(tags).toEqual(expected);
      for (const tag of expected) expect((await store.resolve(tag)).digest).toBe(pushed.manifest.digest);
      expect(await readHello(store, expected[0])).toBe("hello, layout\n");
    }
    // Our changes to skopeo's layout: a new tag, a moved tag, a second archive; skopeo still reads all.
    const second = await pushArchive(theirs, "three");
    await theirs.tag(second.manifest, "one");
    await theirs.tag(pushed.manifest, "four");
    const index = JSON.parse(await readFile(join(theirsDir, "index.json"), "utf8"));
    expect(index.schemaVersion).toBe(2);
    for (const [tag, bytes] of [
      ["one", second.bytes],
      ["two", pushed.bytes],
      ["three", second.bytes],
      ["four", pushed.bytes],
    ] as const) {
      expect(Buffer.compare(await skopeo("inspect", "--raw", `oci:${theirsDir}:${tag}`), bytes), tag).toBe(0);
    }
    // And a round trip back through skopeo into yet another layout.
    const backDir = join(root, "mixed-back");
    await skopeo("copy", "--preserve-digests", "--all", `oci:${theirsDir}:one`, `oci:${backDir}:one`);
    const back = await OciLayoutStore.open(backDir);
    expect((await back.fetchManifest("one")).descriptor.digest).toBe(second.manifest.digest);
  });
});
