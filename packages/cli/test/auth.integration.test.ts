import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../../registry/test/registry-server.ts";
import { blob, expectJson, expectJsonError, isolatedEnv, writeTree } from "./support.ts";

// login / logout against the real docker-registry with htpasswd (Basic) auth, Docker's credential storage.

let registry: RunningRegistry;
let work: string;
let env: Record<string, string>;
let src: string;

beforeAll(async () => {
  registry = await startRegistry({ auth: "htpasswd" });
  work = await mkdtemp(join(tmpdir(), "blobkit-cli-auth-"));
  env = await isolatedEnv(work);
  src = join(work, "src");
  await writeTree(src, [{ path: "a.txt", content: "a\n" }]);
});

afterAll(async () => {
  await registry?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("login then push to the htpasswd registry", () => {
  it("6 without credentials and with a bad password; login stores Docker-style credentials (0600) that push uses", async () => {
    const ref = `${registry.host}/auth/app:v1`;
    expect(expectJsonError(await blob(["push", ref, src, "--json"], { env }), 6).code).toBe(
      "ERR_UNAUTHORIZED",
    );

    const bad = await blob(["login", registry.host, "-u", registry.username, "--password-stdin"], {
      env,
      input: "wrong\n",
    });
    expect(bad.code).toBe(6);
    expect(bad.stderr).not.toMatch(/wrong/);
    await expect(stat(join(env.DOCKER_CONFIG as string, "config.json"))).rejects.toThrow();

    const login = expectJson<{ registry: string; store: string }>(
      await blob(["login", registry.host, "-u", registry.username, "--password-stdin", "--json"], {
        env,
        input: `${registry.password}\n`,
      }),
      "login",
    );
    const configPath = join(env.DOCKER_CONFIG as string, "config.json");
    expect(login.store).toBe(configPath);
    expect((await stat(configPath)).mode & 0o777).toBe(0o600);
    const config = JSON.parse(await readFile(configPath, "utf8")) as {
      auths: Record<string, { auth: string }>;
    };
    expect(Buffer.from(config.auths[registry.host]?.auth ?? "", "base64").toString()).toBe(
      `${registry.username}:${registry.password}`,
    );

    expect((await blob(["push", ref, src], { env })).code).toBe(0);
    const cat = await blob(["cat", ref, "a.txt"], { env });
    expect(cat.stdout).toBe("a\n");

    // -p works but warns; it never echoes the password.
    const insecure = await blob(["login", registry.host, "-u", registry.username, "-p", registry.password], {
      env,
    });
    expect(insecure.code).toBe(0);
    expect(insecure.stderr).toMatch(/insecure/);
    expect(insecure.stderr + insecure.stdout).not.toContain(registry.password);

    const logout = expectJson<{ removed: boolean }>(
      await blob(["logout", registry.host, "--json"], { env }),
      "logout",
    );
    expect(logout.removed).toBe(true);
    expect((await blob(["ls", "--no-cache", ref], { env })).code).toBe(6);
  });

  it("uses the credential helper named by credsStore (store on login, erase on logout)", async () => {
    const helperEnv: Record<string, string> = { ...env, DOCKER_CONFIG: join(work, "docker-helper") };
    const bin = join(work, "bin");
    const vault = join(work, "vault");
    await mkdir(bin, { recursive: true });
    const dockerConfig = helperEnv.DOCKER_CONFIG as string;
    await mkdir(dockerConfig, { recursive: true });
    // A docker-credential-helpers compatible fake keeping one entry in a file.
    await writeFile(
      join(bin, "docker-credential-fake"),
      `#!/bin/sh
case "$1" in
  store) cat > "${vault}" ;;
  get) if [ -s "${vault}" ]; then cat "${vault}"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) rm -f "${vault}" ;;
esac
`,
    );
    await chmod(join(bin, "docker-credential-fake"), 0o755);
    await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ credsStore: "fake" }));
    helperEnv.PATH = `${bin}:${env.PATH}`;
    const login = await blob(["login", registry.host, "-u", registry.username, "--password-stdin"], {
      env: helperEnv,
      input: registry.password,
    });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toMatch(/docker-credential-fake/);
    expect(JSON.parse(await readFile(vault, "utf8"))).toMatchObject({
      ServerURL: registry.host,
      Secret: registry.password,
    });
    const config = JSON.parse(await readFile(join(dockerConfig, "config.json"), "utf8"));
    expect(config).toEqual({ credsStore: "fake", auths: { [registry.host]: {} } });
    expect((await blob(["ls", `${registry.host}/auth/app:v1`], { env: helperEnv })).code).toBe(0);
    expect((await blob(["logout", registry.host], { env: helperEnv })).code).toBe(0);
    await expect(stat(vault)).rejects.toThrow();
  });
});
