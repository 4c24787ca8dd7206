import { createPrivateKey } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBlobError } from "@blobkit/core";
import { Client, type OciStore, type Policy, type PolicyContext, parseReference } from "@blobkit/registry";
import { X509Certificate } from "@sigstore/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { anchored, githubActionsMatcher, globSource, identityMatcher } from "../src/identity.ts";
import {
  attachSignature,
  BUNDLE_MEDIA_TYPE,
  COSIGN_SIGN_PREDICATE_TYPE,
  keylessSigner,
  keySigner,
  loadTrustedRoot,
  normalizeRepository,
  provenanceFacts,
  publicKeyFromPrivate,
  resolveIdentityToken,
  SLSA_PROVENANCE_V02,
  signReference,
  sigstorePolicy,
} from "../src/index.ts";
import { bundleOf, ISSUER, makeTree, pemKeys, SAN, subjectOf } from "./fixtures.ts";
import { type MockSigstore, startMockSigstore } from "./mock-sigstore.ts";

// Unit level: OCI image layouts on disk as the store (no registry), the mock Sigstore on loopback.

let mock: MockSigstore;
let work: string;
let count = 0;

beforeAll(async () => {
  mock = await startMockSigstore();
  work = await mkdtemp(join(tmpdir(), "policy-sigstore-unit-"));
});

