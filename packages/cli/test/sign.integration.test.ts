import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockSigstore, startMockSigstore } from "../../policy-sigstore/test/mock-sigstore.ts";
import { type RunningRegistry, startRegistry } from "../../registry/test/registry-server.ts";
import { blob, expectJson, isolatedEnv } from "./support.ts";

// `blob sign` / `blob verify` / `pull --policy` / config policy rules end to end: the CLI as a child process,
// the real docker-registry (no referrers API: tag-schema fallback), keyless signing against mock
// Fulcio/Rekor/TSA on loopback, verification offline with the trusted root built from the mock.

const ISSUER = "https://token.actions.githubusercontent.com";
const SAN = "https://github.com/acme/site/.github/workflows/release.yml@refs/heads/main";

let registry: RunningRegistry;
let mock: MockSigstore;
let work: string;
let env: Record<string, string>;
let source: string;

async function policy(name: string, yaml: string): Promise<string> {
  const path = join(work, name);
  await writeFile(path, yaml);
  return path;
}

beforeAll(async () => {
  [registry, mock] = await Promise.all([startRegistry(), startMockSigstore()]);
  work = await mkdtemp(join(tmpdir(), "blobkit-cli-sign-"));
  env = await isolatedEnv(work);
  await writeFile(join(work, "trusted_root.json"), JSON.stringify(mock.trustedRoot));
  source = join(work, "src");
  await mkdir(join(source, "conf"), { recursive: true });
  await writeFile(join(source, "conf/app.json"), '{"replicas":3}');
});

afterAll(async () => {
  await Promise.all([registry?.stop(), mock?.close()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

function keyless(extra: Record<string, string> = {}): Record<string, string> {
  return { ...env, SIGSTORE_ID_TOKEN: mock.token({ iss: ISSUER, sub: SAN }), ...extra };
}

const sigstoreFlags = (): string[] => [
  "--fulcio-url",
  mock.url,
  "--rekor-url",
  mock.url,
  "--tsa-url",
  mock.url,
];

describe("blob sign / verify", () => {
  it("push --sign keylessly, then verify with an offline trusted root; a wrong identity exits 5", async () => {
    const ref = `${registry.host}/acme/site:v1`;
    const pushed = expectJson<{ signed: boolean; digest: string }>(
      await blob(["--json", "push", ref, source, "--sign", ...sigstoreFlags()], { env: keyless() }),
      "push",
    );
    expect(pushed.signed).toBe(true);
    const good = await policy(
      "good.yaml",
      `trustedRoot: trusted_root.json\nsignature:\n  keyless:\n    issuer: ${ISSUER}\n    identity: ${SAN}\n`,
    );
    const verified = expectJson<{ status: string; digest: string; referrers: unknown[] }>(
      await blob(["--json", "verify", ref, "--policy", good], { env }),
      "verify",
    );
    expect(verified.status).toBe("verified");
    expect(verified.digest).toBe(pushed.digest);
    expect(verified.referrers).toHaveLength(1);

    // The identity must match exactly: a branch that only matches as an unanchored regex is denied.
    const evil = await policy(
      "evil.yaml",
      `trustedRoot: trusted_root.json\nsignature:\n  keyless:\n    issuer: ${ISSUER}\n    identity: ${SAN}-evil\n`,
    );
    const denied = await blob(["verify", ref, "--policy", evil], { env });
    expect(denied.code, denied.stderr).toBe(5);
    expect(denied.stderr).toMatch(/denied/);
    // pull under the same policy extracts nothing.
    const dest = join(work, "denied-pull");
    const pulled = await blob(["pull", ref, dest, "--policy", evil], { env });
    expect(pulled.code).toBe(5);
    expect(await readdir(dest).catch(() => [])).toEqual([]);
    // And allowed under the good one.
    const ok = await blob(["pull", ref, join(work, "ok-pull"), "--policy", good], { env });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("signs with a key pair and verifies against the public key; config rules apply to every read", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", {
      namedCurve: "P-256",
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    await writeFile(join(work, "key.pem"), privateKey);
    await writeFile(join(work, "key.pub"), publicKey);
    const ref = `${registry.host}/acme/keyed:v1`;
    expect((await blob(["push", ref, source], { env })).code).toBe(0);
    const signed = expectJson<{ status: string; signatureDigest: string }>(
      await blob(["--json", "sign", ref, "--key", join(work, "key.pem")], { env }),
      "sign",
    );
    expect(signed.status).toBe("signed");
    const byKey = await policy("key.yaml", "signature:\n  key:\n    path: key.pub\n");
    expect((await blob(["verify", ref, "--policy", byKey], { env })).code).toBe(0);

    // A config rule for this repository with another key denies `cat` (exit 5) — and --no-default-policy is
    // only for pull/verify, where an explicit policy takes over.
    const other = generateKeyPairSync("ec", {
      namedCurve: "P-256",
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    await writeFile(join(work, "other.pub"), other.publicKey);
    const config = join(work, "config.yaml");
    await writeFile(
      config,
      `policies:\n  - match: ${registry.host.replace(/\./g, "\\.")}/acme/keyed:.*\n    policy:\n      signature:\n        key:\n          path: other.pub\n`,
    );
    const cat = await blob(["--config", config, "cat", ref, "conf/app.json"], { env });
    expect(cat.code, cat.stderr).toBe(5);
    expect(cat.stdout).toBe("");
    const elsewhere = await blob(
      ["--config", config, "cat", `${registry.host}/acme/site:v1`, "conf/app.json"],
      {
        env,
      },
    );
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    expect(elsewhere.stdout).toBe('{"replicas":3}');
    const bypass = await blob(["--config", config, "verify", ref, "--no-default-policy", "--policy", byKey], {
      env,
    });
    expect(bypass.code, bypass.stderr).toBe(0);
  });

  it("--output-signature prints the bundle without attaching it", async () => {
    const ref = `${registry.host}/acme/printed:v1`;
    expect((await blob(["push", ref, source], { env })).code).toBe(0);
    const printed = await blob(["sign", ref, "--output-signature", ...sigstoreFlags()], { env: keyless() });
    expect(printed.code, printed.stderr).toBe(0);
    const bundle = JSON.parse(printed.stdout) as { mediaType: string; dsseEnvelope?: unknown };
    expect(bundle.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
    expect(bundle.dsseEnvelope).toBeDefined();
    const inspected = expectJson<{ referrers: unknown[] }>(
      await blob(["--json", "inspect", ref], { env }),
      "inspect",
    );
    expect(inspected.referrers).toEqual([]);
  });
});
