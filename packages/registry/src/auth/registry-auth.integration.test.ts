import { createHash, randomBytes } from "node:crypto";
import { BlobError, isBlobError } from "@blobkit/core";
import { type Dispatcher, request } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../../test/registry-server.ts";
import { anonymousCredentials, type CredentialStore, staticCredentials } from "./credentials.ts";
import { RegistryAuth } from "./registry-auth.ts";

// RegistryAuth against the real Debian docker-registry in its three modes, driven by plain undici requests in
// the loop a distribution client runs: authorization → request → on 401 respond → retry once.

/** One registry request with authentication; 401/403 in the end become ERR_UNAUTHORIZED / ERR_DENIED. */
async function call(
  auth: RegistryAuth,
  registry: RunningRegistry,
  method: Dispatcher.HttpMethod,
  target: string,
  scopes: string[],
  body?: Uint8Array,
): Promise<Dispatcher.ResponseData> {
  const url = new URL(target, registry.origin);
  let retried = false;
  for (;;) {
    const sent = (await auth.authorization(registry.host, scopes)) ?? null;
    const headers: Record<string, string> =
      body === undefined ? {} : { "content-type": "application/octet-stream" };
    if (sent !== null) headers.authorization = sent;
    const response = await request(url, { method, headers, body });
    if (response.statusCode === 401) {
      await response.body.dump();
      // respond also runs after the retry: it then says whether a token lacking the scope is a denial.
      const again = await auth.respond(registry.host, scopes, response.headers["www-authenticate"], { sent });
      if (again && !retried) {
        retried = true;
        continue;
      }
      throw new BlobError("ERR_UNAUTHORIZED", `${method} ${url.pathname}: unauthorized`);
    }
    if (response.statusCode === 403) {
      await response.body.dump();
      throw new BlobError("ERR_DENIED", `${method} ${url.pathname}: denied`);
    }
    return response;
  }
}

async function pushBlob(
  auth: RegistryAuth,
  registry: RunningRegistry,
  repo: string,
  bytes: Uint8Array,
): Promise<string> {
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  const scopes = [`repository:${repo}:pull,push`];
  const started = await call(auth, registry, "POST", `/v2/${repo}/blobs/uploads/`, scopes);
  await started.body.dump();
  expect(started.statusCode).toBe(202);
  const location = new URL(String(started.headers.location), registry.origin);
  location.searchParams.set("digest", digest);
  const done = await call(auth, registry, "PUT", location.href, scopes, bytes);
  await done.body.dump();
  expect(done.statusCode).toBe(201);
  return digest;
}

async function pullBlob(
  auth: RegistryAuth,
  registry: RunningRegistry,
  repo: string,
  digest: string,
): Promise<Uint8Array> {
  const response = await call(auth, registry, "GET", `/v2/${repo}/blobs/${digest}`, [
    `repository:${repo}:pull`,
  ]);
  expect(response.statusCode).toBe(200);
  return new Uint8Array(await response.body.arrayBuffer());
}

function withAuth(credentials: CredentialStore): RegistryAuth {
  const auth = new RegistryAuth({ credentials });
  opened.push(auth);
  return auth;
}
const opened: RegistryAuth[] = [];
afterAll(async () => {
  await Promise.all(opened.map((a) => a.close()));
});

async function rejection(promise: Promise<unknown>): Promise<BlobError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isBlobError(error), String(error)).toBe(true);
  return error as BlobError;
}

describe("anonymous registry", () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => registry?.stop());

  it("pushes and pulls without credentials or challenges", async () => {
    const auth = withAuth(anonymousCredentials);
    const bytes = randomBytes(1000);
    const digest = await pushBlob(auth, registry, "acme/anon", bytes);
    expect(Buffer.from(await pullBlob(auth, registry, "acme/anon", digest))).toEqual(bytes);
    expect(await auth.authorization(registry.host, ["repository:acme/anon:pull"])).toBeUndefined();
  });
});

describe("htpasswd registry (Basic)", () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: "htpasswd" });
  });
  afterAll(async () => registry?.stop());

  it("pushes and pulls with the right password", async () => {
    const auth = withAuth(
      staticCredentials({ [registry.origin]: { username: registry.username, password: registry.password } }),
    );
    const bytes = randomBytes(2000);
    const digest = await pushBlob(auth, registry, "acme/basic", bytes);
    expect(Buffer.from(await pullBlob(auth, registry, "acme/basic", digest))).toEqual(bytes);
    expect(await auth.authorization(registry.host, [])).toMatch(/^Basic /);
  });

  it("fails with ERR_UNAUTHORIZED for a wrong password or none, and leaks nothing", async () => {
    const wrong = withAuth(
      staticCredentials({ [registry.host]: { username: registry.username, password: "wrong-Secret-1" } }),
    );
    const error = await rejection(pullBlob(wrong, registry, "acme/basic", `sha256:${"0".repeat(64)}`));
    expect(error.code).toBe("ERR_UNAUTHORIZED");
    expect(String(error)).not.toContain("wrong-Secret-1");
    const none = withAuth(anonymousCredentials);
    expect((await rejection(pullBlob(none, registry, "acme/basic", `sha256:${"0".repeat(64)}`))).code).toBe(
      "ERR_UNAUTHORIZED",
    );
  });
});