afterAll(async () => {
  await mock?.close();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

async function layoutArchive(): Promise<string> {
  const n = count++;
  const ref = `oci:${join(work, `layout-${n}`)}:v1`;
  const c = new Client();
  try {
    await c.push(ref, await makeTree(join(work, `tree-${n}`), { "a.txt": `file ${n}` }));
  } finally {
    await c.close();
  }
  return ref;
}

async function decision(ref: string, policy: Policy): Promise<string> {
  const c = new Client({ policies: [policy] });
  try {
    await c.fetch(ref);
    return "allowed";
  } catch (error) {
    if (!isBlobError(error, "ERR_POLICY")) throw error;
    return (error as Error).message;
  } finally {
    await c.close();
  }
}

async function withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

describe("identity rules", () => {
  it("compares issuer and SAN exactly; regexes only when explicit, always anchored", () => {
    const exact = identityMatcher({ issuer: ISSUER, subject: SAN });
    expect(exact.matches(ISSUER, SAN)).toBe(true);
    expect(exact.matches(ISSUER, `${SAN}-evil`)).toBe(false);
    expect(exact.matches(ISSUER, `x${SAN}`)).toBe(false);
    expect(exact.matches(`${ISSUER}.evil`, SAN)).toBe(false);
    // `.` in an exact SAN is not a wildcard.
    expect(identityMatcher({ issuer: ISSUER, subject: "a.b" }).matches(ISSUER, "aXb")).toBe(false);
    const regex = identityMatcher({ issuer: ISSUER, subjectRegExp: /refs\/heads\/main/g });
    expect(regex.matches(ISSUER, "refs/heads/main")).toBe(true);
    expect(regex.matches(ISSUER, "refs/heads/main")).toBe(true); // no `g` statefulness
    expect(regex.matches(ISSUER, "x/refs/heads/main-evil")).toBe(false);
    expect(anchored("a|b").test("ab")).toBe(false);
    expect(() => identityMatcher({ issuer: "", subject: SAN })).toThrow(/non-empty/);
    expect(() => sigstorePolicy({ trustedRoot: mock.trustedRoot })).toThrow(
      /needs identities, githubActions or keys/,
    );
  });

  it("GitHub Actions: exact issuer and repository, globs that never cross `/`", () => {
    const gh = githubActionsMatcher({ repository: "acme/app", branches: ["release-*"], tags: ["v*"] });
    const san = (repo: string, ref: string, wf = "release.yml") =>
      `https://github.com/${repo}/.github/workflows/${wf}@${ref}`;
    expect(gh.matches(ISSUER, san("acme/app", "refs/heads/release-1"))).toBe(true);
    expect(gh.matches(ISSUER, san("acme/app", "refs/tags/v1.2.3"))).toBe(true);
    expect(gh.matches(ISSUER, san("acme/app", "refs/heads/release-1/evil"))).toBe(false);
    expect(gh.matches(ISSUER, san("acme/app", "refs/heads/main"))).toBe(false);
    expect(gh.matches(ISSUER, san("acme/app-evil", "refs/heads/release-1"))).toBe(false);
    expect(gh.matches(ISSUER, san("acme/appX", "refs/tags/v1"))).toBe(false);
    expect(gh.matches("https://evil.example", san("acme/app", "refs/tags/v1"))).toBe(false);
    const any = githubActionsMatcher({ repository: "acme/app", workflow: "release.yml" });
    expect(any.matches(ISSUER, san("acme/app", "refs/heads/anything"))).toBe(true);
    expect(any.matches(ISSUER, san("acme/app", "refs/heads/main", "other.yml"))).toBe(false);
    expect(globSource("a*b.c")).toBe("a[^/]*b\\.c");
    expect(() => githubActionsMatcher({ repository: "https://github.com/acme/app" })).toThrow(/owner\/name/);
  });
});

describe("keyless signing", () => {
  it("produces cosign's bundle: DSSE over an in-toto Statement v1 of the manifest digest, certificate, dsse entry, TSA", async () => {
    const ref = await layoutArchive();
    const { descriptor, bytes } = await withClient((c) => subjectOf(c, ref));
    const signer = keylessSigner({
      fulcioURL: mock.url,
      rekorURL: mock.url,
      tsaURL: mock.url,
      identityToken: mock.token({ iss: ISSUER, sub: SAN }),
      now: () => new Date("2026-01-24T10:30:00.123Z"),
    });
    const signature = await signer.sign({ descriptor, bytes, reference: ref });
    expect(signature.artifactType).toBe(BUNDLE_MEDIA_TYPE);
    expect(signature.layers.map((l) => l.mediaType)).toEqual([BUNDLE_MEDIA_TYPE]);
    expect(signature.annotations).toEqual({
      "dev.sigstore.bundle.content": "dsse-envelope",
      "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE_TYPE,
      "org.opencontainers.image.created": "2026-01-24T10:30:00Z",
    });
    const bundle = bundleOf(signature);
    expect(Object.keys(bundle).sort()).toEqual(["dsseEnvelope", "mediaType", "verificationMaterial"]);
    expect(bundle.mediaType).toBe(BUNDLE_MEDIA_TYPE);
    // v0.3: a single leaf certificate, not a chain.
    expect(Object.keys(bundle.verificationMaterial).sort()).toEqual([
      "certificate",
      "timestampVerificationData",
      "tlogEntries",
    ]);
    const cert = X509Certificate.parse(
      Buffer.from(bundle.verificationMaterial.certificate.rawBytes, "base64"),
    );
    expect(cert.subjectAltName).toBe(SAN);
    expect(bundle.verificationMaterial.tlogEntries).toHaveLength(1);
    expect(bundle.verificationMaterial.tlogEntries[0]?.kindVersion).toEqual({
      kind: "dsse",
      version: "0.0.1",
    });
    expect(bundle.verificationMaterial.tlogEntries[0]?.inclusionPromise.signedEntryTimestamp).toBeTruthy();
    expect(bundle.verificationMaterial.timestampVerificationData.rfc3161Timestamps).toHaveLength(1);
    expect(bundle.dsseEnvelope.payloadType).toBe("application/vnd.in-toto+json");
    expect(bundle.dsseEnvelope.signatures).toHaveLength(1);
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
    expect(statement).toEqual({
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ digest: { sha256: descriptor.digest.slice("sha256:".length) } }],
      predicateType: COSIGN_SIGN_PREDICATE_TYPE,
      predicate: {},
    });
    expect(Object.keys(statement)).toEqual(["_type", "subject", "predicateType", "predicate"]);
  });

  it("still verifies after the 10-minute Fulcio certificate expired (it was valid at the timestamps)", async () => {
    const ref = await layoutArchive();
    const { descriptor, bytes } = await withClient((c) => subjectOf(c, ref));
    // Everything — the mock's CA and TSA roots, the certificate, the log entry, the timestamp — happens an
    // hour ago; verification happens now.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() - 3_600_000 + 7 });
    let past: MockSigstore | undefined;
    let signature: Awaited<ReturnType<ReturnType<typeof keylessSigner>["sign"]>>;
    try {
      past = await startMockSigstore();
      signature = await keylessSigner({
        fulcioURL: past.url,
        rekorURL: past.url,
        tsaURL: past.url,
        identityToken: past.token({ iss: ISSUER, sub: SAN }),
      }).sign({ descriptor, bytes, reference: ref });
    } finally {
      vi.useRealTimers();
    }
    try {
      const cert = X509Certificate.parse(
        Buffer.from(bundleOf(signature).verificationMaterial.certificate.rawBytes, "base64"),
      );
      expect(cert.notAfter.getTime()).toBeLessThan(Date.now() - 40 * 60_000);
      await withClient(async (c) =>
        attachSignature(await c.store(parseReference(ref)), descriptor, signature),
      );
      const trust = { trustedRoot: past.trustedRoot, identities: [{ issuer: ISSUER, subject: SAN }] };
      expect(await decision(ref, sigstorePolicy(trust))).toBe("allowed");
      // The thresholds still apply: asking for more log entries than the bundle has denies.
      expect(await decision(ref, sigstorePolicy({ ...trust, tlogThreshold: 2 }))).toMatch(
        /expected 2 tlog entries, got 1/,
      );
    } finally {
      await past.close();
    }
  });

  it("reads the OIDC token from the option, SIGSTORE_ID_TOKEN, or GitHub Actions; never leaks it in errors", async () => {
    expect(await resolveIdentityToken({ identityToken: "t1", env: { SIGSTORE_ID_TOKEN: "t2" } })).toBe("t1");
    expect(
      await resolveIdentityToken({ getIdentityToken: async () => "t3", env: { SIGSTORE_ID_TOKEN: "t2" } }),
    ).toBe("t3");
    expect(await resolveIdentityToken({ env: { SIGSTORE_ID_TOKEN: "t2" } })).toBe("t2");
    const seen: { url?: string; auth?: string } = {};
    const gha = createServer((req, res) => {
      seen.url = req.url;
      seen.auth = req.headers.authorization;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ value: "gha-token" }));
    });
    await new Promise<void>((resolve) => gha.listen(0, "127.0.0.1", resolve));
    try {
      const env = {
        ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${(gha.address() as AddressInfo).port}/token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-secret",
      };
      expect(await resolveIdentityToken({ env })).toBe("gha-token");
      expect(seen.url).toBe("/token?api-version=2.0&audience=sigstore");
      expect(seen.auth).toBe("Bearer request-secret");
    } finally {
      gha.close();
    }
    const none = await resolveIdentityToken({ env: {} }).catch((e: unknown) => e);
    expect(isBlobError(none, "ERR_UNAUTHORIZED")).toBe(true);
    expect((none as Error).message).toMatch(/SIGSTORE_ID_TOKEN/);
    // A malformed token is rejected by sigstore-js with the token in its message: it is scrubbed.
    const secret = "not-a-jwt-super-secret-value";
    const error = await keylessSigner({ fulcioURL: mock.url, rekorURL: false, identityToken: secret })
      .sign({
        descriptor: { mediaType: "x", digest: `sha256:${"a".repeat(64)}`, size: 1 },
        bytes: new Uint8Array(),
        reference: "r",
      })
      .catch((e: unknown) => e);
    expect(isBlobError(error)).toBe(true);
    expect(JSON.stringify({ m: (error as Error).message, c: String((error as Error).cause) })).not.toContain(
      secret,
    );
    expect((error as Error).message).toMatch(/invalid identity token: <token>/);
  });
});

