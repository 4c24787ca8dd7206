import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlobError, isBlobError } from "@blobkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCredentialHelper } from "./credential-helper.ts";
import { dockerCredentials } from "./docker-config.ts";

// Fake `docker-credential-*` helpers (the real ones need a desktop keychain): small shell scripts on a private
// PATH, each injecting one behaviour. They log the server URL they were asked for into calls.log.
const SECRET = "s3cr3t-Value-42";
let dir: string;
let env: NodeJS.ProcessEnv;

const helpers: Record<string, string> = {
  ok: `read -r url; echo "$url" >> "$LOG"; printf '{"ServerURL":"%s","Username":"helper-user","Secret":"${SECRET}"}' "$url"`,
  token: `read -r url; echo "$url" >> "$LOG"; printf '{"ServerURL":"%s","Username":"<token>","Secret":"${SECRET}"}' "$url"`,
  notfound: `read -r url; echo "$url" >> "$LOG"; echo "credentials not found in native keychain"; exit 1`,
  hang: `exec sleep 30`,
  garbage: `read -r url; echo "{\\"Secret\\": \\"${SECRET}\\""`,
  fail: `echo "error: ${SECRET} leaked" >&2; exit 3`,
  empty: `read -r url; echo '{"ServerURL":"x","Username":"","Secret":""}'`,
  wrongtype: `echo '{"Username":1,"Secret":["${SECRET}"]}'`,
  noread: `echo '{"Username":"u","Secret":"p"}'`,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "blobkit-auth-"));
  const bin = join(dir, "bin");
  await mkdir(bin);
  for (const [name, body] of Object.entries(helpers)) {
    const path = join(bin, `docker-credential-${name}`);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
  }
  env = { PATH: `${bin}:/usr/bin:/bin`, HOME: join(dir, "home"), LOG: join(dir, "calls.log") };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const b64 = (text: string): string => Buffer.from(text).toString("base64");