describe("token registry (Bearer)", () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry({
      auth: "token",
      tokenIssuer: {
        // The harness user may do everything except push to readonly/*; anonymous callers get nothing.
        grant: (account, resource, requested) =>
          account === undefined
            ? []
            : requested.filter(
                (a) => a === "pull" || (a === "push" && !resource.name.startsWith("readonly/")),
              ),
      },
    });
  });
  afterAll(async () => registry?.stop());
  beforeEach(() => {
    registry.tokenIssuer!.reset();
    registry.tokenIssuer!.expiresIn = 300;
  });

  const login = (): CredentialStore =>
    staticCredentials({ [registry.host]: { username: registry.username, password: registry.password } });

  it("logs in with Basic at the issuer, pushes and pulls, and reuses one token", async () => {
    const issuer = registry.tokenIssuer!;
    const auth = withAuth(login());
    const bytes = randomBytes(3000);
    const digest = await pushBlob(auth, registry, "acme/token", bytes);
    expect(Buffer.from(await pullBlob(auth, registry, "acme/token", digest))).toEqual(bytes);
    expect(Buffer.from(await pullBlob(auth, registry, "acme/token", digest))).toEqual(bytes);
    // POST + PUT + 2 GETs, one token: the pull,push token also covers pull
    expect(issuer.issued).toBe(1);
    expect(issuer.requests[0]).toMatchObject({
      method: "GET",
      grant: "basic",
      account: registry.username,
      scopes: ["repository:acme/token:pull,push"],
      status: 200,
    });
  });

  it("fetches a new token once the cached one expires", async () => {
    const issuer = registry.tokenIssuer!;
    issuer.expiresIn = 1;
    const auth = withAuth(login());
    const digest = await pushBlob(auth, registry, "acme/expiry", randomBytes(100));
    expect(issuer.issued).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await pullBlob(auth, registry, "acme/expiry", digest);
    expect(issuer.issued).toBe(2);
  });

  it("fails with ERR_UNAUTHORIZED for a wrong password, at the token endpoint", async () => {
    const issuer = registry.tokenIssuer!;
    const auth = withAuth(
      staticCredentials({ [registry.host]: { username: registry.username, password: "nope-Secret-2" } }),
    );
    const error = await rejection(pullBlob(auth, registry, "acme/token", `sha256:${"0".repeat(64)}`));
    expect(error.code).toBe("ERR_UNAUTHORIZED");
    expect(error.reason).toBe("token-rejected");
    expect(String(error)).not.toContain("nope-Secret-2");
    expect(issuer.requests.map((r) => r.status)).toEqual([401]);
  });

  it("is ERR_UNAUTHORIZED anonymously and ERR_DENIED when the user lacks the scope", async () => {
    const anonymous = withAuth(anonymousCredentials);
    expect((await rejection(pushBlob(anonymous, registry, "acme/token", randomBytes(10)))).code).toBe(
      "ERR_UNAUTHORIZED",
    );
    const user = withAuth(login());
    const denied = await rejection(pushBlob(user, registry, "readonly/app", randomBytes(10)));
    expect(denied.code).toBe("ERR_DENIED");
  });

  it("exchanges an identity token with the OAuth2 refresh-token POST", async () => {
    const issuer = registry.tokenIssuer!;
    const auth = withAuth(staticCredentials({ [registry.host]: { identityToken: issuer.refreshToken } }));
    const bytes = randomBytes(500);
    const digest = await pushBlob(auth, registry, "acme/oauth", bytes);
    expect(Buffer.from(await pullBlob(auth, registry, "acme/oauth", digest))).toEqual(bytes);
    expect(issuer.requests).toHaveLength(1);
    expect(issuer.requests[0]).toMatchObject({ method: "POST", grant: "refresh_token", status: 200 });
    expect(issuer.requests[0]?.authorization).toBeUndefined();
    const bad = withAuth(staticCredentials({ [registry.host]: { identityToken: "not-a-valid-Refresh-3" } }));
    const error = await rejection(pullBlob(bad, registry, "acme/oauth", digest));
    expect(error.code).toBe("ERR_UNAUTHORIZED");
    expect(String(error)).not.toContain("not-a-valid-Refresh-3");
  });
});
