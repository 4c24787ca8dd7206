import { createHmac } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EMPTY_CONFIG_DIGEST, isBlobError, MemoryCache, parseManifest } from "@blobkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../test/registry-server.ts";
import { pseudoRandomBytes, RecordingAgent, readTree, type TreeFile, writeTree } from "../test/support.ts";
import { anonymousCredentials } from "./auth/index.ts";
import { Client, type ClientOptions } from "./client.ts";
import type { Policy, Signer } from "./policy.ts";
import { RegistryStore } from "./registry-store.ts";

// The Client against the real docker-registry (anonymous mode) and OCI layouts on disk.

let registry: RunningRegistry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "blobkit-client-"));
});

afterAll(async () => {
  await registry?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

let treeCounter = 0;
async function makeTree(files: readonly TreeFile[]): Promise<string> {
  const dir = join(work, `tree-${treeCounter++}`);
  await writeTree(dir, files);
  return dir;
}

const FILES: TreeFile[] = [
  { path: "README.md", content: "# hello\n".repeat(200) },
  { path: "bin/run.sh", content: "#!/bin/sh\necho hi\n", mode: 0o755 },
  { path: "config/app.json", content: JSON.stringify({ a: 1, b: [1, 2, 3] }) },
  { path: "config/empty", content: "" },
  { path: "data/random.bin", content: pseudoRandomBytes(3 * 1024 * 1024 + 17, 7) },
  { path: "docs.md", content: "x" },
  { path: "docs/a.txt", content: "a".repeat(5000) },
];

function client(options: ClientOptions = {}): Client {
  return new Client({ credentials: anonymousCredentials, ...options });
}

/** A signer for tests: an HMAC over the manifest bytes (the real sigstore signer lives in policy-sigstore). */
const hmacSigner: Signer = {
  async sign(subject) {
    const mac = createHmac("sha256", "k").update(subject.bytes).digest("hex");
    return {
      artifactType: "application/vnd.blobkit.test.signature",
      layers: [
        {
          mediaType: "application/vnd.blobkit.test.signature.v1+json",
          bytes: new TextEncoder().encode(JSON.stringify({ digest: subject.descriptor.digest, mac })),
        },
      ],
      annotations: { "org.example.signed": "yes" },
    };
  },
};

async function expectTreeEquals(archiveDir: string, files: readonly TreeFile[]): Promise<void> {
  const tree = await readTree(archiveDir);
  expect([...tree.keys()].sort()).toEqual(files.map((f) => f.path).sort());
  for (const file of files) {
    const got = tree.get(file.path);
    const want = typeof file.content === "string" ? Buffer.from(file.content) : Buffer.from(file.content);
    expect(got?.bytes.equals(want), file.path).toBe(true);
    expect(got?.mode, file.path).toBe(file.mode ?? 0o644);
  }
}

describe("Client on a registry", () => {
  it("pushes a directory and pulls it back lazily: bytes and modes match", async () => {
    const src = await makeTree(FILES);
    const c = client();
    try {
      const progress: string[] = [];
      const pushed = await c.push(`${registry.host}/acme/app:v1`, src, {
        tags: ["stable"],
        annotations: { "org.example.team": "infra" },
        onProgress: (p) => progress.push(p.phase === "create" ? `create:${p.stage}` : `upload:${p.blob}`),
      });
      expect(pushed.reference).toBe(`${registry.host}/acme/app:v1@${pushed.descriptor.digest}`);
      expect(pushed.tags).toEqual(["v1", "stable"]);
      expect(pushed.fileCount).toBe(FILES.length);
      expect(progress).toContain("create:done");
      expect(progress.indexOf("upload:data")).toBeLessThan(progress.indexOf("upload:index"));

      const archive = await c.pull(`${registry.host}/acme/app:stable`);
      try {
        expect(archive.fileCount).toBe(FILES.length);
        expect(await archive.readFile("config/app.json", { encoding: "utf8" })).toBe(FILES[2]?.content);
        expect((await archive.stat("bin/run.sh")).mode & 0o777).toBe(0o755);
        const dest = join(work, "extract-1");
        await archive.extract(dest, { preserveMode: true });
        await expectTreeEquals(dest, FILES);
      } finally {
        await archive.close();
      }
      const fetched = await c.fetch(`${registry.host}/acme/app:v1`);
      expect(fetched.descriptor.digest).toBe(pushed.descriptor.digest);
      expect(fetched.manifest.annotations["org.example.team"]).toBe("infra");
      const inspected = await c.inspect(`${registry.host}/acme/app@${pushed.descriptor.digest}`);
      expect(inspected.fileCount).toBe(FILES.length);
      expect(inspected.totalSize).toBe(FILES.reduce((n, f) => n + Buffer.byteLength(f.content), 0));
      expect(inspected.referrers).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("reads cold with 3 requests and warm with one request carrying exactly the file's stored bytes", async () => {
    const src = await makeTree(FILES);
    const agent = new RecordingAgent();
    const cache = new MemoryCache();
    const c = client({ dispatcher: agent, cache });
    try {
      await c.push(`${registry.host}/acme/warm:v1`, src);
      agent.reset();
      const cold = await c.pull(`${registry.host}/acme/warm:v1`, { skipCache: true });
      try {
        await cold.readFile("README.md");
        // Cold: the manifest by tag, the index, the file's range — nothing else.
        expect(agent.requests.map((r) => `${r.method} ${r.path.split("/").slice(-2, -1)[0]}`)).toEqual([
          "GET manifests",
          "GET blobs",
          "GET blobs",
        ]);
      } finally {
        await cold.close();
      }
      agent.reset();
      const warm = await c.pull(`${registry.host}/acme/warm:v1`);
      try {
        const stat = await warm.stat("docs/a.txt");
        expect(await warm.readFile("docs/a.txt", { encoding: "utf8" })).toBe("a".repeat(5000));
        expect(agent.requests.map((r) => r.method)).toEqual(["GET"]);
        const range = agent.requests[0]?.headers.range;
        const match = /^bytes=([0-9]+)-([0-9]+)$/.exec(range ?? "");
        expect(match).not.toBeNull();
        expect(Number(match?.[2]) - Number(match?.[1]) + 1).toBe(stat.storedSize);
      } finally {
        await warm.close();
      }
    } finally {
      await c.close();
      await agent.close();
    }
  });

  it("re-pushing a tag then signing signs the new digest; referrers work without the referrers API", async () => {
    const c = client({ cache: new MemoryCache() });
    try {
      const first = await c.push(
        `${registry.host}/acme/signed:v1`,
        await makeTree([{ path: "a", content: "1" }]),
      );
      // Warm the ref cache with the first digest.
      expect((await c.fetch(`${registry.host}/acme/signed:v1`)).descriptor.digest).toBe(
        first.descriptor.digest,
      );
      const second = await c.push(
        `${registry.host}/acme/signed:v1`,
        await makeTree([{ path: "a", content: "2" }]),
      );
      expect(second.descriptor.digest).not.toBe(first.descriptor.digest);
      const signature = await c.sign(`${registry.host}/acme/signed:v1`, hmacSigner);
      const referrers = await c.referrers(`${registry.host}/acme/signed:v1`);
      expect(referrers).toEqual([
        expect.objectContaining({
          digest: signature.digest,
          artifactType: "application/vnd.blobkit.test.signature",
          annotations: { "org.example.signed": "yes" },
        }),
      ]);
      expect(await c.referrers(`${registry.host}/acme/signed@${first.descriptor.digest}`)).toEqual([]);
      expect(
        await c.referrers(`${registry.host}/acme/signed:v1`, { artifactType: "application/other" }),
      ).toEqual([]);
      // docker-registry 2.8 has no referrers API: the tag-schema index was written.
      const store = new RegistryStore({ host: registry.host, repository: "acme/signed" });
      try {
        const tags: string[] = [];
        for await (const tag of store.listTags()) tags.push(tag);
        expect(tags).toContain(second.descriptor.digest.replace(":", "-"));
        const referrer = await store.fetchManifest(signature.digest);
        const json = JSON.parse(new TextDecoder().decode(referrer.bytes)) as { subject: { digest: string } };
        expect(json.subject.digest).toBe(second.descriptor.digest);
      } finally {
        await store.close();
      }
      const inspected = await c.inspect(`${registry.host}/acme/signed:v1`);
      expect(inspected.referrers.map((r) => r.digest)).toEqual([signature.digest]);
    } finally {
      await c.close();
    }
  });

  it("runs policies on every fetch, cached or not, and fails closed", async () => {
    const cache = new MemoryCache();
    let allow = true;
    let calls = 0;
    const policy: Policy = {
      name: "test-gate",
      async evaluate(ctx) {
        calls++;
        expect(ctx.manifest.digest).toBe(ctx.descriptor.digest);
        return allow ? { allow: true } : { allow: false, reasons: ["not today"] };
      },
    };
    const throwing: Policy = {
      name: "broken",
      async evaluate() {
        throw new Error("network down");
      },
    };
    const ref = `${registry.host}/acme/policy:v1`;
    const pusher = client();
    await pusher.push(ref, await makeTree([{ path: "a", content: "1" }]));
    await pusher.close();
    const c = client({ cache, policies: [policy] });
    try {
      const archive = await c.pull(ref);
      await archive.close();
      allow = false;
      const denied = await c.pull(ref).catch((e: unknown) => e);
      expect(isBlobError(denied, "ERR_POLICY")).toBe(true);
      expect(String((denied as Error).message)).toContain("not today");
      expect(calls).toBe(2);
    } finally {
      await c.close();
    }
    const broken = client({ cache, policies: [throwing] });
    try {
      const error = await broken.fetch(ref).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_POLICY")).toBe(true);
      expect((error as Error).message).toContain("network down");
    } finally {
      await broken.close();
    }
  });

  it("a policy that reads the index shares one index fetch with the pull", async () => {
    const ref = `${registry.host}/acme/policy-index:v1`;
    const pusher = client();
    const pushed = await pusher.push(
      ref,
      await makeTree([
        { path: "a", content: "x" },
        { path: "b", content: "y" },
      ]),
    );
    await pusher.close();
    const agent = new RecordingAgent();
    let seen = 0;
    const c = client({
      dispatcher: agent,
      policies: [
        {
          name: "index-reader",
          async evaluate(ctx) {
            seen = (await ctx.index?.())?.length ?? -1;
            return { allow: seen === 2 };
          },
        },
      ],
    });
    try {
      const archive = await c.pull(ref);
      await archive.close();
      expect(seen).toBe(2);
      const indexGets = agent.requests.filter(
        (r) => r.method === "GET" && r.path.endsWith(pushed.index.digest),
      );
      expect(indexGets).toHaveLength(1);
    } finally {
      await c.close();
      await agent.close();
    }
  });

  it("a tampered data blob in the registry's storage fails the read with ERR_INTEGRITY", async () => {
    const c = client();
    try {
      // Its own content: blobs are shared by every repository of the registry's storage.
      const files = [...FILES, { path: "zz-last.bin", content: pseudoRandomBytes(5000, 99) }];
      const pushed = await c.push(`${registry.host}/acme/tamper:v1`, await makeTree(files));
      const path = registry.blobPath(pushed.data.digest);
      const bytes = await readFile(path);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
      await writeFile(path, bytes);
      const archive = await c.pull(`${registry.host}/acme/tamper:v1`);
      try {
        // Only the entry stored last in the data blob covers the flipped byte.
        const all = await Promise.allSettled((await archive.glob("**")).map((p) => archive.readFile(p)));
        expect(all.filter((r) => r.status === "rejected")).toHaveLength(1);
        const rejected = all.find((r) => r.status === "rejected") as PromiseRejectedResult;
        expect(isBlobError(rejected.reason, "ERR_INTEGRITY")).toBe(true);
      } finally {
        await archive.close();
      }
    } finally {
      await c.close();
    }
  });

  it("publishes data → index → config → manifest → extra tags; an interrupted push publishes nothing", async () => {
    const agent = new RecordingAgent();
    const c = client({ dispatcher: agent });
    try {
      const files = [...FILES, { path: "order.txt", content: `order ${Math.random()}` }];
      const pushed = await c.push(`${registry.host}/acme/order:v1`, await makeTree(files), {
        tags: ["v1.0"],
      });
      const writes = agent.requests
        .filter((r) => r.method === "PUT")
        .map((r) => {
          const digest = /digest=(sha256%3A|sha256:)([a-f0-9]{64})/.exec(r.path)?.[2];
          if (digest !== undefined) return `blob:${digest}`;
          return `manifest:${r.path.split("/manifests/")[1]}`;
        });
      const hex = (d: string): string => d.slice("sha256:".length);
      // The empty config blob is uploaded only if an earlier push has not stored it yet.
      const config = `blob:${hex(EMPTY_CONFIG_DIGEST)}`;
      expect(writes.filter((w) => w !== config)).toEqual([
        `blob:${hex(pushed.data.digest)}`,
        `blob:${hex(pushed.index.digest)}`,
        "manifest:v1",
        "manifest:v1.0",
      ]);
      if (writes.includes(config)) expect(writes.indexOf(config)).toBe(2);

      // Abort while the data blob is being uploaded: no tag, no manifest.
      const controller = new AbortController();
      const big = [{ path: "big.bin", content: pseudoRandomBytes(8 * 1024 * 1024, 21) }];
      const error = await c
        .push(`${registry.host}/acme/interrupted:v1`, await makeTree(big), {
          signal: controller.signal,
          onProgress: (p) => {
            if (p.phase === "upload" && p.blob === "data" && p.bytes > 0)
              controller.abort(new Error("user stop"));
          },
        })
        .catch((e: unknown) => e);
      expect((error as Error).message).toBe("user stop");
      const missing = await c.fetch(`${registry.host}/acme/interrupted:v1`).catch((e: unknown) => e);
      expect(isBlobError(missing, "ERR_NOT_FOUND")).toBe(true);
    } finally {
      await c.close();
      await agent.close();
    }
  });

  it("missing references are ERR_NOT_FOUND; pushing to a digest reference is refused", async () => {
    const c = client();
    try {
      const missing = await c.fetch(`${registry.host}/acme/nothing:v1`).catch((e: unknown) => e);
      expect(isBlobError(missing, "ERR_NOT_FOUND")).toBe(true);
      const error = await c
        .push(`${registry.host}/acme/x@sha256:${"0".repeat(64)}`, work)
        .catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_INVALID_ARGUMENT")).toBe(true);
    } finally {
      await c.close();
    }
  });

  it("uploads large blobs in resumable chunks and skips blobs the registry already has", async () => {
    const agent = new RecordingAgent();
    const c = client({
      dispatcher: agent,
      registry: { monolithicUploadMax: 64 * 1024, uploadChunkSize: 256 * 1024 },
    });
    try {
      const files = [{ path: "big.bin", content: pseudoRandomBytes(1024 * 1024 + 3, 11) }];
      const src = await makeTree(files);
      const pushed = await c.push(`${registry.host}/acme/chunked:v1`, src);
      const expected: string[] = [];
      for (let offset = 0; offset < pushed.data.size; offset += 256 * 1024) {
        expected.push(`${offset}-${Math.min(pushed.data.size, offset + 256 * 1024) - 1}`);
      }
      expect(expected.length).toBe(5);
      const patches = agent.requests.filter((r) => r.method === "PATCH");
      expect(patches.map((r) => r.headers["content-range"])).toEqual(expected);
      agent.reset();
      await c.push(`${registry.host}/acme/chunked:v2`, src);
      expect(agent.requests.filter((r) => r.method === "PATCH" || r.method === "POST")).toEqual([]);
      const archive = await c.pull(`${registry.host}/acme/chunked:v2`);
      try {
        expect(
          Buffer.from(await archive.readFile("big.bin")).equals(Buffer.from(files[0]?.content ?? [])),
        ).toBe(true);
      } finally {
        await archive.close();
      }
    } finally {
      await c.close();
      await agent.close();
    }
  });

  it("copies registry → layout → registry keeping the digest, mounting within one registry", async () => {
    const agent = new RecordingAgent();
    const c = client({ dispatcher: agent });
    try {
      const pushed = await c.push(`${registry.host}/acme/copy:v1`, await makeTree(FILES));
      await c.sign(`${registry.host}/acme/copy:v1`, hmacSigner);
      const layout = join(work, "copy-layout");
      const toLayout = await c.copy(`${registry.host}/acme/copy:v1`, `oci:${layout}:v1`);
      expect(toLayout.digest).toBe(pushed.descriptor.digest);
      const back = await c.copy(`oci:${layout}:v1`, `${registry.host}/acme/copy-back:v1`);
      expect(back.digest).toBe(pushed.descriptor.digest);
      expect((await c.fetch(`${registry.host}/acme/copy-back:v1`)).descriptor.digest).toBe(
        pushed.descriptor.digest,
      );
      // The signature came along both times.
      expect(await c.referrers(`${registry.host}/acme/copy-back:v1`)).toHaveLength(1);
      expect(await c.referrers(`oci:${layout}:v1`)).toHaveLength(1);

      agent.reset();
      await c.copy(`${registry.host}/acme/copy:v1`, `${registry.host}/acme/mounted:v1`);
      const mounts = agent.requests.filter((r) => r.method === "POST" && r.path.includes("mount="));
      expect(mounts.length).toBeGreaterThan(0);
      expect(
        agent.requests.filter(
          (r) => r.method === "PATCH" || (r.method === "PUT" && r.path.includes("/blobs/")),
        ),
      ).toEqual([]);
      const archive = await c.pull(`${registry.host}/acme/mounted:v1`);
      try {
        const dest = join(work, "extract-mounted");
        await archive.extract(dest, { preserveMode: true });
        await expectTreeEquals(dest, FILES);
      } finally {
        await archive.close();
      }
    } finally {
      await c.close();
      await agent.close();
    }
  });

  it("round-trips 10 000 files", async () => {
    const files: TreeFile[] = [];
    for (let i = 0; i < 10_000; i++) {
      files.push({
        path: `d${i % 37}/sub${i % 5}/f${i}.txt`,
        content: i % 10 === 0 ? pseudoRandomBytes(2000 + (i % 300), i + 1) : `file ${i}\n`.repeat(i % 20),
        mode: i % 7 === 0 ? 0o755 : 0o644,
      });
    }
    const src = await makeTree(files);
    const c = client();
    try {
      const pushed = await c.push(`${registry.host}/acme/many:v1`, src);
      expect(pushed.fileCount).toBe(10_000);
      const archive = await c.pull(`${registry.host}/acme/many:v1`);
      try {
        const dest = join(work, "extract-many");
        await archive.extract(dest, { preserveMode: true });
        await expectTreeEquals(dest, files);
      } finally {
        await archive.close();
      }
    } finally {
      await c.close();
    }
  });
});

describe("Client on an OCI layout", () => {
  it("pushes to and pulls from oci:<dir> with no server", async () => {
    const layout = join(work, "layout-a");
    const c = client();
    try {
      const pushed = await c.push(`oci:${layout}:v1`, await makeTree(FILES), { tags: ["latest"] });
      const manifest = parseManifest(
        await readFile(join(layout, "blobs/sha256", pushed.descriptor.digest.slice("sha256:".length))),
        { expectedDigest: pushed.descriptor.digest },
      );
      expect(manifest.data.digest).toBe(pushed.data.digest);
      const archive = await c.pull(`oci:${layout}`);
      try {
        const dest = join(work, "extract-layout");
        await archive.extract(dest, { preserveMode: true });
        await expectTreeEquals(dest, FILES);
      } finally {
        await archive.close();
      }
      const signature = await c.sign(`oci:${layout}:v1`, hmacSigner);
      expect((await c.inspect(`oci:${layout}:v1`)).referrers.map((r) => r.digest)).toEqual([
        signature.digest,
      ]);
      const missing = await c.pull(`oci:${join(work, "no-such-layout")}:v1`).catch((e: unknown) => e);
      expect(isBlobError(missing, "ERR_NOT_FOUND")).toBe(true);
    } finally {
      await c.close();
    }
  });
});
