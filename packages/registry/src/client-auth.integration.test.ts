import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBlobError } from "@blobkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../test/registry-server.ts";
import { digestSigner, pseudoRandomBytes, RecordingAgent, writeTree } from "../test/support.ts";
import { dockerCredentials, staticCredentials } from "./auth/index.ts";
import { Client } from "./client.ts";

// The Client end to end against the real docker-registry with htpasswd Basic auth and with bearer tokens
// from the harness's token issuer: push, pull (range reads carry the auth too), sign, referrers, tag.

let basic: RunningRegistry;
let token: RunningRegistry;
let work: string;
let source: string;

beforeAll(async () => {
  [basic, token] = await Promise.all([startRegistry({ auth: "htpasswd" }), startRegistry({ auth: "token" })]);
  work = await mkdtemp(join(tmpdir(), "blobkit-client-auth-"));
  source = join(work, "src");
  await writeTree(source, [
    { path: "a.txt", content: "alpha\n".repeat(100) },
    { path: "b/c.bin", content: pseudoRandomBytes(300_000, 2) },
  ]);
});

afterAll(async () => {
  await Promise.all([basic?.stop(), token?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

async function roundTrip(client: Client, ref: string): Promise<void> {
  const pushed = await client.push(ref, source, { tags: ["extra"] });
  const archive = await client.pull(ref, { skipCache: true });
  try {
    expect(await archive.readFile("a.txt", { encoding: "utf8" })).toBe("alpha\n".repeat(100));
    expect((await archive.readFile("b/c.bin")).length).toBe(300_000);
  } finally {
    await archive.close();
  }
  const signature = await client.sign(ref, digestSigner);
  expect((await client.referrers(ref)).map((r) => r.digest)).toEqual([signature.digest]);
  expect((await client.fetch(ref.replace(/:v1$/, ":extra"))).descriptor.digest).toBe(
    pushed.descriptor.digest,
  );
}

describe("Client with htpasswd (Basic) auth", () => {
  it("round-trips with static credentials", async () => {
    const client = new Client({
      credentials: staticCredentials({
        [basic.host]: { username: basic.username, password: basic.password },
      }),
    });
    try {
      await roundTrip(client, `${basic.host}/auth/basic:v1`);
    } finally {
      await client.close();
    }
  });

  it("finds credentials the way Docker does (config.json written by `docker login`)", async () => {
    const dir = join(work, "docker-config");
    await mkdir(dir);
    const auth = Buffer.from(`${basic.username}:${basic.password}`).toString("base64");
    await writeFile(join(dir, "config.json"), JSON.stringify({ auths: { [basic.host]: { auth } } }));
    const client = new Client({ credentials: dockerCredentials({ configPath: join(dir, "config.json") }) });
    try {
      await roundTrip(client, `${basic.host}/auth/docker-config:v1`);
    } finally {
      await client.close();
    }
  });

  it("a wrong password is ERR_UNAUTHORIZED and appears nowhere in the error", async () => {
    const client = new Client({
      credentials: staticCredentials({
        [basic.host]: { username: basic.username, password: "hunter2-wrong" },
      }),
    });
    try {
      for (const attempt of [
        () => client.fetch(`${basic.host}/auth/basic:v1`),
        () => client.push(`${basic.host}/auth/denied:v1`, source),
      ]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(isBlobError(error, "ERR_UNAUTHORIZED")).toBe(true);
        expect(`${String(error)} ${JSON.stringify(error)} ${(error as Error).stack}`).not.toContain(
          "hunter2-wrong",
        );
      }
    } finally {
      await client.close();
    }
  });
});

describe("Client with bearer tokens", () => {
  it("round-trips, reusing cached tokens instead of asking the issuer per request", async () => {
    const agent = new RecordingAgent();
    const client = new Client({
      dispatcher: agent,
      credentials: staticCredentials({
        [token.host]: { username: token.username, password: token.password },
      }),
    });
    try {
      token.tokenIssuer?.reset();
      await roundTrip(client, `${token.host}/auth/token:v1`);
      const issued = token.tokenIssuer?.issued ?? 0;
      const registryRequests = agent.requests.filter((r) => r.path.startsWith("/v2/")).length;
      expect(issued).toBeGreaterThan(0);
      // One token per scope set, not one per request.
      expect(issued).toBeLessThanOrEqual(4);
      expect(registryRequests).toBeGreaterThan(issued * 4);
      // Every registry request after the first challenge carried the bearer token.
      const authorized = agent.requests.filter((r) => r.path.startsWith("/v2/") && r.headers.authorization);
      expect(authorized.every((r) => r.headers.authorization?.startsWith("Bearer "))).toBe(true);
    } finally {
      await client.close();
      await agent.close();
    }
  });

  it("works with an identity token (OAuth2 refresh-token flow)", async () => {
    const client = new Client({
      credentials: staticCredentials({
        [token.host]: { identityToken: token.tokenIssuer?.refreshToken ?? "" },
      }),
    });
    try {
      await roundTrip(client, `${token.host}/auth/identity:v1`);
    } finally {
      await client.close();
    }
  });

  it("anonymous clients are refused with ERR_UNAUTHORIZED", async () => {
    const client = new Client({ credentials: staticCredentials({}) });
    try {
      const error = await client.push(`${token.host}/auth/anon:v1`, source).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_UNAUTHORIZED")).toBe(true);
    } finally {
      await client.close();
    }
  });
});