async function writeConfig(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/** Asserts an error is a BlobError and that the secret is nowhere in it or its causes. */
function expectNoSecret(error: unknown, code: string): BlobError {
  expect(isBlobError(error, code as never)).toBe(true);
  let current: unknown = error;
  while (current !== undefined && current !== null) {
    expect(String(current)).not.toContain(SECRET);
    expect((current as Error).message ?? "").not.toContain(SECRET);
    expect(JSON.stringify(current)).not.toContain(SECRET);
    current = (current as Error).cause;
  }
  return error as BlobError;
}

describe("runCredentialHelper", () => {
  it("reads username and secret", async () => {
    expect(await runCredentialHelper("ok", "ghcr.io", { env })).toEqual({
      username: "helper-user",
      password: SECRET,
    });
  });

  it("maps Username <token> to an identity token", async () => {
    expect(await runCredentialHelper("token", "ghcr.io", { env })).toEqual({ identityToken: SECRET });
  });

  it("resolves undefined on 'credentials not found' and on an empty secret", async () => {
    expect(await runCredentialHelper("notfound", "ghcr.io", { env })).toBeUndefined();
    expect(await runCredentialHelper("empty", "ghcr.io", { env })).toBeUndefined();
  });

  it("tolerates a helper that does not read stdin", async () => {
    expect(await runCredentialHelper("noread", "ghcr.io", { env })).toEqual({ username: "u", password: "p" });
  });

  it("kills a hanging helper after the timeout", async () => {
    const started = Date.now();
    const error = await runCredentialHelper("hang", "ghcr.io", { env, timeoutMs: 200 }).catch(
      (e: unknown) => e,
    );
    expect(expectNoSecret(error, "ERR_IO").reason).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("aborts with the signal's reason", async () => {
    const controller = new AbortController();
    const pending = runCredentialHelper("hang", "ghcr.io", { env, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("stop")), 50);
    await expect(pending).rejects.toThrow("stop");
  });

  it("reports garbage output, wrong types and nonzero exits without leaking the output", async () => {
    expect(
      expectNoSecret(await runCredentialHelper("garbage", "h", { env }).catch((e) => e), "ERR_IO").reason,
    ).toBe("invalid-output");
    expect(
      expectNoSecret(await runCredentialHelper("wrongtype", "h", { env }).catch((e) => e), "ERR_IO").reason,
    ).toBe("invalid-output");
    const failed = expectNoSecret(await runCredentialHelper("fail", "h", { env }).catch((e) => e), "ERR_IO");
    expect(failed.reason).toBe("credential-helper-failed");
    expect(failed.message).toContain("exit code 3");
  });

  it("reports a missing helper and refuses helper names that are paths", async () => {
    const missing = await runCredentialHelper("absent", "h", { env }).catch((e: unknown) => e);
    expect((missing as BlobError).reason).toBe("credential-helper-missing");
    const bad = await runCredentialHelper("../../bin/sh", "h", { env }).catch((e: unknown) => e);
    expect(isBlobError(bad, "ERR_INVALID_ARGUMENT")).toBe(true);
  });
});

describe("dockerCredentials", () => {
  const store = (configPath: string, extra: Parameters<typeof dockerCredentials>[0] = {}) =>
    dockerCredentials({ configPath, podmanAuthPath: false, env, onWarning: () => {}, ...extra });

  it("reads auths: base64 auth, username/password fields, identitytoken, registrytoken", async () => {
    const path = await writeConfig("auths.json", {
      auths: {
        "https://ghcr.io": { auth: b64(`me:${SECRET}:with-colon`) },
        "quay.io": { username: "q", password: "qp" },
        "id.example": { auth: b64("idu:"), identitytoken: "refresh-1" },
        "tok.example:5000": { registrytoken: "access-1" },
        "empty.example": {},
      },
    });
    const docker = store(path);
    expect(await docker.get("ghcr.io")).toEqual({ username: "me", password: `${SECRET}:with-colon` });
    expect(await docker.get("https://quay.io/v2/")).toEqual({ username: "q", password: "qp" });
    expect(await docker.get("id.example")).toEqual({ identityToken: "refresh-1", username: "idu" });
    expect(await docker.get("tok.example:5000")).toEqual({ registryToken: "access-1" });
    expect(await docker.get("tok.example")).toBeUndefined();
    expect(await docker.get("empty.example")).toBeUndefined();
    expect(await docker.get("other.example")).toBeUndefined();
  });

  it("finds Docker Hub credentials under any alias", async () => {
    const path = await writeConfig("hub.json", {
      auths: { "https://index.docker.io/v1/": { auth: b64("hub:pw") } },
    });
    for (const host of ["docker.io", "index.docker.io", "registry-1.docker.io"]) {
      expect(await store(path).get(host)).toEqual({ username: "hub", password: "pw" });
    }
    const short = await writeConfig("hub2.json", { auths: { "docker.io": { auth: b64("hub2:pw") } } });
    expect(await store(short).get("registry-1.docker.io")).toEqual({ username: "hub2", password: "pw" });
  });

  it("prefers credHelpers over credsStore over auths, asks helpers with Docker's server URL", async () => {
    await rm(env.LOG!, { force: true });
    const path = await writeConfig("helpers.json", {
      auths: { "ghcr.io": { auth: b64("file:pw") }, "plain.example": { auth: b64("file:pw") } },
      credsStore: "token",
      credHelpers: { "ghcr.io": "ok", "nf.example": "notfound", "https://index.docker.io/v1/": "ok" },
    });
    const docker = store(path);
    expect(await docker.get("ghcr.io")).toEqual({ username: "helper-user", password: SECRET });
    // credsStore beats the auths entry of a host without its own helper
    expect(await docker.get("plain.example")).toEqual({ identityToken: SECRET });
    // a helper's "not found" is final (no fallback to credsStore/auths), like Docker
    expect(await docker.get("nf.example")).toBeUndefined();
    expect(await docker.get("registry-1.docker.io")).toEqual({ username: "helper-user", password: SECRET });
    const { readFile } = await import("node:fs/promises");
    expect((await readFile(env.LOG!, "utf8")).trim().split("\n")).toEqual([
      "ghcr.io",
      "plain.example",
      "nf.example",
      "https://index.docker.io/v1/",
    ]);
  });

  it("fails with a typed error when a configured helper fails or is missing", async () => {
    const path = await writeConfig("broken-helper.json", {
      credHelpers: { "a.example": "fail", "b.example": "absent" },
    });
    expectNoSecret(
      await store(path)
        .get("a.example")
        .catch((e: unknown) => e),
      "ERR_IO",
    );
    expect(
      (
        (await store(path)
          .get("b.example")
          .catch((e: unknown) => e)) as BlobError
      ).reason,
    ).toBe("credential-helper-missing");
    const slow = await writeConfig("slow-helper.json", { credsStore: "hang" });
    const error = await store(slow, { helperTimeoutMs: 100 })
      .get("x.example")
      .catch((e: unknown) => e);
    expect((error as BlobError).reason).toBe("timeout");
  });

  it("ignores missing, unreadable and malformed files with a warning that holds no secret", async () => {
    const warnings: string[] = [];
    const onWarning = (message: string) => warnings.push(message);
    expect(
      await dockerCredentials({
        configPath: join(dir, "absent.json"),
        podmanAuthPath: false,
        env,
        onWarning,
      }).get("a.b"),
    ).toBeUndefined();
    expect(warnings).toEqual([]);
    for (const content of [
      `{"auths": {"a.b": {"auth": "${b64(`u:${SECRET}`)}"}}`, // truncated JSON
      "[1, 2]",
      "null",
      `{"auths": {"a.b": {"auth": "!!${SECRET}!!"}}}`, // auth is not base64
      `{"auths": {"a.b": {"auth": "${b64(`no-colon-${SECRET}`)}"}}}`,
    ]) {
      const path = await writeConfig("bad.json", content);
      expect(
        await dockerCredentials({ configPath: path, podmanAuthPath: false, env, onWarning }).get("a.b"),
      ).toBeUndefined();
    }
    expect(warnings).toHaveLength(5);
    for (const warning of warnings) expect(warning).not.toContain(SECRET);
    // a directory where the file should be: unreadable, warned, ignored
    expect(
      await dockerCredentials({ configPath: dir, podmanAuthPath: false, env, onWarning }).get("a.b"),
    ).toBeUndefined();
    expect(warnings).toHaveLength(6);
    // wrong shapes inside an object are skipped, not fatal
    const odd = await writeConfig("odd.json", {
      auths: { "a.b": "str", "c.d": { auth: 5, username: "u", password: "p" } },
      credHelpers: [],
    });
    expect(await store(odd).get("a.b")).toBeUndefined();
    expect(await store(odd).get("c.d")).toEqual({ username: "u", password: "p" });
  });

  it("uses $DOCKER_CONFIG, then podman's auth.json ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR, ~/.config)", async () => {
    const dockerDir = join(dir, "dockercfg");
    await mkdir(dockerDir, { recursive: true });
    await writeFile(
      join(dockerDir, "config.json"),
      JSON.stringify({ auths: { "d.example": { auth: b64("d:1") } } }),
    );
    const runtime = join(dir, "runtime");
    await mkdir(join(runtime, "containers"), { recursive: true });
    await writeFile(
      join(runtime, "containers", "auth.json"),
      JSON.stringify({ auths: { "p.example": { auth: b64("p:1") }, "quay.io/org": { auth: b64("ns:1") } } }),
    );
    const home = join(dir, "home2");
    await mkdir(join(home, ".config", "containers"), { recursive: true });
    await writeFile(
      join(home, ".config", "containers", "auth.json"),
      JSON.stringify({ auths: { "h.example": { auth: b64("h:1") } } }),
    );
    const base = { ...env, HOME: home, DOCKER_CONFIG: dockerDir, XDG_RUNTIME_DIR: runtime };
    const docker = dockerCredentials({ env: base, onWarning: () => {} });
    expect(await docker.get("d.example")).toEqual({ username: "d", password: "1" });
    expect(await docker.get("p.example")).toEqual({ username: "p", password: "1" });
    expect(await docker.get("h.example")).toEqual({ username: "h", password: "1" });
    // namespaced podman entries are not whole-host credentials
    expect(await docker.get("quay.io")).toBeUndefined();
    const authFile = await writeConfig("registry-auth.json", {
      auths: { "r.example": { auth: b64("r:1") } },
    });
    const explicit = dockerCredentials({
      env: { ...base, REGISTRY_AUTH_FILE: authFile },
      onWarning: () => {},
    });
    expect(await explicit.get("r.example")).toEqual({ username: "r", password: "1" });
    expect(await explicit.get("p.example")).toBeUndefined();
  });
});