describe("key pairs", () => {
  it.each(["p256", "p384", "ed25519", "rsa2048"] as const)(
    "%s: sign and verify round trip, wrong key denied",
    async (type) => {
      const ref = await layoutArchive();
      const { privateKey, publicKey } = pemKeys(type);
      const signer = keySigner({ privateKeyPem: privateKey });
      await withClient((c) => signReference(c, ref, signer));
      expect(await decision(ref, sigstorePolicy({ keys: [publicKey] }))).toBe("allowed");
      expect(await decision(ref, sigstorePolicy({ keys: [pemKeys(type).publicKey] }))).toMatch(
        /no trusted key verifies the signature \(1 key tried\): SIGNATURE_ERROR: signature verification failed/,
      );
      // Two keys: the right one is found whatever the bundle's hint says.
      expect(await decision(ref, sigstorePolicy({ keys: [pemKeys("p256").publicKey, publicKey] }))).toBe(
        "allowed",
      );
    },
  );

  it("loads encrypted keys with their password and refuses weak or unknown keys with a clear reason", async () => {
    const key = createPrivateKey(pemKeys("p384").privateKey);
    const encrypted = key
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
      .toString();
    const legacy = key
      .export({ type: "sec1", format: "pem", cipher: "aes-128-cbc", passphrase: "pw" })
      .toString();
    expect(legacy).toContain("Proc-Type: 4,ENCRYPTED");
    const ref = await layoutArchive();
    await withClient((c) => signReference(c, ref, keySigner({ privateKeyPem: encrypted, password: "pw" })));
    expect(await decision(ref, sigstorePolicy({ keys: [publicKeyFromPrivate(legacy, "pw")] }))).toBe(
      "allowed",
    );
    const attempt = (pem: string, password?: string) => {
      try {
        keySigner({ privateKeyPem: pem, password });
        return "ok";
      } catch (error) {
        expect(isBlobError(error, "ERR_INVALID_ARGUMENT")).toBe(true);
        return (error as Error).message;
      }
    };
    expect(attempt(encrypted)).toMatch(/encrypted and no password was given/);
    expect(attempt(encrypted, "s3cr3t-guess")).toMatch(/could not decrypt the private key/);
    expect(attempt(encrypted, "s3cr3t-guess")).not.toContain("s3cr3t-guess");
    expect(attempt(pemKeys("rsa1024").privateKey)).toMatch(/RSA keys need at least 2048 bits \(got 1024\)/);
    expect(
      attempt(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----",
      ),
    ).toMatch(/cosign's own encrypted key format/);
    expect(attempt("hello")).toMatch(/not a PEM private key/);
  });
});

describe("trusted roots and failing closed", () => {
  it("loads a trusted root from a file; rejects malformed roots", async () => {
    const path = join(work, "trusted_root.json");
    await writeFile(path, JSON.stringify(mock.trustedRoot));
    expect((await loadTrustedRoot(path)).certificateAuthorities).toHaveLength(1);
    await expect(loadTrustedRoot({ mediaType: "application/json" })).rejects.toThrow(
      /not a Sigstore trusted root/,
    );
    await expect(loadTrustedRoot({})).rejects.toThrow(/trusts nothing/);
    await expect(loadTrustedRoot(join(work, "missing.json"))).rejects.toThrow(/cannot read the trusted root/);
    const ref = await layoutArchive();
    await withClient((c) =>
      signReference(
        c,
        ref,
        keylessSigner({
          fulcioURL: mock.url,
          rekorURL: mock.url,
          identityToken: mock.token({ iss: ISSUER, sub: SAN }),
        }),
      ),
    );
    expect(
      await decision(
        ref,
        sigstorePolicy({ trustedRoot: path, identities: [{ issuer: ISSUER, subject: SAN }] }),
      ),
    ).toBe("allowed");
  });

  it("without a trusted root, gets one through TUF — and denies with the reason when TUF is unreachable", async () => {
    // No internet here: a loopback mirror that answers 404 stands for an unreachable TUF repository.
    const mirror = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => mirror.listen(0, "127.0.0.1", resolve));
    try {
      const ref = await layoutArchive();
      await withClient((c) =>
        signReference(
          c,
          ref,
          keylessSigner({
            fulcioURL: mock.url,
            rekorURL: mock.url,
            identityToken: mock.token({ iss: ISSUER, sub: SAN }),
          }),
        ),
      );
      const policy = sigstorePolicy({
        identities: [{ issuer: ISSUER, subject: SAN }],
        tuf: {
          mirrorURL: `http://127.0.0.1:${(mirror.address() as AddressInfo).port}`,
          cachePath: join(work, "tuf-cache"),
          retries: 0,
          timeoutMs: 2_000,
        },
      });
      expect(await decision(ref, policy)).toMatch(
        /could not get Sigstore's trusted root through TUF from http:\/\/127\.0\.0\.1/,
      );
    } finally {
      mirror.close();
    }
  });

  it("denies when the store cannot list referrers (network error, no referrers support)", async () => {
    const ref = await layoutArchive();
    const fetched = await withClient((c) => c.fetch(ref));
    const failing = {
      referrers: async () => {
        throw new Error("connect ECONNREFUSED 127.0.0.1:1");
      },
    } as unknown as OciStore;
    const context: PolicyContext = {
      reference: ref,
      descriptor: fetched.descriptor,
      manifest: fetched.manifest,
      store: failing,
    };
    const decisionOf = await sigstorePolicy({
      trustedRoot: mock.trustedRoot,
      identities: [{ issuer: ISSUER, subject: SAN }],
    }).evaluate(context);
    expect(decisionOf).toEqual({
      allow: false,
      reasons: [
        `could not list the signatures of ${fetched.descriptor.digest}: connect ECONNREFUSED 127.0.0.1:1`,
      ],
    });
    // An aborted evaluation rejects with the abort reason rather than deciding.
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await expect(
      sigstorePolicy({ keys: [pemKeys("p256").publicKey] }).evaluate({
        ...context,
        signal: controller.signal,
      }),
    ).rejects.toThrow("stop");
  });
});

