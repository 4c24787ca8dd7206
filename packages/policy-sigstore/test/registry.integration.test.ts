import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBlobError } from "@blobkit/core";
import {
  anonymousCredentials,
  Client,
  type Policy,
  RegistryStore,
  referrersTag,
  type Signer,
} from "@blobkit/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../../registry/test/registry-server.ts";
import {
  attachSignature,
  BUNDLE_MEDIA_TYPE,
  COSIGN_SIGN_PREDICATE_TYPE,
  keylessSigner,
  keySigner,
  SLSA_PROVENANCE_V1,
  signReference,
  sigstorePolicy,
  slsaPolicy,
  type TrustOptions,
  verifiedStatements,
  verifyAttestations,
} from "../src/index.ts";
import { editBundle, ISSUER, makeTree, OTHER_ISSUER, pemKeys, SAN, subjectOf } from "./fixtures.ts";
import { type MockSigstore, startMockSigstore } from "./mock-sigstore.ts";

// End to end, offline: the real docker-registry 2.8 (no referrers API → `sha256-<hex>` tag-schema fallback),
// keyless signing against mock Fulcio/Rekor/TSA on loopback, verification with the mock's trusted root.

let registry: RunningRegistry;
let mock: MockSigstore;
let foreign: MockSigstore;
let work: string;
let treeCount = 0;

beforeAll(async () => {
  [registry, mock, foreign] = await Promise.all([startRegistry(), startMockSigstore(), startMockSigstore()]);
  work = await mkdtemp(join(tmpdir(), "policy-sigstore-"));
});

