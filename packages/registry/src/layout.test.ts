import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type BlobError,
  type Descriptor,
  isBlobError,
  MEDIA_TYPE_OCI_MANIFEST,
  sha256Digest,
} from "@blobkit/core";
import { afterEach, describe, expect, it } from "vitest";
import { blobOf, EMPTY_CONFIG, imageManifest, pushSimple } from "../test/layout-fixtures.ts";
import { acquireFileLock } from "./layout/lock.ts";
import { OciLayoutStore } from "./layout.ts";

const INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json";
const REF_NAME = "org.opencontainers.image.ref.name";
const worker = fileURLToPath(new URL("../test/layout-worker.ts", import.meta.url));
const lockHolder = fileURLToPath(new URL("../test/layout-lock-holder.ts", import.meta.url));
const packageDir = fileURLToPath(new URL("..", import.meta.url));

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "blobkit-layout-"));
  dirs.push(dir);
  return dir;
}

async function newStore(): Promise<OciLayoutStore> {
  return OciLayoutStore.open(join(tempDir(), "layout"), { create: true });
}

/** Resolves to the BlobError `promise` rejects with (fails when it resolves or rejects otherwise). */
async function rejection(promise: Promise<unknown>): Promise<BlobError> {
  try {
    await promise;
  } catch (error) {
    if (isBlobError(error)) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

async function indexJson(store: OciLayoutStore): Promise<{
  manifests: Array<Descriptor & { annotations?: Record<string, string> }>;
  [k: string]: unknown;
}> {
  return JSON.parse(await readFile(join(store.dir, "index.json"), "utf8"));
}

async function listDir(path: string): Promise<string[]> {
  return (await readdir(path).catch(() => [])).sort();
}

async function tags(store: OciLayoutStore): Promise<string[]> {
  const out: string[] = [];
  for await (const tag of store.listTags()) out.push(tag);
  return out;
}

describe("OciLayoutStore.open", () => {
  it("creates a standard layout only when asked, and reopens it", async () => {
    const dir = join(tempDir(), "a", "layout");
    expect((await rejection(OciLayoutStore.open(dir))).code).toBe("ERR_NOT_FOUND");
    const store = await OciLayoutStore.open(dir, { create: true });
    expect(store.dir).toBe(dir);
    expect(store.name).toBe(`oci:${dir}`);
    expect(JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"))).toEqual({
      imageLayoutVersion: "1.0.0",
    });
    expect(await indexJson(store)).toEqual({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: [] });
    expect((await lstat(join(dir, "blobs", "sha256"))).isDirectory()).toBe(true);
    const again = await OciLayoutStore.open(dir);
    expect(await tags(again)).toEqual([]);
    // An existing directory without oci-layout is not a layout.
    const plain = tempDir();
    expect((await rejection(OciLayoutStore.open(plain))).reason).toBe("no-layout");
  });

  it("rejects malformed layouts with typed errors", async () => {
    const cases: Array<[string, Record<string, string>, string]> = [
      ["oci-layout not JSON", { "oci-layout": "nope" }, "ERR_INVALID_MANIFEST"],
      ["oci-layout without version", { "oci-layout": "{}" }, "ERR_INVALID_MANIFEST"],
      ["unknown layout version", { "oci-layout": '{"imageLayoutVersion":"2.0.0"}' }, "ERR_UNSUPPORTED"],
      ["index.json not JSON", { "index.json": "{" }, "ERR_INVALID_MANIFEST"],
      ["index.json array", { "index.json": "[]" }, "ERR_INVALID_MANIFEST"],
      [
        "index.json schemaVersion 1",
        { "index.json": '{"schemaVersion":1,"manifests":[]}' },
        "ERR_INVALID_MANIFEST",
      ],
      [
        "index.json wrong mediaType",
        { "index.json": '{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}' },
        "ERR_INVALID_MANIFEST",
      ],
      [
        "manifests not an array",
        { "index.json": '{"schemaVersion":2,"manifests":{}}' },
        "ERR_INVALID_MANIFEST",
      ],
      [
        "digest with ../",
        {
          "index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:../../etc/passwd","size":1}]}`,
        },
        "ERR_INVALID_MANIFEST",
      ],
      [
        "negative size",
        {
          "index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:${"a".repeat(64)}","size":-1}]}`,
        },
        "ERR_INVALID_MANIFEST",
      ],
      [
        "non-string annotation",
        {
          "index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:${"a".repeat(64)}","size":1,"annotations":{"k":1}}]}`,
        },
        "ERR_INVALID_MANIFEST",
      ],
    ];
    for (const [name, files, code] of cases) {
      const dir = tempDir();
      await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
      for (const [file, content] of Object.entries(files)) await writeFile(join(dir, file), content);
      const error = await rejection(OciLayoutStore.open(dir));
      expect(error.code, name).toBe(code);
    }
  });

  it("refuses a file, and symbolic links that could lead outside the layout", async () => {
    const file = join(tempDir(), "file");
    await writeFile(file, "x");
    expect((await rejection(OciLayoutStore.open(file))).code).toBe("ERR_NOT_DIRECTORY");

    const outside = tempDir();
    const dir = tempDir();
    await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await mkdir(join(dir, "blobs"));
    await symlink(outside, join(dir, "blobs", "sha256"));
    expect((await rejection(OciLayoutStore.open(dir))).reason).toBe("bad-layout");

    const dir2 = tempDir();
    await writeFile(join(dir2, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(outside, "index.json"), '{"schemaVersion":2,"manifests":[]}');
    await symlink(join(outside, "index.json"), join(dir2, "index.json"));
    expect((await rejection(OciLayoutStore.open(dir2))).code).toBe("ERR_INVALID_MANIFEST");
  });

  it("treats a missing index.json as empty (oras creates it lazily) and keeps foreign fields", async () => {
    const dir = tempDir();
    await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    const store = await OciLayoutStore.open(dir);
    expect(await tags(store)).toEqual([]);
    const { manifest } = await pushSimple(store, "x", "v1");
    await writeFile(
      join(dir, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        annotations: { mine: "yes" },
        manifests: [
          { ...manifest, platform: { os: "linux" }, annotations: { [REF_NAME]: "v1", other: "o" } },
        ],
      }),
    );
    await store.tag(manifest, "v2");
    const index = await indexJson(store);
    expect(index.annotations).toEqual({ mine: "yes" });
    expect(index.manifests[0]).toEqual({
      ...manifest,
      platform: { os: "linux" },
      annotations: { [REF_NAME]: "v1", other: "o" },
    });
    expect(await tags(store)).toEqual(["v1", "v2"]);
  });
});

describe("blobs", () => {
  it("pushes bytes, files and streams; stat, fetch and open them", async () => {
    const store = await newStore();
    const a = blobOf("from memory");
    const b = blobOf("from a file".repeat(1000));
    const c = blobOf(new Uint8Array(3 * 1024 * 1024).fill(7));
    const file = join(tempDir(), "b");
    await writeFile(file, b.bytes);
    const progress: number[] = [];
    await store.pushBlob(a.descriptor, a.bytes);
    await store.pushBlob(b.descriptor, { path: file });
    await store.pushBlob(
      c.descriptor,
      {
        stream: () =>
          new ReadableStream({
            start(controller) {
              controller.enqueue(c.bytes.subarray(0, 1000));
              controller.enqueue(c.bytes.subarray(1000));
              controller.close();
            },
          }),
      },
      { onProgress: (p) => progress.push(p.bytes) },
    );
    expect(progress).toEqual([1000, c.bytes.length]);
    for (const blob of [a, b, c]) {
      expect(await store.statBlob(blob.descriptor.digest)).toBe(blob.bytes.length);
      expect(Buffer.compare(await store.fetchBlob(blob.descriptor), blob.bytes)).toBe(0);
      const path = join(store.dir, "blobs", "sha256", blob.descriptor.digest.slice(7));
      expect(sha256Digest(await readFile(path))).toBe(blob.descriptor.digest);
    }
    const source = await store.openBlob(c.descriptor);
    try {
      expect(source.id).toBe(c.descriptor.digest);
      expect(await source.size()).toBe(c.bytes.length);
      expect(Array.from(await source.read(5, 3))).toEqual([7, 7, 7]);
    } finally {
      await source.close();
    }
    expect(await store.statBlob(sha256Digest(new Uint8Array([1])))).toBeUndefined();
    // Present already: skipped, reported done.
    const again: number[] = [];
    await store.pushBlob(a.descriptor, new Uint8Array(0), { onProgress: (p) => again.push(p.bytes) });
    expect(again).toEqual([a.bytes.length]);
    expect(await listDir(join(store.dir, "ingest"))).toEqual([]);
  });

  it("refuses content that does not match its descriptor, leaving nothing behind", async () => {
    const store = await newStore();
    const good = blobOf("good content");
    const cases: Array<[string, Descriptor, Uint8Array]> = [
      ["wrong digest", { ...good.descriptor, digest: sha256Digest(new Uint8Array([1])) }, good.bytes],
      ["too short", { ...good.descriptor, size: good.bytes.length + 1 }, good.bytes],
      ["too long", { ...good.descriptor, size: good.bytes.length - 1 }, good.bytes],
    ];
    for (const [name, descriptor, bytes] of cases) {
      const error = await rejection(store.pushBlob(descriptor, bytes));
      expect(error.code, name).toBe("ERR_INTEGRITY");
      expect(await store.statBlob(descriptor.digest), name).toBeUndefined();
    }
    // Streams too, and a stream that fails.
    const failing = await rejection(
      store.pushBlob(good.descriptor, {
        stream: () =>
          new ReadableStream({
            pull(controller) {
              controller.error(new Error("boom"));
            },
          }),
      }),
    );
    expect(failing.code).toBe("ERR_IO");
    expect(
      (await rejection(store.pushBlob(good.descriptor, { path: join(tempDir(), "missing") }))).code,
    ).toBe("ERR_NOT_FOUND");
    expect(await listDir(join(store.dir, "blobs", "sha256"))).toEqual([]);
    expect(await listDir(join(store.dir, "ingest"))).toEqual([]);
  });

  it("an abort rejects with the signal's reason and leaves nothing behind", async () => {
    const store = await newStore();
    const blob = blobOf("x".repeat(10));
    const controller = new AbortController();
    const reason = new Error("stop");
    const promise = store.pushBlob(
      blob.descriptor,
      {
        stream: () =>
          new ReadableStream({
            pull(c) {
              c.enqueue(blob.bytes.subarray(0, 1));
              controller.abort(reason);
            },
          }),
      },
      { signal: controller.signal },
    );
    await expect(promise).rejects.toBe(reason);
    await expect(store.fetchBlob(blob.descriptor, { signal: controller.signal })).rejects.toBe(reason);
    // A stream that stalls forever is abandoned on abort.
    const stalled = new AbortController();
    const pending = store.pushBlob(
      blob.descriptor,
      { stream: () => new ReadableStream({ pull: () => new Promise(() => {}) }) },
      { signal: stalled.signal },
    );
    setTimeout(() => stalled.abort(reason), 20);
    await expect(pending).rejects.toBe(reason);
    expect(await listDir(join(store.dir, "blobs", "sha256"))).toEqual([]);
    expect(await listDir(join(store.dir, "ingest"))).toEqual([]);
  });

  it("detects corrupt blobs: wrong content, wrong size, symbolic links; replaces them on push", async () => {
    const store = await newStore();
    const blob = blobOf("the real content");
    const path = join(store.dir, "blobs", "sha256", blob.descriptor.digest.slice(7));
    await writeFile(path, "the fake content"); // same length
    expect((await rejection(store.fetchBlob(blob.descriptor))).reason).toBe("digest-mismatch");
    await writeFile(path, "short");
    expect((await rejection(store.fetchBlob(blob.descriptor))).reason).toBe("size-mismatch");
    expect((await rejection(store.openBlob(blob.descriptor))).reason).toBe("size-mismatch");
    await store.pushBlob(blob.descriptor, blob.bytes); // wrong size: replaced
    expect(await readFile(path, "utf8")).toBe("the real content");

    const target = join(tempDir(), "outside");
    await writeFile(target, blob.bytes);
    await rm(path);
    await symlink(target, path);
    expect(await store.statBlob(blob.descriptor.digest)).toBeUndefined();
    expect((await rejection(store.fetchBlob(blob.descriptor))).code).toBe("ERR_INTEGRITY");
    expect((await rejection(store.openBlob(blob.descriptor))).code).toBe("ERR_INTEGRITY");
    await store.pushBlob(blob.descriptor, blob.bytes);
    expect((await lstat(path)).isFile()).toBe(true);
    expect(await readFile(target, "utf8")).toBe("the real content"); // the link's target was not written
  });

  it("checks digests before they become paths, and limits", async () => {
    const store = await newStore();
    const blob = blobOf("x");
    const bad = [
      "sha256:../../../etc/passwd",
      `sha256:${"A".repeat(64)}`,
      "",
      "sha256:abc",
      `sha256:${"a".repeat(64)}/`,
    ];
    for (const digest of bad) {
      expect((await rejection(store.fetchBlob({ ...blob.descriptor, digest }))).code, digest).toBe(
        "ERR_INVALID_ARGUMENT",
      );
      expect((await rejection(store.statBlob(digest))).code, digest).toBe("ERR_INVALID_ARGUMENT");
      expect((await rejection(store.pushBlob({ ...blob.descriptor, digest }, blob.bytes))).code).toBe(
        "ERR_INVALID_ARGUMENT",
      );
    }
    expect((await rejection(store.statBlob(`sha512:${"a".repeat(128)}`))).code).toBe("ERR_UNSUPPORTED");
    expect((await rejection(store.fetchBlob({ ...blob.descriptor, size: -1 }))).code).toBe(
      "ERR_INVALID_ARGUMENT",
    );
    await store.pushBlob(blob.descriptor, blob.bytes);
    expect((await rejection(store.fetchBlob(blob.descriptor, { maxBytes: 0 }))).code).toBe(
      "ERR_LIMIT_EXCEEDED",
    );
    expect((await rejection(store.fetchBlob(blobOf("missing").descriptor))).code).toBe("ERR_NOT_FOUND");
    expect((await rejection(store.openBlob(blobOf("missing").descriptor))).code).toBe("ERR_NOT_FOUND");
  });

  it("concurrent pushes of the same blob store it once", async () => {
    const store = await newStore();
    const other = await OciLayoutStore.open(store.dir);
    const blob = blobOf("y".repeat(200_000));
    await Promise.all(
      Array.from({ length: 16 }, (_, i) => (i % 2 ? store : other).pushBlob(blob.descriptor, blob.bytes)),
    );
    expect(await listDir(join(store.dir, "blobs", "sha256"))).toEqual([blob.descriptor.digest.slice(7)]);
    expect(Buffer.compare(await store.fetchBlob(blob.descriptor), blob.bytes)).toBe(0);
    expect(await listDir(join(store.dir, "ingest"))).toEqual([]);
  });
});

describe("manifests and tags", () => {
  it("pushes, resolves and fetches a tagged manifest byte for byte", async () => {
    const store = await newStore();
    const { manifest, bytes } = await pushSimple(store, "layer", "v1");
    expect(manifest).toEqual({
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      digest: sha256Digest(bytes),
      size: bytes.length,
    });
    expect(await store.resolve("v1")).toEqual(manifest);
    expect(await store.resolve(manifest.digest)).toEqual(manifest);
    for (const ref of ["v1", manifest.digest]) {
      const fetched = await store.fetchManifest(ref);
      expect(fetched.descriptor).toEqual(manifest);
      expect(Buffer.compare(fetched.bytes, bytes)).toBe(0);
    }
    expect((await indexJson(store)).manifests).toEqual([{ ...manifest, annotations: { [REF_NAME]: "v1" } }]);
    expect((await rejection(store.fetchManifest("v1", { maxBytes: 10 }))).code).toBe("ERR_LIMIT_EXCEEDED");
    expect((await rejection(store.resolve("nope"))).code).toBe("ERR_NOT_FOUND");
    expect((await rejection(store.resolve(sha256Digest(new Uint8Array([9]))))).code).toBe("ERR_NOT_FOUND");
    expect((await rejection(store.resolve("sha256:zz"))).code).toBe("ERR_INVALID_ARGUMENT");
    expect((await rejection(store.resolve(""))).code).toBe("ERR_INVALID_ARGUMENT");
    // A tampered manifest blob is caught.
    await writeFile(
      join(store.dir, "blobs", "sha256", manifest.digest.slice(7)),
      bytes.map((b) => (b === 0x31 ? 0x32 : b)),
    );
    expect((await rejection(store.fetchManifest("v1"))).code).toBe("ERR_INTEGRITY");
  });

  it("lists untagged manifests too, and resolves a manifest known only as a blob", async () => {
    const store = await newStore();
    const { manifest, layer } = await pushSimple(store, "untagged");
    expect((await indexJson(store)).manifests).toEqual([manifest]);
    expect(await tags(store)).toEqual([]);
    // Pushing it again by digest does not duplicate the entry.
    await pushSimple(store, "untagged");
    expect((await indexJson(store)).manifests).toHaveLength(1);
    // A manifest blob that index.json does not list (written by other tools) still resolves by digest.
    const loose = imageManifest([layer]);
    await store.pushBlob(loose.descriptor, loose.bytes);
    expect(await store.resolve(loose.descriptor.digest)).toEqual(loose.descriptor);
    // A layer is not a manifest.
    expect((await rejection(store.resolve(layer.digest))).reason).toBe("not-a-manifest");
  });

  it("refuses manifests whose blobs are missing, leaving index.json unchanged", async () => {
    const store = await newStore();
    const layer = blobOf("never pushed");
    await store.pushBlob(EMPTY_CONFIG.descriptor, EMPTY_CONFIG.bytes);
    const m = imageManifest([layer.descriptor]);
    const error = await rejection(store.pushManifest(m.bytes, MEDIA_TYPE_OCI_MANIFEST, { tag: "v1" }));
    expect(error.code).toBe("ERR_NOT_FOUND");
    expect(error.subject).toBe(layer.descriptor.digest);
    await store.pushBlob(layer.descriptor, layer.bytes);
    const noConfig = imageManifest([layer.descriptor], { config: blobOf("{}x", "application/x").descriptor });
    expect(
      (await rejection(store.pushManifest(noConfig.bytes, MEDIA_TYPE_OCI_MANIFEST, { tag: "v1" }))).code,
    ).toBe("ERR_NOT_FOUND");
    const wrongSize = imageManifest([{ ...layer.descriptor, size: 1 }]);
    expect((await rejection(store.pushManifest(wrongSize.bytes, MEDIA_TYPE_OCI_MANIFEST))).code).toBe(
      "ERR_INTEGRITY",
    );
    // An image index whose child manifest is missing.
    const index = blobOf(
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: [m.descriptor] }),
      INDEX_MEDIA_TYPE,
    );
    expect((await rejection(store.pushManifest(index.bytes, INDEX_MEDIA_TYPE, { tag: "v1" }))).code).toBe(
      "ERR_NOT_FOUND",
    );
    expect((await indexJson(store)).manifests).toEqual([]);
    expect(await store.statBlob(m.descriptor.digest)).toBeUndefined();
    // Once the child is there, the index is accepted.
    await store.pushManifest(m.bytes, MEDIA_TYPE_OCI_MANIFEST);
    const pushed = await store.pushManifest(index.bytes, INDEX_MEDIA_TYPE, { tag: "v1" });
    expect((await store.fetchManifest("v1")).descriptor).toEqual(pushed);
  });

  it("refuses malformed manifests and arguments", async () => {
    const store = await newStore();
    const bad: Array<[string, Uint8Array, string, string]> = [
      ["not JSON", new TextEncoder().encode("{"), MEDIA_TYPE_OCI_MANIFEST, "ERR_INVALID_MANIFEST"],
      ["array", new TextEncoder().encode("[]"), MEDIA_TYPE_OCI_MANIFEST, "ERR_INVALID_MANIFEST"],
      ["media type mismatch", imageManifest([]).bytes, INDEX_MEDIA_TYPE, "ERR_INVALID_MANIFEST"],
      [
        "layer with ../ digest",
        new TextEncoder().encode(
          JSON.stringify({ schemaVersion: 2, layers: [{ mediaType: "a", digest: "sha256:../x", size: 1 }] }),
        ),
        MEDIA_TYPE_OCI_MANIFEST,
        "ERR_INVALID_MANIFEST",
      ],
      [
        "sha512 layer",
        new TextEncoder().encode(
          JSON.stringify({
            schemaVersion: 2,
            layers: [{ mediaType: "a", digest: `sha512:${"a".repeat(128)}`, size: 1 }],
          }),
        ),
        MEDIA_TYPE_OCI_MANIFEST,
        "ERR_UNSUPPORTED",
      ],
      ["empty media type", imageManifest([]).bytes, "", "ERR_INVALID_ARGUMENT"],
    ];
    for (const [name, bytes, mediaType, code] of bad) {
      expect((await rejection(store.pushManifest(bytes, mediaType))).code, name).toBe(code);
    }
    for (const tag of ["", "-x", "a/b", "a:b", "x".repeat(129), "../x"]) {
      expect((await rejection(pushSimple(store, "l", tag))).code, tag).toBe("ERR_INVALID_ARGUMENT");
    }
    expect((await indexJson(store)).manifests).toEqual([]);
  });

  it("moves a tag atomically; the old manifest stays listed untagged", async () => {
    const store = await newStore();
    const a = await pushSimple(store, "a", "v1");
    const b = await pushSimple(store, "b", "v1");
    expect(await store.resolve("v1")).toEqual(b.manifest);
    let entries = (await indexJson(store)).manifests;
    expect(entries).toEqual([a.manifest, { ...b.manifest, annotations: { [REF_NAME]: "v1" } }]);
    await store.tag(a.manifest, "v2");
    await store.tag(a.manifest, "_x.y-Z");
    await store.tag(b.manifest, "v2");
    entries = (await indexJson(store)).manifests;
    expect(entries.filter((e) => e.annotations?.[REF_NAME] === "v2")).toEqual([
      { ...b.manifest, annotations: { [REF_NAME]: "v2" } },
    ]);
    // Each manifest is listed, with no redundant untagged entries.
    expect(entries.filter((e) => e.annotations === undefined)).toEqual([]);
    expect(await tags(store)).toEqual(["_x.y-Z", "v1", "v2"]);
    // Re-tagging is idempotent.
    const before = await readFile(join(store.dir, "index.json"), "utf8");
    await store.tag(b.manifest, "v2");
    expect(await readFile(join(store.dir, "index.json"), "utf8")).toBe(before);
    // The tagged manifest must exist.
    const missing = blobOf("no such manifest", MEDIA_TYPE_OCI_MANIFEST).descriptor;
    expect((await rejection(store.tag(missing, "v3"))).code).toBe("ERR_NOT_FOUND");
    expect((await rejection(store.tag(a.manifest, "bad tag"))).code).toBe("ERR_INVALID_ARGUMENT");
    expect((await rejection(store.tag({ ...a.manifest, size: a.manifest.size + 1 }, "v3"))).code).toBe(
      "ERR_INTEGRITY",
    );
  });

  it("deletes a manifest with its tags and blob, keeping its layers", async () => {
    const store = await newStore();
    const a = await pushSimple(store, "a", "v1");
    await store.tag(a.manifest, "v2");
    const b = await pushSimple(store, "b", "keep");
    await store.deleteManifest(a.manifest.digest);
    expect(await tags(store)).toEqual(["keep"]);
    expect((await rejection(store.resolve(a.manifest.digest))).code).toBe("ERR_NOT_FOUND");
    expect(await store.statBlob(a.manifest.digest)).toBeUndefined();
    expect(await store.statBlob(a.layer.digest)).toBe(1);
    expect((await rejection(store.deleteManifest(a.manifest.digest))).code).toBe("ERR_NOT_FOUND");
    expect(await store.resolve("keep")).toEqual(b.manifest);
    // A manifest an image index still lists keeps its blob.
    const child = await pushSimple(store, "child");
    const index = blobOf(
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: [child.manifest] }),
      INDEX_MEDIA_TYPE,
    );
    await store.pushManifest(index.bytes, INDEX_MEDIA_TYPE, { tag: "multi" });
    await store.deleteManifest(child.manifest.digest);
    expect(await store.statBlob(child.manifest.digest)).toBe(child.manifest.size);
  });
});

describe("referrers", () => {
  it("finds manifests by subject, shaped like a referrers response, and filters by artifactType", async () => {
    const store = await newStore();
    const subject = await pushSimple(store, "archive", "v1");
    const signature = await pushSimple(store, "signature bundle", undefined, {
      artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      subject: subject.manifest,
    });
    const attestation = await pushSimple(store, "attestation", undefined, {
      config: EMPTY_CONFIG.descriptor,
      subject: subject.manifest,
      annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z", [REF_NAME]: "inside" },
    });
    await pushSimple(store, "unrelated", "v2");
    const all = await store.referrers(subject.manifest.digest);
    expect(all).toEqual([
      { ...signature.manifest, artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json" },
      {
        ...attestation.manifest,
        artifactType: "application/vnd.oci.empty.v1+json",
        annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z", [REF_NAME]: "inside" },
      },
    ]);
    expect(
      await store.referrers(subject.manifest.digest, {
        artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      }),
    ).toEqual([all[0]]);
    expect(await store.referrers(subject.manifest.digest, { artifactType: "x/y" })).toEqual([]);
    expect(await store.referrers(signature.manifest.digest)).toEqual([]);
    // index.json entries carry the artifact type and annotations (without a ref.name: they are untagged).
    const entries = (await indexJson(store)).manifests;
    expect(entries.find((e) => e.digest === signature.manifest.digest)?.artifactType).toBe(
      "application/vnd.dev.sigstore.bundle.v0.3+json",
    );
    expect(entries.find((e) => e.digest === attestation.manifest.digest)?.annotations).toEqual({
      "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
    });
    expect(await tags(store)).toEqual(["v1", "v2"]);
    // A fresh store (no cache) finds the same; a deleted referrer is gone.
    const fresh = await OciLayoutStore.open(store.dir);
    expect(await fresh.referrers(subject.manifest.digest)).toEqual(all);
    await fresh.deleteManifest(signature.manifest.digest);
    expect(await fresh.referrers(subject.manifest.digest)).toEqual([all[1]]);
    expect((await rejection(store.referrers("sha256:bad"))).code).toBe("ERR_INVALID_ARGUMENT");
  });

  it("reads a sha256-<hex> tag-schema index (copied from a registry without a referrers API)", async () => {
    const store = await newStore();
    const subject = await pushSimple(store, "archive", "v1");
    const remote = {
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      digest: sha256Digest(new Uint8Array([1])),
      size: 5,
      artifactType: "t/x",
    };
    const fallback = blobOf(
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: [remote] }),
      INDEX_MEDIA_TYPE,
    );
    // Written as other tools would (the listed manifest is not in this layout).
    await store.pushBlob(fallback.descriptor, fallback.bytes);
    const index = await indexJson(store);
    index.manifests.push({
      ...fallback.descriptor,
      annotations: { [REF_NAME]: `sha256-${subject.manifest.digest.slice(7)}` },
    });
    await writeFile(join(store.dir, "index.json"), JSON.stringify(index));
    expect(await store.referrers(subject.manifest.digest)).toEqual([remote]);
    expect(await store.referrers(subject.manifest.digest, { artifactType: "t/y" })).toEqual([]);
  });
});

describe("hostile index.json entries", () => {
  it("keeps non-sha256 entries but refuses to resolve them; skips missing blobs", async () => {
    const store = await newStore();
    const good = await pushSimple(store, "good", "v1");
    const index = await indexJson(store);
    index.manifests.push(
      {
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        digest: `sha512:${"a".repeat(128)}`,
        size: 10,
        annotations: { [REF_NAME]: "odd" },
      },
      {
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        digest: sha256Digest(new Uint8Array([5])),
        size: 10,
        annotations: { [REF_NAME]: "gone" },
      },
    );
    await writeFile(join(store.dir, "index.json"), JSON.stringify(index));
    expect(await tags(store)).toEqual(["gone", "odd", "v1"]);
    expect((await rejection(store.resolve("odd"))).code).toBe("ERR_UNSUPPORTED");
    expect((await rejection(store.fetchManifest("gone"))).code).toBe("ERR_NOT_FOUND");
    expect(await store.referrers(good.manifest.digest)).toEqual([]);
    await store.tag(good.manifest, "v2");
    expect((await indexJson(store)).manifests).toHaveLength(4);
  });
});

describe("lifecycle", () => {
  it("close is idempotent; every operation afterwards is ERR_CLOSED", async () => {
    const store = await newStore();
    const { manifest, layer } = await pushSimple(store, "x", "v1");
    {
      await using disposable = await OciLayoutStore.open(store.dir);
      expect(await disposable.resolve("v1")).toEqual(manifest);
    }
    await store.close();
    await store.close();
    const ops: Array<Promise<unknown>> = [
      store.resolve("v1"),
      store.fetchManifest("v1"),
      store.pushManifest(new Uint8Array(), MEDIA_TYPE_OCI_MANIFEST),
      store.tag(manifest, "v2"),
      tags(store),
      store.deleteManifest(manifest.digest),
      store.statBlob(layer.digest),
      store.fetchBlob(layer),
      store.openBlob(layer),
      store.pushBlob(layer, new Uint8Array()),
      store.referrers(manifest.digest),
    ];
    for (const op of ops) expect((await rejection(op)).code).toBe("ERR_CLOSED");
  });

  it("an aborted signal rejects every operation with its reason", async () => {
    const store = await newStore();
    const { manifest, layer } = await pushSimple(store, "x", "v1");
    const controller = new AbortController();
    const reason = new Error("aborted");
    controller.abort(reason);
    const signal = controller.signal;
    await expect(store.resolve("v1", { signal })).rejects.toBe(reason);
    await expect(store.fetchManifest("v1", { signal })).rejects.toBe(reason);
    await expect(store.tag(manifest, "v2", { signal })).rejects.toBe(reason);
    await expect(store.deleteManifest(manifest.digest, { signal })).rejects.toBe(reason);
    await expect(store.openBlob(layer, { signal })).rejects.toBe(reason);
    await expect(store.referrers(manifest.digest, { signal })).rejects.toBe(reason);
    await expect(OciLayoutStore.open(store.dir, { signal })).rejects.toBe(reason);
    expect(await tags(store)).toEqual(["v1"]);
  });
});

describe("concurrency", () => {
  it("concurrent tag updates from async tasks on several store instances lose nothing", async () => {
    const first = await newStore();
    const stores = [first, await OciLayoutStore.open(first.dir), await OciLayoutStore.open(first.dir)];
    const pushed = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const store = stores[i % stores.length]!;
        const { manifest } = await pushSimple(store, `task ${i}`, `t${i}`);
        await store.tag(manifest, "latest");
        return manifest;
      }),
    );
    const entries = (await indexJson(first)).manifests;
    for (const [i, manifest] of pushed.entries()) expect(await first.resolve(`t${i}`)).toEqual(manifest);
    expect(entries.filter((e) => e.annotations?.[REF_NAME] === "latest")).toHaveLength(1);
    expect(pushed.map((m) => m.digest)).toContain((await first.resolve("latest")).digest);
    expect(entries).toHaveLength(25);
    expect(await listDir(join(first.dir, "ingest"))).toEqual([]);
    expect(await listDir(first.dir)).toEqual(["blobs", "index.json", "ingest", "oci-layout"]);
  });

  it("several processes updating one layout never corrupt index.json nor lose an entry", async () => {
    const store = await newStore();
    const workers = 4;
    const count = 8;
    const runs = Array.from({ length: workers }, (_, id) => {
      const child = spawn(
        process.execPath,
        ["--conditions=source", "--no-warnings", worker, store.dir, String(id), String(count)],
        {
          cwd: packageDir,
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      return new Promise<Record<string, string>>((resolve, reject) => {
        child.on("close", (code) =>
          code === 0
            ? resolve(JSON.parse(stdout))
            : reject(new Error(`worker ${id} exited ${code}: ${stderr}`)),
        );
      });
    });
    const results = await Promise.all(runs);
    const all = Object.assign({}, ...results) as Record<string, string>;
    expect(Object.keys(all)).toHaveLength(workers * count);
    for (const [tag, digest] of Object.entries(all))
      expect((await store.resolve(tag)).digest, tag).toBe(digest);
    const entries = (await indexJson(store)).manifests;
    expect(entries.filter((e) => e.annotations?.[REF_NAME] === "latest")).toHaveLength(1);
    expect(Object.values(all)).toContain((await store.resolve("latest")).digest);
    // Each tagged manifest, the shared-layer manifest (untagged) and `latest`: once each.
    const keys = entries.map((e) => `${e.digest} ${e.annotations?.[REF_NAME]}`);
    expect(new Set(keys).size).toBe(entries.length);
    expect(entries).toHaveLength(workers * count + 2);
    expect(await listDir(join(store.dir, "ingest"))).toEqual([]);
    expect(await listDir(store.dir)).toEqual(["blobs", "index.json", "ingest", "oci-layout"]);
  });

  it("recovers stale locks (dead holder, or too old) and times out on a live one", async () => {
    const store = await newStore();
    const { manifest } = await pushSimple(store, "x", "v1");
    const lock = join(store.dir, "index.json.lock");
    // Held by a process that died without releasing it (same host and pid namespace).
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ["--conditions=source", "--no-warnings", lockHolder, store.dir], {
        cwd: packageDir,
        stdio: "inherit",
      });
      child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`lock holder exited ${code}`))));
    });
    expect((await lstat(lock)).isFile()).toBe(true);
    await store.tag(manifest, "v2");
    await expect(lstat(lock)).rejects.toThrow();
    // Held by another host, and too old.
    await writeFile(lock, JSON.stringify({ pid: 1, host: "elsewhere", token: "t", created: 0 }));
    const old = new Date(Date.now() - 120_000);
    await utimes(lock, old, old);
    await store.tag(manifest, "v3");
    // Garbage but old.
    await writeFile(lock, "");
    await utimes(lock, old, old);
    await store.tag(manifest, "v4");
    expect(await tags(store)).toEqual(["v1", "v2", "v3", "v4"]);
    // A live holder (this process), fresh: bounded wait, typed error, index untouched.
    const release = await acquireFileLock(lock, {
      tempDir: join(store.dir, "ingest"),
      timeoutMs: 1000,
      staleMs: 60_000,
    });
    const impatient = await OciLayoutStore.open(store.dir, { lockTimeoutMs: 150 });
    const started = Date.now();
    const error = await rejection(impatient.tag(manifest, "v5"));
    expect(error.code).toBe("ERR_IO");
    expect(error.reason).toBe("lock-timeout");
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await tags(store)).toEqual(["v1", "v2", "v3", "v4"]);
    // The lock file is not the impatient store's to remove: it is still there until its holder releases it.
    expect((await lstat(lock)).isFile()).toBe(true);
    await release();
    await expect(lstat(lock)).rejects.toThrow();
    await impatient.tag(manifest, "v5");
  });
});