describe("SLSA provenance facts", () => {
  it("reads v0.2 and v1 provenance and normalizes repositories for exact comparison", () => {
    expect(
      provenanceFacts({
        _type: "https://in-toto.io/Statement/v0.1",
        subject: [{ digest: { sha256: "a" } }],
        predicateType: SLSA_PROVENANCE_V02,
        predicate: {
          builder: {
            id: "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.9.0",
          },
          invocation: {
            configSource: {
              uri: "git+https://github.com/acme/app@refs/tags/v1.2.3",
              entryPoint: ".github/workflows/release.yml",
            },
          },
        },
      }),
    ).toEqual({
      builderId:
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.9.0",
      sourceRepository: "https://github.com/acme/app",
      sourceRef: "refs/tags/v1.2.3",
    });
    expect(
      provenanceFacts({
        _type: "https://in-toto.io/Statement/v1",
        subject: [{ digest: { sha256: "a" } }],
        predicateType: "https://slsa.dev/provenance/v1",
        predicate: {
          buildDefinition: {
            resolvedDependencies: [{ uri: "git+https://github.com/acme/app.git@refs/heads/main" }],
          },
          runDetails: { builder: { id: "b" } },
        },
      }),
    ).toEqual({
      builderId: "b",
      sourceRepository: "https://github.com/acme/app",
      sourceRef: "refs/heads/main",
    });
    expect(normalizeRepository("git+https://github.com/acme/app.git")).toBe("https://github.com/acme/app");
    expect(normalizeRepository("https://github.com/acme/app-evil")).not.toBe(
      normalizeRepository("https://github.com/acme/app"),
    );
  });
});