afterAll(async () => {
  await Promise.all([registry?.stop(), mock?.close(), foreign?.close()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

function client(policies: Policy[] = []): Client {
  return new Client({ credentials: anonymousCredentials, policies });
}

async function pushArchive(repo: string, content = `content ${treeCount}`): Promise<string> {
  const ref = `${registry.host}/${repo}:v1`;
  const c = client();
  try {
    await c.push(ref, await makeTree(join(work, `tree-${treeCount++}`), { "config/app.json": content }));
  } finally {
    await c.close();
  }
  return ref;
}

function signer(san = SAN, issuer = ISSUER, extra: Parameters<typeof keylessSigner>[0] = {}) {
  return keylessSigner({
    fulcioURL: mock.url,
    rekorURL: mock.url,
    tsaURL: mock.url,
    identityToken: mock.token({ iss: issuer, sub: san }),
    ...extra,
  });
}

const trust = (): TrustOptions => ({
  trustedRoot: mock.trustedRoot,
  identities: [{ issuer: ISSUER, subject: SAN }],
});

/** Pulls `ref` under `policy`; resolves to the denial message, or "allowed". */
async function outcome(ref: string, policy: Policy): Promise<string> {
  const c = client([policy]);
  try {
    const archive = await c.pull(ref);
    const text = await archive.readFile("config/app.json", { encoding: "utf8" });
    await archive.close();
    expect(text).toMatch(/^content/);
    return "allowed";
  } catch (error) {
    if (!isBlobError(error, "ERR_POLICY")) throw error;
    return (error as Error).message;
  } finally {
    await c.close();
  }
}

describe("keyless signing and verification against the real registry", () => {
  it("Client.sign attaches a keyless signature; the policy verifies it through the tag-schema fallback", async () => {
    const ref = await pushArchive("acme/keyless");
    const c = client();
    let digest: string;
    try {
      const referrer = await c.sign(ref, signer());
      digest = (await c.fetch(ref)).descriptor.digest;
      const referrers = await c.referrers(ref, { artifactType: BUNDLE_MEDIA_TYPE });
      expect(referrers.map((r) => r.digest)).toEqual([referrer.digest]);
    } finally {
      await c.close();
    }
    // docker-registry 2.8 has no referrers API: the signature is listed in the `sha256-<hex>` index.
    const store = new RegistryStore({ host: registry.host, repository: "acme/keyless" });
    try {
      const tags: string[] = [];
      for await (const tag of store.listTags()) tags.push(tag);
      expect(tags).toContain(referrersTag(digest));
    } finally {
      await store.close();
    }
    expect(mock.requests).toEqual(
      expect.arrayContaining(["/api/v2/signingCert", "/api/v1/log/entries", "/api/v1/timestamp"]),
    );
    expect(await outcome(ref, sigstorePolicy(trust()))).toBe("allowed");
    // The GitHub Actions helper accepts the same identity.
    expect(
      await outcome(
        ref,
        sigstorePolicy({
          trustedRoot: mock.trustedRoot,
          githubActions: { repository: "acme/app", branches: ["main"] },
        }),
      ),
    ).toBe("allowed");
  });

  it.each([
    ["signReference", "acme/cosign-layout", (c: Client, ref: string, s: Signer) => signReference(c, ref, s)],
    ["Client.sign", "acme/cosign-layout-client", (c: Client, ref: string, s: Signer) => c.sign(ref, s)],
  ])(
    "%s writes cosign's exact referrer layout, found through the fallback index",
    async (_name, repository, sign) => {
      const ref = await pushArchive(repository);
      const c = client();
      try {
        const { descriptor: subject } = await subjectOf(c, ref);
        const referrer = await sign(c, ref, signer());
        const store = new RegistryStore({ host: registry.host, repository });
        try {
          const raw = new TextDecoder().decode((await store.fetchManifest(referrer.digest)).bytes);
          const json = JSON.parse(raw);
          const layer = json.layers[0];
          // cosign's ociremote.WriteReferrer, byte for byte (go-containerregistry field order, sorted annotations).
          expect(raw).toBe(
            `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
              `"config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","artifactType":"${BUNDLE_MEDIA_TYPE}"},` +
              `"layers":[{"mediaType":"${BUNDLE_MEDIA_TYPE}","size":${layer.size},"digest":"${layer.digest}"}],` +
              `"annotations":{"dev.sigstore.bundle.content":"dsse-envelope","dev.sigstore.bundle.predicateType":"${COSIGN_SIGN_PREDICATE_TYPE}","org.opencontainers.image.created":"${json.annotations["org.opencontainers.image.created"]}"},` +
              `"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":${subject.size},"digest":"${subject.digest}"},` +
              `"artifactType":"${BUNDLE_MEDIA_TYPE}"}`,
          );
          expect(json.annotations["org.opencontainers.image.created"]).toMatch(
            /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
          );
          const index = JSON.parse(
            new TextDecoder().decode((await store.fetchManifest(referrersTag(subject.digest))).bytes),
          );
          expect(index.manifests).toEqual([
            expect.objectContaining({ digest: referrer.digest, artifactType: BUNDLE_MEDIA_TYPE }),
          ]);
        } finally {
          await store.close();
        }
      } finally {
        await c.close();
      }
      expect(await outcome(ref, sigstorePolicy(trust()))).toBe("allowed");
    },
  );

  it("denies each failure with its specific reason", async () => {
    const ref = await pushArchive("acme/negative");
    const c = client();
    try {
      await c.sign(ref, signer(`${SAN}-evil`));
    } finally {
      await c.close();
    }
    const base = { trustedRoot: mock.trustedRoot };
    // Wrong SAN.
    expect(
      await outcome(
        ref,
        sigstorePolicy({ ...base, identities: [{ issuer: ISSUER, subject: SAN.replace("acme", "other") }] }),
      ),
    ).toMatch(
      /certificate identity \(issuer "https:\/\/token\.actions\.githubusercontent\.com", subject ".*main-evil"\) matches none/,
    );
    // A SAN that only matches as an unanchored regex (what @sigstore/verify would do with a plain string).
    expect(new RegExp(SAN).test(`${SAN}-evil`)).toBe(true);
    expect(
      await outcome(ref, sigstorePolicy({ ...base, identities: [{ issuer: ISSUER, subject: SAN }] })),
    ).toMatch(/subject ".*@refs\/heads\/main-evil"\) matches none of the trusted identities/);
    expect(
      await outcome(ref, sigstorePolicy({ ...base, identities: [{ issuer: ISSUER, subjectRegExp: SAN }] })),
    ).toMatch(
      /matches none of the trusted identities: issuer "https:\/\/token.actions.githubusercontent.com" \+ subject =~/,
    );
    expect(
      await outcome(
        ref,
        sigstorePolicy({ ...base, githubActions: { repository: "acme/app", branches: ["main"] } }),
      ),
    ).toMatch(
      /main-evil"\) matches none of the trusted identities: GitHub Actions acme\/app at refs\/heads\/main/,
    );
    // Wrong issuer.
    expect(
      await outcome(
        ref,
        sigstorePolicy({ ...base, identities: [{ issuer: OTHER_ISSUER, subjectRegExp: ".*" }] }),
      ),
    ).toMatch(
      /issuer "https:\/\/token.actions.githubusercontent.com".*matches none of the trusted identities: issuer "https:\/\/accounts.example.com"/,
    );
    // A foreign trusted root (another CA, log and TSA).
    expect(
      await outcome(
        ref,
        sigstorePolicy({
          trustedRoot: foreign.trustedRoot,
          identities: [{ issuer: ISSUER, subjectRegExp: ".*" }],
        }),
      ),
    ).toMatch(/signature verification failed: TIMESTAMP_ERROR: timestamp could not be verified/);
    // Only the CA foreign (the log and TSA trusted): the certificate chain is what fails.
    expect(
      await outcome(
        ref,
        sigstorePolicy({
          trustedRoot: {
            ...mock.trustedRoot,
            certificateAuthorities: foreign.trustedRoot.certificateAuthorities,
            ctlogs: foreign.trustedRoot.ctlogs,
          },
          identities: [{ issuer: ISSUER, subjectRegExp: ".*" }],
        }),
      ),
    ).toMatch(/signature verification failed: CERTIFICATE_ERROR: Failed to verify certificate chain/);
    // The explicit, anchored regex that covers the evil ref is accepted: regexes are honoured when asked for.
    expect(
      await outcome(
        ref,
        sigstorePolicy({
          ...base,
          identities: [{ issuer: ISSUER, subjectRegExp: `${SAN.replace(/[.]/g, "\\.")}-evil` }],
        }),
      ),
    ).toBe("allowed");
  });

  it("denies a manifest without signatures, a tampered manifest and a signature of another digest", async () => {
    const ref = await pushArchive("acme/tamper");
    // No signatures at all.
    expect(await outcome(ref, sigstorePolicy(trust()))).toMatch(
      new RegExp(
        `no signatures: sha256:[0-9a-f]{64} has no ${BUNDLE_MEDIA_TYPE.replace(/[.+]/g, "\\$&")} referrers`,
      ),
    );
    const c = client();
    try {
      const original = await subjectOf(c, ref);
      await c.sign(ref, signer());
      expect(await outcome(ref, sigstorePolicy(trust()))).toBe("allowed");
      // A tampered manifest (one annotation changed) under the same tag, with the original signature copied onto
      // it: the statement names the original digest.
      const json = JSON.parse(new TextDecoder().decode(original.bytes));
      json.annotations["org.example.tampered"] = "yes";
      const store = await c.store((await import("@blobkit/registry")).parseReference(ref));
      const tampered = await store.pushManifest(
        new TextEncoder().encode(JSON.stringify(json)),
        original.descriptor.mediaType,
        {
          tag: "v1",
        },
      );
      expect(await outcome(ref, sigstorePolicy(trust()))).toMatch(/no signatures/);
      const signature = await signer().sign({
        descriptor: original.descriptor,
        bytes: original.bytes,
        reference: ref,
      });
      await attachSignature(store, tampered, signature);
      expect(await outcome(ref, sigstorePolicy(trust()))).toMatch(
        new RegExp(`the statement's subject is ${original.descriptor.digest}, not ${tampered.digest}`),
      );
      // Tampering with the stored bytes of a manifest never reaches the policy: the digest check fails first.
      const path = registry.blobPath(tampered.digest);
      const bytes = await readFile(path);
      await writeFile(path, Buffer.from(new TextDecoder().decode(bytes).replace('"yes"', '"no!"')));
      const tamperedPull = await client([sigstorePolicy(trust())])
        .fetch(ref)
        .catch((e: unknown) => e);
      expect(isBlobError(tamperedPull, "ERR_INTEGRITY")).toBe(true);
    } finally {
      await c.close();
    }
  });

  it("tries every signature referrer and says why each failed", async () => {
    const ref = await pushArchive("acme/many");
    const c = client();
    try {
      await c.sign(ref, signer(SAN, OTHER_ISSUER));
      await c.sign(ref, signer(`${SAN}-evil`));
      expect(await outcome(ref, sigstorePolicy(trust()))).toMatch(
        /none of the 2 signature referrers of sha256:[0-9a-f]{64} verified; referrer sha256:[0-9a-f]{12}…: .*accounts\.example\.com.*; referrer sha256:[0-9a-f]{12}…: .*main-evil/,
      );
      await c.sign(ref, signer());
      expect(await outcome(ref, sigstorePolicy(trust()))).toBe("allowed");
    } finally {
      await c.close();
    }
  });
});

describe("attestations", () => {
  const provenance = {
    buildDefinition: {
      buildType: "https://actions.github.io/buildtypes/workflow/v1",
      externalParameters: {
        workflow: {
          ref: "refs/heads/main",
          repository: "https://github.com/acme/app",
          path: ".github/workflows/release.yml",
        },
      },
      resolvedDependencies: [
        { uri: "git+https://github.com/acme/app@refs/heads/main", digest: { gitCommit: "a".repeat(40) } },
      ],
    },
    runDetails: { builder: { id: "https://github.com/actions/runner/github-hosted" } },
  };
  const slsa = (extra: Record<string, unknown> = {}) =>
    slsaPolicy({
      ...trust(),
      builderId: "https://github.com/actions/runner/github-hosted",
      sourceRepository: "https://github.com/acme/app",
      branches: ["main"],
      ...extra,
    });

  it("verifies signed SLSA provenance and returns the statements; rejects unsigned and mis-bound ones", async () => {
    const ref = await pushArchive("acme/slsa");
    const other = await pushArchive("acme/slsa-other");
    const c = client();
    try {
      const { descriptor } = await subjectOf(c, ref);
      const otherSubject = await subjectOf(c, other);
      const store = await c.store((await import("@blobkit/registry")).parseReference(ref));
      const attester = signer(SAN, ISSUER, { predicateType: SLSA_PROVENANCE_V1, predicate: provenance });
      // An attestation whose subject is another digest.
      const misbound = await attester.sign({
        ...otherSubject,
        descriptor: otherSubject.descriptor,
        reference: other,
      });
      await attachSignature(store, descriptor, misbound);
      // An unsigned attestation (a bundle whose envelope carries no signature), and a bare in-toto statement.
      const signed = await attester.sign({ descriptor, bytes: new Uint8Array(), reference: ref });
      await attachSignature(
        store,
        descriptor,
        editBundle(signed, (b) => {
          b.dsseEnvelope.signatures = [];
        }),
      );
      // A forged signature.
      await attachSignature(
        store,
        descriptor,
        editBundle(signed, (b) => {
          b.dsseEnvelope.signatures = [{ sig: Buffer.from("forged").toString("base64") }];
        }),
      );
      await attachSignature(store, descriptor, {
        artifactType: "application/vnd.in-toto+json",
        layers: [
          {
            mediaType: "application/vnd.in-toto+json",
            bytes: new TextEncoder().encode(JSON.stringify({ _type: "https://in-toto.io/Statement/v1" })),
          },
        ],
      });
      const denied = await outcome(ref, slsa());
      expect(denied).toMatch(
        new RegExp(`the statement's subject is ${otherSubject.descriptor.digest}, not ${descriptor.digest}`),
      );
      expect(denied).toMatch(/an unsigned attestation: the DSSE envelope has no signature/);
      expect(denied).toMatch(/an unsigned attestation: a bare in-toto statement/);
      // The TSA timestamp covers the signature bytes: a forged signature is the first thing that fails.
      expect(denied).toMatch(
        /signature verification failed: TIMESTAMP_ERROR: timestamp could not be verified/,
      );
      // The signature policy does not take provenance for a signature.
      expect(await outcome(ref, sigstorePolicy(trust()))).toMatch(
        /predicate type "https:\/\/slsa.dev\/provenance\/v1" is not a signature/,
      );
      // Now a properly signed and bound one.
      await attachSignature(store, descriptor, signed);
      expect(await outcome(ref, slsa())).toBe("allowed");
      const pulled = await c.fetch(ref);
      const result = await verifyAttestations(
        { reference: ref, descriptor: pulled.descriptor, manifest: pulled.manifest, store },
        trust(),
      );
      expect(result.attestations).toHaveLength(1);
      expect(result.attestations[0]?.statement?.predicate).toEqual(provenance);
      expect(result.attestations[0]?.signer).toEqual({ issuer: ISSUER, subjectAlternativeName: SAN });
      expect(result.failures).toHaveLength(4);
      // The provider for statement-consuming policies (policy-opa) hands out only the verified, bound one.
      const statements = await verifiedStatements(trust())({
        reference: ref,
        descriptor: pulled.descriptor,
        manifest: pulled.manifest,
        store,
      });
      expect(statements).toEqual([
        {
          predicateType: "https://slsa.dev/provenance/v1",
          statement: expect.objectContaining({ predicate: provenance }),
          signer: { subject: SAN, issuer: ISSUER, keyId: undefined },
        },
      ]);
      // Source repository is an exact match, not a prefix; branch globs do not cross `/`.
      expect(await outcome(ref, slsa({ sourceRepository: "https://github.com/acme/ap" }))).toMatch(
        /source repository "https:\/\/github.com\/acme\/app" is not "https:\/\/github.com\/acme\/ap"/,
      );
      expect(await outcome(ref, slsa({ branches: ["mai*/x"] }))).toMatch(
        /source ref "refs\/heads\/main" matches none of refs\/heads\/mai\*\/x/,
      );
      expect(await outcome(ref, slsa({ builderId: "https://evil.example/builder" }))).toMatch(
        /builder "https:\/\/github.com\/actions\/runner\/github-hosted" is not/,
      );
    } finally {
      await c.close();
    }
  });
});

describe("key pairs", () => {
  it("signs with a key pair (logged in Rekor, timestamped) and verifies against the public key", async () => {
    const ref = await pushArchive("acme/keypair");
    const { privateKey, publicKey } = pemKeys("p256");
    const c = client();
    try {
      await c.sign(ref, keySigner({ privateKeyPem: privateKey, rekorURL: mock.url, tsaURL: mock.url }));
    } finally {
      await c.close();
    }
    const policy = (keys: string[]) =>
      sigstorePolicy({ keys, trustedRoot: mock.trustedRoot, tlogThreshold: 1, timestampThreshold: 2 });
    expect(await outcome(ref, policy([publicKey]))).toBe("allowed");
    expect(await outcome(ref, policy([pemKeys("p256").publicKey]))).toMatch(
      /no trusted key verifies the signature \(1 key tried\): SIGNATURE_ERROR/,
    );
    // A keyless-only policy does not take a key signature.
    expect(await outcome(ref, sigstorePolicy(trust()))).toMatch(
      /signed with a key pair, but the policy trusts no keys/,
    );
  });
});
