import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type BlobError, isBlobError } from "@blobkit/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Credential, type CredentialStore, staticCredentials } from "./credentials.ts";
import { RegistryAuth } from "./registry-auth.ts";

// RegistryAuth against a local node:http token endpoint whose behaviour each test scripts. No registry is
// needed: `respond` is fed the challenges a registry would send.

const PASSWORD = "pa55-Word-Secret-9";
const IDENTITY = "identity-Refresh-Secret-7";
const HOST = "registry.test:5000";

interface Seen {
  method: string;
  url: URL;
  authorization: string | undefined;
  body: string;
}

interface TestServer {
  origin: string;
  seen: Seen[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const auths: RegistryAuth[] = [];

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(auths.splice(0).map((a) => a.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(
  handler: (seen: Seen, res: ServerResponse, req: IncomingMessage) => void | Promise<void>,
): Promise<TestServer> {
  const seen: Seen[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const entry: Seen = {
      method: req.method ?? "",
      url: new URL(req.url ?? "/", "http://127.0.0.1"),
      authorization: req.headers.authorization,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    seen.push(entry);
    await handler(entry, res, req);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const result: TestServer = {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  servers.push(result);
  return result;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

let counter = 0;
/** A token endpoint that issues `tok-<n>` tokens. */
const issuing =
  (extra: Record<string, unknown> = {}) =>
  (_seen: Seen, res: ServerResponse): void => {
    counter++;
    json(res, 200, { token: `tok-${counter}`, expires_in: 300, ...extra });
  };

function newAuth(
  credentials?: CredentialStore | Record<string, Credential>,
  timeoutMs?: number,
): RegistryAuth {
  const store =
    credentials === undefined || typeof (credentials as CredentialStore).get === "function"
      ? (credentials as CredentialStore | undefined)
      : staticCredentials(credentials as Record<string, Credential>);
  const auth = new RegistryAuth({ credentials: store, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  auths.push(auth);
  return auth;
}

const bearer = (origin: string, scope = "repository:acme/app:pull", extra = ""): string =>
  `Bearer realm="${origin}/token",service="test-registry",scope="${scope}"${extra}`;

/** The error's whole cause chain as text (String, message, JSON) — none of it may hold a secret. */
function errorText(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null) {
    parts.push(
      String(current),
      (current as Error).message ?? "",
      JSON.stringify(current) ?? "",
      (current as Error).stack ?? "",
    );
    current = (current as Error).cause;
  }
  return parts.join("\n");
}

function expectSafeError(error: unknown, code: string, reason?: string): void {
  expect(isBlobError(error, code as never), String(error)).toBe(true);
  if (reason !== undefined) expect((error as BlobError).reason).toBe(reason);
  const text = errorText(error);
  const basic = Buffer.from(`alice:${PASSWORD}`).toString("base64");
  for (const secret of [PASSWORD, IDENTITY, basic]) expect(text).not.toContain(secret);
}

describe("RegistryAuth: bearer tokens", () => {
  it("fetches a token with Basic credentials, caches it per scope and reuses a wider one", async () => {
    const server = await serve(issuing());
    const auth = newAuth({ [HOST]: { username: "alice", password: PASSWORD } });
    const push = ["repository:acme/app:push,pull"];
    expect(await auth.authorization(HOST, push)).toBeUndefined();
    expect(await auth.respond(HOST, push, bearer(server.origin, "repository:acme/app:pull,push"))).toBe(true);
    expect(server.seen).toHaveLength(1);
    const [seen] = server.seen;
    expect(seen?.method).toBe("GET");
    expect(seen?.url.searchParams.get("service")).toBe("test-registry");
    expect(seen?.url.searchParams.getAll("scope")).toEqual(["repository:acme/app:pull,push"]);
    expect(seen?.url.searchParams.get("account")).toBe("alice");
    expect(seen?.authorization).toBe(`Basic ${Buffer.from(`alice:${PASSWORD}`).toString("base64")}`);
    const header = await auth.authorization(HOST, push);
    expect(header).toMatch(/^Bearer tok-\d+$/);
    // the same token serves a narrower request; another repository needs its own
    expect(await auth.authorization(HOST, ["repository:acme/app:pull"])).toBe(header);
    expect(await auth.authorization(HOST, ["repository:other:pull"])).toBeUndefined();
    expect(await auth.authorization("another.test", push)).toBeUndefined();
    expect(server.seen).toHaveLength(1);
    auth.invalidate(HOST);
    expect(await auth.authorization(HOST, push)).toBeUndefined();
  });

  it("merges the challenge's scopes with the caller's", async () => {
    const server = await serve(issuing());
    const auth = newAuth();
    await auth.respond(
      HOST,
      ["repository:b:pull"],
      bearer(server.origin, "repository:a:pull repository:b:push"),
    );
    expect(server.seen[0]?.url.searchParams.getAll("scope")).toEqual([
      "repository:a:pull",
      "repository:b:pull,push",
    ]);
    // anonymous: no Authorization, no account
    expect(server.seen[0]?.authorization).toBeUndefined();
    expect(server.seen[0]?.url.searchParams.has("account")).toBe(false);
    expect(await auth.authorization(HOST, ["repository:b:pull"])).toMatch(/^Bearer /);
  });

  it("shares one token request between concurrent responders (single flight)", async () => {
    const server = await serve(async (seen, res) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      issuing()(seen, res);
    });
    const auth = newAuth({ [HOST]: { username: "alice", password: PASSWORD } });
    const scopes = ["repository:acme/app:pull"];
    const results = await Promise.all(
      Array.from({ length: 20 }, () => auth.respond(HOST, scopes, bearer(server.origin), { sent: null })),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(server.seen).toHaveLength(1);
    const header = await auth.authorization(HOST, scopes);
    // a late responder whose request carried nothing gets true from the cache, without a request
    expect(await auth.respond(HOST, scopes, bearer(server.origin), { sent: null })).toBe(true);
    // one whose token was rejected gets a fresh token
    expect(await auth.respond(HOST, scopes, bearer(server.origin), { sent: header ?? null })).toBe(true);
    expect(server.seen).toHaveLength(2);
    expect(await auth.authorization(HOST, scopes)).not.toBe(header);
  });

  it("without `sent`: a challenge without error reuses a fresh token, invalid_token fetches a new one", async () => {
    const server = await serve(issuing());
    const auth = newAuth();
    const scopes = ["repository:acme/app:pull"];
    await auth.respond(HOST, scopes, bearer(server.origin));
    const first = await auth.authorization(HOST, scopes);
    // a request that went out anonymously before the token arrived: no error parameter, no new request
    expect(await auth.respond(HOST, scopes, bearer(server.origin))).toBe(true);
    expect(server.seen).toHaveLength(1);
    // the token itself was refused
    expect(await auth.respond(HOST, scopes, bearer(server.origin, scopes[0], ',error="invalid_token"'))).toBe(
      true,
    );
    expect(server.seen).toHaveLength(2);
    expect(await auth.authorization(HOST, scopes)).not.toBe(first);
  });

  it("an aborted waiter leaves no unhandled rejection behind when the shared request fails", async () => {
    const server = await serve(async (_seen, res) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      json(res, 500, {});
    });
    const auth = newAuth();
    const controller = new AbortController();
    const waiter = auth.respond(HOST, [], bearer(server.origin), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("gone")), 10);
    await expect(waiter).rejects.toThrow("gone");
    // the shared request goes on (a 500 is retried twice) and fails with nobody waiting: vitest would report
    // an unhandled rejection
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(server.seen).toHaveLength(3);
    expect(await auth.authorization(HOST, [])).toBeUndefined();
  });

  it("asks a token endpoint that failed transiently (503, reset) again; a refusal is final", async () => {
    let calls = 0;
    const server = await serve((_seen, res, req) => {
      calls++;
      if (calls === 1) json(res, 503, {});
      else if (calls === 2) req.socket.destroy();
      else json(res, 200, { token: "after-retries" });
    });
    const auth = newAuth();
    expect(await auth.respond(HOST, [], bearer(server.origin))).toBe(true);
    expect(await auth.authorization(HOST, [])).toBe("Bearer after-retries");
    expect(calls).toBe(3);
    const refusing = await serve((_seen, res) => json(res, 401, {}));
    const other = newAuth();
    await expect(other.respond(HOST, [], bearer(refusing.origin))).rejects.toMatchObject({
      code: "ERR_UNAUTHORIZED",
    });
    expect(refusing.seen).toHaveLength(1);
  });

  it("keeps tokens until expires_in minus a margin (default 60 s)", async () => {
    let expiresIn: number | undefined;
    const server = await serve((_seen, res) => {
      counter++;
      json(res, 200, {
        access_token: `acc-${counter}`,
        ...(expiresIn === undefined ? {} : { expires_in: expiresIn }),
      });
    });
    vi.useFakeTimers({ toFake: ["Date"] });
    const auth = newAuth();
    const scopes = ["repository:a:pull"];
    await auth.respond(HOST, scopes, bearer(server.origin, scopes[0]));
    expect(await auth.authorization(HOST, scopes)).toMatch(/^Bearer acc-/);
    vi.setSystemTime(Date.now() + 50_000);
    expect(await auth.authorization(HOST, scopes)).toMatch(/^Bearer acc-/);
    vi.setSystemTime(Date.now() + 5_000);
    expect(await auth.authorization(HOST, scopes)).toBeUndefined();
    expiresIn = 3600;
    await auth.respond(HOST, scopes, bearer(server.origin, scopes[0]));
    vi.setSystemTime(Date.now() + 3_585_000);
    expect(await auth.authorization(HOST, scopes)).toMatch(/^Bearer acc-/);
    vi.setSystemTime(Date.now() + 10_000);
    expect(await auth.authorization(HOST, scopes)).toBeUndefined();
    expect(server.seen).toHaveLength(2);
  });

  it("uses the OAuth2 refresh-token POST for an identity token and keeps a rotated refresh token", async () => {
    let n = 0;
    const server = await serve((_seen, res) => {
      n++;
      json(res, 200, { access_token: `acc-${n}`, expires_in: 300, refresh_token: `rotated-${n}` });
    });
    const auth = newAuth({ [HOST]: { identityToken: IDENTITY } });
    expect(await auth.respond(HOST, ["repository:a:pull"], bearer(server.origin, "repository:a:pull"))).toBe(
      true,
    );
    const first = server.seen[0]!;
    expect(first.method).toBe("POST");
    expect(first.authorization).toBeUndefined();
    expect(first.url.search).toBe(""); // the refresh token travels in the body only
    const form = new URLSearchParams(first.body);
    expect(Object.fromEntries(form)).toEqual({
      grant_type: "refresh_token",
      refresh_token: IDENTITY,
      service: "test-registry",
      scope: "repository:a:pull",
      client_id: "blobkit",
    });
    expect(await auth.authorization(HOST, ["repository:a:pull"])).toBe("Bearer acc-1");
    await auth.respond(HOST, ["repository:b:pull"], bearer(server.origin, "repository:b:pull"));
    expect(new URLSearchParams(server.seen[1]!.body).get("refresh_token")).toBe("rotated-1");
  });

  it("sends a static registry token as is and reports when it has nothing new", async () => {
    const server = await serve(issuing());
    const auth = newAuth({ [HOST]: { registryToken: "static-token" } });
    expect(await auth.respond(HOST, ["repository:a:pull"], bearer(server.origin), { sent: null })).toBe(true);
    expect(await auth.authorization(HOST, ["repository:zzz:push"])).toBe("Bearer static-token");
    expect(await auth.respond(HOST, [], bearer(server.origin), { sent: "Bearer static-token" })).toBe(false);
    expect(server.seen).toHaveLength(0);
  });

  it("answers insufficient_scope: ERR_DENIED with credentials, false anonymously", async () => {
    const server = await serve(issuing());
    const scopes = ["repository:a:pull,push"];
    const withCredentials = newAuth({ [HOST]: { username: "alice", password: PASSWORD } });
    await withCredentials.respond(HOST, scopes, bearer(server.origin, scopes[0]));
    const sent = (await withCredentials.authorization(HOST, scopes)) ?? null;
    const denied = await withCredentials
      .respond(HOST, scopes, bearer(server.origin, scopes[0], ',error="insufficient_scope"'), { sent })
      .catch((e: unknown) => e);
    expectSafeError(denied, "ERR_DENIED", "insufficient-scope");
    const anonymous = newAuth();
    await anonymous.respond(HOST, scopes, bearer(server.origin, scopes[0]));
    const anonymousSent = (await anonymous.authorization(HOST, scopes)) ?? null;
    expect(
      await anonymous.respond(HOST, scopes, bearer(server.origin, scopes[0], ',error="insufficient_scope"'), {
        sent: anonymousSent,
      }),
    ).toBe(false);
    expect(server.seen).toHaveLength(2);
  });

  it("maps token endpoint failures to typed errors without secrets", async () => {
    let mode = "401";
    const server = await serve((_seen, res) => {
      if (mode === "401") json(res, 401, { details: `bad password ${PASSWORD}` });
      else if (mode === "403") json(res, 403, {});
      else if (mode === "400") json(res, 400, { error: "invalid_grant" });
      else if (mode === "500") json(res, 500, {});
      else if (mode === "garbage") res.end(`<html>${PASSWORD}</html>`);
      else if (mode === "no-token") json(res, 200, { expires_in: 10 });
      else if (mode === "crlf-token") json(res, 200, { token: "abc\r\nX-Evil: 1" });
      else if (mode === "huge") json(res, 200, { token: "x".repeat(2 * 1024 * 1024) });
    });
    const cases: [string, string, string, Credential][] = [
      ["401", "ERR_UNAUTHORIZED", "token-rejected", { username: "alice", password: PASSWORD }],
      ["403", "ERR_DENIED", "token-denied", { username: "alice", password: PASSWORD }],
      ["400", "ERR_UNAUTHORIZED", "token-rejected", { identityToken: IDENTITY }],
      ["500", "ERR_NETWORK", "token-endpoint-status", { username: "alice", password: PASSWORD }],
      ["garbage", "ERR_NETWORK", "invalid-token-response", { identityToken: IDENTITY }],
      ["no-token", "ERR_NETWORK", "invalid-token-response", { username: "alice", password: PASSWORD }],
      ["crlf-token", "ERR_NETWORK", "invalid-token-response", { username: "alice", password: PASSWORD }],
      ["huge", "ERR_NETWORK", "invalid-token-response", { username: "alice", password: PASSWORD }],
    ];
    for (const [name, code, reason, credential] of cases) {
      mode = name;
      const auth = newAuth({ [HOST]: credential });
      const error = await auth
        .respond(HOST, ["repository:a:pull"], bearer(server.origin))
        .catch((e: unknown) => e);
      expectSafeError(error, code, reason);
      expect(await auth.authorization(HOST, ["repository:a:pull"])).toBeUndefined();
    }
  });

  it("reports unreachable and slow token endpoints as ERR_NETWORK, and honours abort", async () => {
    const closed = await serve(() => {});
    await closed.close();
    servers.length = 0;
    const auth = newAuth({ [HOST]: { username: "alice", password: PASSWORD } }, 300);
    expectSafeError(
      await auth.respond(HOST, [], bearer(closed.origin)).catch((e: unknown) => e),
      "ERR_NETWORK",
      "token-endpoint",
    );
    const slow = await serve(() => {}); // never answers
    const started = Date.now();
    expectSafeError(
      await auth.respond(HOST, [], bearer(slow.origin)).catch((e: unknown) => e),
      "ERR_NETWORK",
      "timeout",
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    const controller = new AbortController();
    const pending = auth.respond(HOST, ["repository:x:pull"], bearer(slow.origin), {
      signal: controller.signal,
    });
    controller.abort(new Error("caller gave up"));
    await expect(pending).rejects.toThrow("caller gave up");
  });
});

describe("RegistryAuth: where credentials go", () => {
  it("refuses plain-HTTP realms off loopback, realms with user info and challenges without a realm", async () => {
    const lookups: string[] = [];
    const auth = newAuth({
      get: async (host) => {
        lookups.push(host);
        return { username: "alice", password: PASSWORD };
      },
    });
    for (const [header, reason] of [
      ['Bearer realm="http://auth.example.com/token",service="s"', "insecure-realm"],
      ['Bearer realm="http://127.0.0.1.nip.io/token"', "insecure-realm"],
      ['Bearer realm="https://user:pw@auth.example.com/token"', "invalid-challenge"],
      ['Bearer service="s"', "invalid-challenge"],
      ['Bearer realm="file:///etc/passwd"', "invalid-challenge"],
      ['Bearer realm="not a url"', "invalid-challenge"],
    ] as const) {
      expectSafeError(
        await auth.respond(HOST, [], header).catch((e: unknown) => e),
        "ERR_UNAUTHORIZED",
        reason,
      );
    }
    // credentials are only ever looked up for the registry host itself
    expect(new Set(lookups)).toEqual(new Set([HOST]));
    const lenient = new RegistryAuth({
      allowInsecureRealm: (realm) => realm.hostname === "auth.invalid",
      timeoutMs: 2_000,
    });
    auths.push(lenient);
    const error = await lenient
      .respond(HOST, [], 'Bearer realm="http://auth.invalid/token"')
      .catch((e: unknown) => e);
    expect((error as BlobError).reason).not.toBe("insecure-realm");
  });

  it("follows same-origin redirects with credentials, cross-origin GET redirects without them", async () => {
    const other = await serve(issuing());
    const server = await serve((seen, res) => {
      if (seen.url.pathname === "/token") {
        res.writeHead(307, { location: "/token2" });
        res.end();
      } else if (seen.url.pathname === "/token2") {
        res.writeHead(302, { location: `${other.origin}/elsewhere${seen.url.search}` });
        res.end();
      }
    });
    const auth = newAuth({ [HOST]: { username: "alice", password: PASSWORD } });
    expect(await auth.respond(HOST, ["repository:a:pull"], bearer(server.origin))).toBe(true);
    expect(server.seen.map((s) => [s.url.pathname, s.authorization !== undefined])).toEqual([
      ["/token", true],
      ["/token2", true],
    ]);
    expect(other.seen).toHaveLength(1);
    expect(other.seen[0]?.authorization).toBeUndefined();
  });

  it("never follows a POST (refresh token in the body) to another origin", async () => {
    const other = await serve(issuing());
    const server = await serve((_seen, res) => {
      res.writeHead(307, { location: `${other.origin}/token` });
      res.end();
    });
    const auth = newAuth({ [HOST]: { identityToken: IDENTITY } });
    const error = await auth.respond(HOST, [], bearer(server.origin)).catch((e: unknown) => e);
    expectSafeError(error, "ERR_NETWORK", "cross-origin-redirect");
    expect(other.seen).toHaveLength(0);
  });
});

describe("RegistryAuth: Basic", () => {
  it("records a Basic challenge and sends the credential to that host only", async () => {
    const auth = newAuth({
      [HOST]: { username: "alice", password: PASSWORD },
      "id.test": { identityToken: IDENTITY },
    });
    const header = `Basic ${Buffer.from(`alice:${PASSWORD}`).toString("base64")}`;
    expect(await auth.authorization(HOST, [])).toBeUndefined();
    expect(await auth.respond(HOST, [], 'Basic realm="registry"', { sent: null })).toBe(true);
    expect(await auth.authorization(HOST, ["repository:a:pull"])).toBe(header);
    expect(await auth.authorization("other.test", [])).toBeUndefined();
    // the same credential was rejected: nothing new
    expect(await auth.respond(HOST, [], 'Basic realm="registry"', { sent: header })).toBe(false);
    // identity tokens cannot answer Basic; unknown hosts have nothing
    expect(await auth.respond("id.test", [], 'Basic realm="r"')).toBe(false);
    expect(await auth.respond("nobody.test", [], 'Basic realm="r"')).toBe(false);
    // unknown schemes and missing headers: nothing to try
    expect(await auth.respond(HOST, [], "Negotiate abc")).toBe(false);
    expect(await auth.respond(HOST, [], undefined)).toBe(false);
  });

  it("closes idempotently and refuses use afterwards", async () => {
    const auth = new RegistryAuth();
    await auth.close();
    await auth.close();
    await expect(auth.authorization(HOST, [])).rejects.toSatisfy((e: unknown) =>
      isBlobError(e, "ERR_CLOSED"),
    );
  });

  it("surfaces a failing credential store and retries the lookup next time", async () => {
    let calls = 0;
    const auth = newAuth({
      get: async () => {
        calls++;
        if (calls === 1) throw new Error("helper broke");
        return { username: "alice", password: PASSWORD };
      },
    });
    await expect(auth.respond(HOST, [], 'Basic realm="r"')).rejects.toThrow("helper broke");
    expect(await auth.respond(HOST, [], 'Basic realm="r"')).toBe(true);
    expect(calls).toBe(2);
  });
});
