import { mkdtemp, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBlobError } from "@blobkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../test/registry-server.ts";
import { digestSigner, pseudoRandomBytes, type TreeFile, writeTree } from "../test/support.ts";
import { startWildProxy } from "../test/wild-proxy.ts";
import { anonymousCredentials, staticCredentials } from "./auth/index.ts";
import { Client } from "./client.ts";
import { RegistryStore } from "./registry-store.ts";

// Registries as they behave in the wild, simulated by a proxy in front of the real docker-registry:
// Range ignored, blob GETs redirected to another origin, 429 bursts, no referrers API.

let anonymous: RunningRegistry;
let protectedRegistry: RunningRegistry;
let work: string;

beforeAll(async () => {
  [anonymous, protectedRegistry] = await Promise.all([startRegistry(), startRegistry({ auth: "htpasswd" })]);
  work = await mkdtemp(join(tmpdir(), "blobkit-wild-"));
});

afterAll(async () => {
  await Promise.all([anonymous?.stop(), protectedRegistry?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

const FILES: TreeFile[] = [
  { path: "a/config.json", content: '{"ok":true}' },
  { path: "a/model.bin", content: pseudoRandomBytes(600_000, 5) },
  { path: "b/notes.txt", content: "note\n".repeat(1000) },
];

let trees = 0;
async function tree(): Promise<string> {
  const dir = join(work, `tree-${trees++}`);
  // A unique file per tree: blobs are shared by all repositories of one registry.
  await writeTree(dir, [...FILES, { path: "unique.txt", content: `tree ${trees} ${Math.random()}` }]);
  return dir;
}

describe("a registry that ignores Range (200 with the whole blob)", () => {
  it("fails reads with ERR_RANGE_NOT_SUPPORTED by default and serves them in discard mode", async () => {
    const proxy = await startWildProxy(anonymous.origin, { ignoreRange: true });
    const ref = `${proxy.host}/wild/norange:v1`;
    const strict = new Client({ credentials: anonymousCredentials });
    const lenient = new Client({
      credentials: anonymousCredentials,
      registry: { onRangeIgnored: "discard" },
    });
    try {
      await strict.push(ref, await tree());
      const archive = await strict.pull(ref);
      try {
        const error = await archive.readFile("b/notes.txt").catch((e: unknown) => e);
        expect(isBlobError(error, "ERR_RANGE_NOT_SUPPORTED")).toBe(true);
      } finally {
        await archive.close();
      }
      const ok = await lenient.pull(ref);
      try {
        expect(await ok.readFile("b/notes.txt", { encoding: "utf8" })).toBe("note\n".repeat(1000));
        expect(
          Buffer.from(await ok.readFile("a/model.bin")).equals(Buffer.from(FILES[1]?.content as Uint8Array)),
        ).toBe(true);
      } finally {
        await ok.close();
      }
    } finally {
      await strict.close();
      await lenient.close();
      await proxy.stop();
    }
  });
});

describe("a registry that redirects blob GETs to another origin", () => {
  it("follows the redirect and never sends the registry credentials there", async () => {
    const basic = `Basic ${Buffer.from(`${protectedRegistry.username}:${protectedRegistry.password}`).toString("base64")}`;
    const proxy = await startWildProxy(protectedRegistry.origin, { redirectBlobs: true }, basic);
    const client = new Client({
      credentials: staticCredentials({
        [proxy.host]: { username: protectedRegistry.username, password: protectedRegistry.password },
      }),
    });
    try {
      const ref = `${proxy.host}/wild/redirect:v1`;
      await client.push(ref, await tree());
      const archive = await client.pull(ref, { skipCache: true });
      try {
        expect(await archive.readFile("a/config.json", { encoding: "utf8" })).toBe('{"ok":true}');
        expect((await archive.readFile("a/model.bin")).length).toBe(600_000);
      } finally {
        await archive.close();
      }
      // The index (whole-blob GET) and the data (range GETs) were both served by the second origin…
      expect(proxy.seenByMirror.length).toBeGreaterThanOrEqual(2);
      expect(proxy.seenByMirror.some((r) => r.range !== undefined)).toBe(true);
      // …which never saw the client's credentials, while the registry did.
      expect(proxy.seenByMirror.every((r) => r.authorization === undefined)).toBe(true);
      expect(proxy.seen.some((r) => r.authorization === basic)).toBe(true);
    } finally {
      await client.close();
      await proxy.stop();
    }
  });

  it("fails with ERR_UNAUTHORIZED without credentials, never leaking the password into the error", async () => {
    const client = new Client({
      credentials: staticCredentials({
        [protectedRegistry.host]: { username: protectedRegistry.username, password: "wrong-password-123" },
      }),
    });
    try {
      const error = await client
        .push(`${protectedRegistry.host}/wild/denied:v1`, await tree())
        .catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_UNAUTHORIZED")).toBe(true);
      expect(String(error)).not.toContain("wrong-password-123");
      expect(JSON.stringify(error)).not.toContain("wrong-password-123");
    } finally {
      await client.close();
    }
  });
});

describe("a registry that sends 429 bursts and has no referrers API", () => {
  it("retries after Retry-After and completes push, pull, sign and referrers", async () => {
    const proxy = await startWildProxy(anonymous.origin, { burst429: 5, burstAfter: 2 });
    const client = new Client({ credentials: anonymousCredentials, registry: { retryDelayMs: 10 } });
    try {
      const ref = `${proxy.host}/wild/throttled:v1`;
      const pushed = await client.push(ref, await tree());
      const archive = await client.pull(ref);
      try {
        expect(await archive.readFile("b/notes.txt", { encoding: "utf8" })).toBe("note\n".repeat(1000));
      } finally {
        await archive.close();
      }
      expect(proxy.throttled()).toBe(5);
      const signature = await client.sign(ref, digestSigner);
      expect((await client.referrers(ref)).map((r) => r.digest)).toEqual([signature.digest]);
      // The referrers endpoint answered 404, so the tag schema was used.
      const hex = pushed.descriptor.digest.slice("sha256:".length);
      expect(proxy.seen.some((r) => r.url.includes(`/referrers/sha256:${hex}`))).toBe(true);
      expect(proxy.seen.some((r) => r.method === "GET" && r.url.endsWith(`/manifests/sha256-${hex}`))).toBe(
        true,
      );
    } finally {
      await client.close();
      await proxy.stop();
    }
  });

  it("gives up with ERR_NETWORK when the throttling outlasts the retries", async () => {
    const proxy = await startWildProxy(anonymous.origin, { burst429: 1000 });
    const client = new Client({
      credentials: anonymousCredentials,
      registry: { retries: 2, retryDelayMs: 1 },
    });
    try {
      const error = await client.fetch(`${proxy.host}/wild/throttled:v1`).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_NETWORK")).toBe(true);
      expect(proxy.throttled()).toBe(3);
    } finally {
      await client.close();
      await proxy.stop();
    }
  });
});

describe("a registry whose responses break off mid-body", () => {
  it("fetches the manifest and the index again after a reset, and gives up with ERR_NETWORK when it persists", async () => {
    const pusher = new Client({ credentials: anonymousCredentials });
    const ref = `${anonymous.host}/wild/truncated:v1`;
    const pushed = await pusher.push(ref, await tree());
    await pusher.close();
    const once = await startWildProxy(anonymous.origin, {
      truncate: 2,
      truncatePath: /\/(manifests\/v1|blobs\/)/,
    });
    const client = new Client({ credentials: anonymousCredentials });
    try {
      const archive = await client.pull(`${once.host}/wild/truncated:v1`);
      try {
        expect(await archive.readFile("a/config.json", { encoding: "utf8" })).toBe('{"ok":true}');
      } finally {
        await archive.close();
      }
      expect(once.truncated()).toBe(2);
    } finally {
      await client.close();
      await once.stop();
    }
    const always = await startWildProxy(anonymous.origin, {
      truncate: 1000,
      truncatePath: new RegExp(`/blobs/${pushed.index.digest}$`),
    });
    const failing = new Client({ credentials: anonymousCredentials });
    try {
      const error = await failing.pull(`${always.host}/wild/truncated:v1`).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_NETWORK")).toBe(true);
      expect((error as { reason?: string }).reason).toBe("body");
      expect(always.truncated()).toBe(3);
    } finally {
      await failing.close();
      await always.stop();
    }
  });
});

describe("a connection reset in the middle of a chunked upload", () => {
  it("asks the registry where the upload stands and resumes from there", async () => {
    const proxy = await startWildProxy(anonymous.origin, { resetPatch: 2 });
    const client = new Client({
      credentials: anonymousCredentials,
      registry: { monolithicUploadMax: 64 * 1024, uploadChunkSize: 256 * 1024, retryDelayMs: 10 },
    });
    try {
      const dir = join(work, "resume");
      await writeTree(dir, [{ path: "big.bin", content: pseudoRandomBytes(700_000, 31) }]);
      const ref = `${proxy.host}/wild/resume:v1`;
      await client.push(ref, dir);
      expect(proxy.resets()).toBe(1);
      // After the reset: a status request (GET on the upload), then PATCHes from the offset it reported.
      const uploads = proxy.seen.filter((r) => r.url.includes("/blobs/uploads/"));
      const status = uploads.findIndex((r) => r.method === "GET");
      expect(status).toBeGreaterThan(0);
      // The chunk after it starts where the registry's upload stood (after the first chunk), not at 0.
      const resumed = uploads.slice(status).find((r) => r.method === "PATCH");
      expect(resumed?.contentRange).toMatch(/^262144-/);
      const archive = await client.pull(ref, { skipCache: true });
      try {
        expect(
          Buffer.from(await archive.readFile("big.bin")).equals(Buffer.from(pseudoRandomBytes(700_000, 31))),
        ).toBe(true);
      } finally {
        await archive.close();
      }
    } finally {
      await client.close();
      await proxy.stop();
    }
  });
});

describe("an upload whose first chunk is lost", () => {
  it("starts a fresh session (the registry's 0-0 is ambiguous) and leaves no file descriptor behind", async () => {
    const proxy = await startWildProxy(anonymous.origin, { resetPatch: 1 });
    const client = new Client({
      credentials: anonymousCredentials,
      registry: { monolithicUploadMax: 64 * 1024, uploadChunkSize: 256 * 1024, retryDelayMs: 10 },
    });
    try {
      const dir = join(work, "first-chunk");
      await writeTree(dir, [{ path: "big.bin", content: pseudoRandomBytes(600_000, 41) }]);
      const ref = `${proxy.host}/wild/first-chunk:v1`;
      await client.push(ref, dir);
      expect(proxy.resets()).toBe(1);
      const archive = await client.pull(ref, { skipCache: true });
      try {
        expect(
          Buffer.from(await archive.readFile("big.bin")).equals(Buffer.from(pseudoRandomBytes(600_000, 41))),
        ).toBe(true);
      } finally {
        await archive.close();
      }
      // The dropped request's read stream of the (now deleted) spool file was closed.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const open = await Promise.all(
        (await readdir("/proc/self/fd")).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => "")),
      );
      expect(open.filter((target) => target.includes("blobkit-push-"))).toEqual([]);
    } finally {
      await client.close();
      await proxy.stop();
    }
  });
});

describe("tag listing and deletion", () => {
  it("follows Link pagination of a registry that pages tag lists, and deletes manifests by digest", async () => {
    const client = new Client({ credentials: anonymousCredentials });
    const ref = `${anonymous.host}/wild/paged:v1`;
    const pushed = await client.push(ref, await tree(), { tags: ["a", "b", "c", "d"] });
    await client.close();
    const proxy = await startWildProxy(anonymous.origin, { paginateTags: true });
    const paged = new RegistryStore({ host: proxy.host, repository: "wild/paged", tagPageSize: 2 });
    const store = new RegistryStore({ host: anonymous.host, repository: "wild/paged" });
    try {
      const tags: string[] = [];
      for await (const tag of paged.listTags()) tags.push(tag);
      expect(tags).toEqual(["a", "b", "c", "d", "v1"]);
      expect(proxy.seen.filter((r) => r.url.includes("/tags/list")).map((r) => r.url)).toEqual([
        "/v2/wild/paged/tags/list?n=2",
        "/v2/wild/paged/tags/list?n=2&last=b",
        "/v2/wild/paged/tags/list?n=2&last=d",
      ]);
      await store.deleteManifest(pushed.descriptor.digest);
      const gone = await store.fetchManifest(pushed.descriptor.digest).catch((e: unknown) => e);
      expect(isBlobError(gone, "ERR_NOT_FOUND")).toBe(true);
    } finally {
      await paged.close();
      await store.close();
      await proxy.stop();
    }
  });
});
