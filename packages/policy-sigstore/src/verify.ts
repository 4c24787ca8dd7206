import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { BlobError, type Descriptor } from "@blobkit/core";
import type { Policy, PolicyContext, PolicyDecision } from "@blobkit/registry";
import { type Bundle, bundleFromJSON } from "@sigstore/bundle";
import { dsse } from "@sigstore/core";
import type { TrustedRoot } from "@sigstore/protobuf-specs";
import {
  type SignedEntity,
  type TrustMaterial,
  toSignedEntity,
  toTrustMaterial,
  Verifier,
} from "@sigstore/verify";
import {
  ANNOTATION_BUNDLE_PREDICATE_TYPE,
  BUNDLE_MEDIA_TYPE,
  COSIGN_SIGN_PREDICATE_TYPE,
  IN_TOTO_PAYLOAD_TYPE,
  SLSA_PROVENANCE_V1,
  SLSA_PROVENANCE_V02,
} from "./constants.ts";
import {
  type GitHubActionsIdentity,
  githubActionsMatcher,
  type Identity,
  type IdentityMatcher,
  identityMatcher,
} from "./identity.ts";
import { describeSubjects, type InTotoStatement, parseStatement, statementCovers } from "./statement.ts";
import { loadTrustedRoot, type TrustedRootInput, type TufOptions } from "./trust.ts";

/** Who and what to trust: shared by {@link sigstorePolicy}, {@link verifyAttestations} and {@link slsaPolicy}. @public */
export interface TrustOptions {
  /** Keyless identities (issuer + SAN, exact unless an explicit anchored regex is given). */
  identities?: readonly Identity[] | undefined;
  /** GitHub Actions workflow identities (one repository each). */
  githubActions?: GitHubActionsIdentity | readonly GitHubActionsIdentity[] | undefined;
  /** Trusted public keys (PEM SPKI, or Node `KeyObject`s) for key-pair signatures; the bundle's hint is ignored. */
  keys?: readonly (string | Uint8Array | KeyObject)[] | undefined;
  /**
   * Trusted root (object or file path): verification is then fully offline. Without it, keyless verification
   * gets Sigstore's public-good root through TUF ({@link TrustOptions.tuf}); a keys-only policy uses no root
   * and ignores transparency-log entries and timestamps it cannot check (its thresholds default to 0).
   */
  trustedRoot?: TrustedRootInput | undefined;
  /** TUF options (used only without {@link TrustOptions.trustedRoot}); `false` forbids TUF. */
  tuf?: TufOptions | false | undefined;
  /** Minimum verified transparency-log entries. Default 1 for certificates, 0 for keys. */
  tlogThreshold?: number | undefined;
  /** Minimum verified timestamps (TSA or log integration time). Default 1 for certificates, 0 for keys. */
  timestampThreshold?: number | undefined;
  /** Minimum verified SCTs in a Fulcio certificate. Default 1. */
  ctlogThreshold?: number | undefined;
  /** At most this many referrers are tried (each costs two fetches). Default 32. */
  maxReferrers?: number | undefined;
}

/** Options of {@link sigstorePolicy}. @public */
export interface SigstorePolicyOptions extends TrustOptions {
  /** Policy name in denials. Default `sigstore`. */
  name?: string | undefined;
  /**
   * Also accept message-signature bundles over the raw manifest bytes (what meigma/blob's Go signer writes).
   * Default true.
   */
  acceptMessageSignatures?: boolean | undefined;
}

/** Who signed a verified bundle. @public */
export interface VerifiedSigner {
  /** OIDC issuer (keyless). */
  issuer?: string | undefined;
  /** Certificate SAN (keyless). */
  subjectAlternativeName?: string | undefined;
  /** base64 SHA-256 of the trusted key's DER SPKI (key pair). */
  keyId?: string | undefined;
}

/** A verified signature or attestation referrer. @public */
export interface VerifiedBundle {
  /** The referrer manifest's descriptor. */
  referrer: Descriptor;
  /** The in-toto statement (absent for message signatures). */
  statement?: InTotoStatement | undefined;
  /** The bundle as JSON. */
  bundle: unknown;
  signer: VerifiedSigner;
}

/** A referrer that did not verify, and why. @public */
export interface ReferrerFailure {
  referrer: string;
  reason: string;
}

/** Options of {@link verifyAttestations}. @public */
export interface AttestationOptions extends TrustOptions {
  /** Predicate types looked for. Default SLSA provenance v1 and v0.2. */
  predicateTypes?: readonly string[] | undefined;
}

/** What {@link verifyAttestations} found. @public */
export interface AttestationResult {
  /** Attestations whose signature, signer and subject (= the manifest digest) verified. */
  attestations: VerifiedBundle[];
  /** Referrers that were tried and rejected, with the reason. */
  failures: ReferrerFailure[];
}

const IN_TOTO_ARTIFACT_TYPE = "application/vnd.in-toto+json";
const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;

function short(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}

function message(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const prefix = typeof code === "string" && !code.startsWith("ERR_") ? `${code}: ` : "";
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${prefix}${error.message}${cause}`;
  }
  return String(error);
}

/** Compiled trust options, with a lazily loaded (and memoized) trusted root. */
class Trust {
  readonly matchers: IdentityMatcher[];
  readonly keys: { key: KeyObject; id: string }[];
  readonly #options: TrustOptions;
  #root: Promise<TrustedRoot> | undefined;

  constructor(options: TrustOptions) {
    this.#options = options;
    const gh = options.githubActions;
    this.matchers = [
      ...(options.identities ?? []).map(identityMatcher),
      ...(gh === undefined ? [] : Array.isArray(gh) ? gh : [gh as GitHubActionsIdentity]).map(
        githubActionsMatcher,
      ),
    ];
    this.keys = (options.keys ?? []).map((k) => {
      let key: KeyObject;
      try {
        key =
          typeof k === "string" || k instanceof Uint8Array
            ? createPublicKey(typeof k === "string" ? k : Buffer.from(k))
            : k.type === "private"
              ? createPublicKey(k)
              : k;
      } catch (error) {
        throw new BlobError("ERR_INVALID_ARGUMENT", "a trusted key is not a PEM public key", {
          cause: error,
        });
      }
      const der = key.export({ format: "der", type: "spki" });
      return { key, id: createHash("sha256").update(der).digest("base64") };
    });
    if (this.matchers.length === 0 && this.keys.length === 0)
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        "a sigstore policy needs identities, githubActions or keys: without them any certificate from the trusted CA would pass",
      );
    for (const [name, value] of [
      ["tlogThreshold", options.tlogThreshold],
      ["timestampThreshold", options.timestampThreshold],
      ["ctlogThreshold", options.ctlogThreshold],
    ] as const)
      if (value !== undefined && (!Number.isInteger(value) || value < 0))
        throw new BlobError("ERR_INVALID_ARGUMENT", `${name} must be a non-negative integer`);
  }

  get maxReferrers(): number {
    return this.#options.maxReferrers ?? 32;
  }

  /** The trusted root, or `undefined` for a keys-only policy without one. */
  async root(needed: boolean): Promise<TrustedRoot | undefined> {
    const o = this.#options;
    if (!needed && o.trustedRoot === undefined && (o.tuf === undefined || o.tuf === false)) return undefined;
    if (this.#root === undefined) {
      const loading = loadTrustedRoot(o.trustedRoot, o.tuf ?? {});
      this.#root = loading;
      // A failed load (network) is retried on the next evaluation.
      loading.catch(() => {
        if (this.#root === loading) this.#root = undefined;
      });
    }
    return this.#root;
  }

  /** Verifies the bundle's signature, certificate chain / key, log entries and timestamps, then the signer. */
  async verify(bundle: Bundle, artifact: Buffer | undefined): Promise<VerifiedSigner> {
    const o = this.#options;
    const keyMaterial = bundle.verificationMaterial.content.$case === "publicKey";
    if (keyMaterial && this.keys.length === 0)
      throw new Error("signed with a key pair, but the policy trusts no keys");
    if (!keyMaterial && this.matchers.length === 0)
      throw new Error("signed with a certificate (keyless), but the policy trusts no identities");
    const root = await this.root(!keyMaterial);
    const entity = toSignedEntity(bundle, artifact);
    const checked = withHashAgility(entity, bundle, artifact);
    if (keyMaterial) {
      let base: TrustMaterial;
      if (root === undefined) {
        // Nothing to check log entries or timestamps against: they are ignored, not trusted.
        base = emptyTrustMaterial();
        checked.tlogEntries = [];
        checked.timestamps = [];
      } else base = toTrustMaterial(root);
      const thresholds = {
        tlogThreshold: o.tlogThreshold ?? 0,
        timestampThreshold: o.timestampThreshold ?? 0,
        ctlogThreshold: 0,
      };
      const errors: string[] = [];
      for (const { key, id } of this.keys) {
        const material: TrustMaterial = {
          ...base,
          publicKey: () => ({ publicKey: key, validFor: () => true }),
        };
        try {
          new Verifier(material, thresholds).verify(checked);
          return { keyId: id };
        } catch (error) {
          errors.push(message(error));
        }
      }
      const unique = [...new Set(errors)];
      throw new Error(
        `no trusted key verifies the signature (${this.keys.length} key${this.keys.length === 1 ? "" : "s"} tried): ${unique.join("; ")}`,
      );
    }
    if (root === undefined) throw new Error("no trusted root");
    const verifier = new Verifier(toTrustMaterial(root), {
      tlogThreshold: o.tlogThreshold ?? 1,
      timestampThreshold: o.timestampThreshold ?? 1,
      ctlogThreshold: o.ctlogThreshold ?? 1,
    });
    let signer: ReturnType<Verifier["verify"]>;
    try {
      signer = verifier.verify(checked);
    } catch (error) {
      throw new Error(`signature verification failed: ${message(error)}`);
    }
    const issuer = signer.identity?.extensions?.issuer;
    const san = signer.identity?.subjectAlternativeName;
    if (!this.matchers.some((m) => m.matches(issuer, san)))
      throw new Error(
        `certificate identity (issuer ${JSON.stringify(issuer ?? null)}, subject ${JSON.stringify(
          san ?? null,
        )}) matches none of the trusted identities: ${this.matchers.map((m) => m.description).join("; ")}`,
      );
    return { issuer, subjectAlternativeName: san };
  }
}

function emptyTrustMaterial(): TrustMaterial {
  return {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
    publicKey: () => {
      throw new Error("no key");
    },
  };
}

/**
 * sigstore-js verifies with the key type's default digest (SHA-256 for ECDSA); cosign, sigstore-go and
 * meigma/blob sign with P-384/P-521 keys over SHA-384/SHA-512. Accept either for ECDSA keys.
 */
function withHashAgility(entity: SignedEntity, bundle: Bundle, artifact: Buffer | undefined): SignedEntity {
  const content = entity.signature;
  const signed =
    bundle.content.$case === "dsseEnvelope"
      ? dsse.preAuthEncoding(bundle.content.dsseEnvelope.payloadType, bundle.content.dsseEnvelope.payload)
      : artifact;
  return {
    ...entity,
    signature: {
      signature: content.signature,
      compareSignature: (s) => content.compareSignature(s),
      compareDigest: (d) => content.compareDigest(d),
      compareSignedDigest: (d) => content.compareSignedDigest(d),
      verifySignature: (key) => {
        if (content.verifySignature(key)) return true;
        if (key.asymmetricKeyType !== "ec" || signed === undefined) return false;
        return ["sha384", "sha512"].some((hash) => {
          try {
            return cryptoVerify(hash, signed, key, content.signature);
          } catch {
            return false;
          }
        });
      },
    },
  };
}

type Expectation =
  | { kind: "signature"; acceptMessageSignatures: boolean }
  | { kind: "attestation"; predicateTypes: readonly string[] };

/** Fetches one referrer, checks its bundle against the manifest, and verifies it. Throws with the reason. */
async function verifyReferrer(
  context: PolicyContext,
  referrer: Descriptor,
  trust: Trust,
  expect: Expectation,
): Promise<VerifiedBundle> {
  const { store, signal } = context;
  const subjectDigest = context.descriptor.digest;
  const fetched = await store.fetchManifest(referrer.digest, { signal, maxBytes: 1024 * 1024 });
  let manifest: { subject?: { digest?: unknown }; layers?: unknown; artifactType?: unknown };
  try {
    manifest = JSON.parse(new TextDecoder().decode(fetched.bytes)) as typeof manifest;
  } catch {
    throw new Error("the referrer manifest is not JSON");
  }
  if (manifest.subject?.digest !== subjectDigest)
    throw new Error(
      `the referrer's subject is ${String(manifest.subject?.digest ?? "missing")}, not ${subjectDigest}`,
    );
  const layers = (Array.isArray(manifest.layers) ? manifest.layers : []) as Descriptor[];
  const bundleLayer = layers.find(
    (l) => typeof l?.mediaType === "string" && l.mediaType.startsWith("application/vnd.dev.sigstore.bundle"),
  );
  if (bundleLayer === undefined) {
    if (
      layers.some(
        (l) =>
          l?.mediaType === IN_TOTO_ARTIFACT_TYPE || l?.mediaType === "application/vnd.dsse.envelope.v1+json",
      )
    )
      throw new Error(
        "an unsigned attestation: a bare in-toto statement / DSSE envelope without a sigstore bundle",
      );
    throw new Error("the referrer has no sigstore bundle layer");
  }
  const bytes = await store.fetchBlob(bundleLayer, { signal, maxBytes: MAX_BUNDLE_BYTES });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error("the bundle is not JSON");
  }
  const rawEnvelope = (json as { dsseEnvelope?: { signatures?: unknown } } | null)?.dsseEnvelope;
  if (
    rawEnvelope !== undefined &&
    (!Array.isArray(rawEnvelope.signatures) || rawEnvelope.signatures.length === 0)
  )
    throw new Error("an unsigned attestation: the DSSE envelope has no signature");
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (error) {
    throw new Error(`not a valid sigstore bundle: ${message(error)}`);
  }
  let statement: InTotoStatement | undefined;
  let artifact: Buffer | undefined;
  if (bundle.content.$case === "dsseEnvelope") {
    const envelope = bundle.content.dsseEnvelope;
    if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE)
      throw new Error(
        `DSSE payload type ${JSON.stringify(envelope.payloadType)} is not ${IN_TOTO_PAYLOAD_TYPE}`,
      );
    if (envelope.signatures.length === 0)
      throw new Error("an unsigned attestation: the DSSE envelope has no signature");
    if (envelope.signatures.length > 1)
      throw new Error(
        `the DSSE envelope has ${envelope.signatures.length} signatures; exactly one is supported`,
      );
    statement = parseStatement(envelope.payload);
    if (expect.kind === "signature") {
      if (statement.predicateType !== COSIGN_SIGN_PREDICATE_TYPE)
        throw new Error(
          `predicate type ${JSON.stringify(statement.predicateType)} is not a signature (${COSIGN_SIGN_PREDICATE_TYPE})`,
        );
    } else if (!expect.predicateTypes.includes(statement.predicateType))
      throw new Error(
        `predicate type ${JSON.stringify(statement.predicateType)} is not one of ${expect.predicateTypes.join(", ")}`,
      );
    if (!statementCovers(statement, subjectDigest))
      throw new Error(`the statement's subject is ${describeSubjects(statement)}, not ${subjectDigest}`);
  } else {
    if (expect.kind !== "signature" || !expect.acceptMessageSignatures)
      throw new Error("a message signature, not an in-toto attestation");
    // The signature covers the raw manifest bytes: a signature of another manifest fails the digest check.
    artifact = Buffer.from(context.manifest.raw);
  }
  const signer = await trust.verify(bundle, artifact);
  return { referrer, statement, bundle: json, signer };
}

async function listReferrers(
  context: PolicyContext,
  artifactTypes: readonly string[],
): Promise<Descriptor[]> {
  const all = await context.store.referrers(context.descriptor.digest, { signal: context.signal });
  return all.filter((r) => r.artifactType !== undefined && artifactTypes.includes(r.artifactType));
}

function rethrowAbort(context: PolicyContext, error: unknown): void {
  if (context.signal?.aborted) throw context.signal.reason;
  void error;
}

/**
 * Tries `referrers` in order, collecting verified bundles (all of them, or stopping at the first when `first`)
 * and the reason each failed one was rejected.
 */
async function tryReferrers(
  context: PolicyContext,
  referrers: Descriptor[],
  trust: Trust,
  expect: Expectation,
  first: boolean,
): Promise<{ verified: VerifiedBundle[]; failures: ReferrerFailure[] }> {
  const verified: VerifiedBundle[] = [];
  const failures: ReferrerFailure[] = [];
  const tried = referrers.slice(0, trust.maxReferrers);
  for (const referrer of tried) {
    try {
      verified.push(await verifyReferrer(context, referrer, trust, expect));
      if (first) break;
    } catch (error) {
      rethrowAbort(context, error);
      failures.push({ referrer: referrer.digest, reason: message(error) });
    }
  }
  if (referrers.length > tried.length)
    failures.push({
      referrer: "…",
      reason: `${referrers.length - tried.length} more referrers were not tried (maxReferrers ${trust.maxReferrers})`,
    });
  return { verified, failures };
}

function formatFailures(failures: ReferrerFailure[]): string[] {
  return failures.map((f) => (f.referrer === "…" ? f.reason : `referrer ${short(f.referrer)}: ${f.reason}`));
}

/**
 * A registry {@link Policy} that allows a manifest only when one of its signature referrers verifies: a sigstore
 * bundle whose DSSE in-toto statement has predicate type `https://sigstore.dev/cosign/sign/v1` and a subject
 * equal to the manifest digest (or a message signature over the manifest bytes), signed by a trusted identity
 * or key, with the required transparency-log entries, SCTs and timestamps. It tries every signature referrer;
 * when all fail it says why each failed. It fails closed: no referrers, a store that cannot list referrers or
 * a network error deny, with the reason.
 *
 * @public
 */
export function sigstorePolicy(options: SigstorePolicyOptions): Policy {
  const trust = new Trust(options);
  const name = options.name ?? "sigstore";
  const expect: Expectation = {
    kind: "signature",
    acceptMessageSignatures: options.acceptMessageSignatures !== false,
  };
  return {
    name,
    async evaluate(context): Promise<PolicyDecision> {
      const digest = context.descriptor.digest;
      let referrers: Descriptor[];
      try {
        referrers = await listReferrers(context, [BUNDLE_MEDIA_TYPE]);
      } catch (error) {
        rethrowAbort(context, error);
        return { allow: false, reasons: [`could not list the signatures of ${digest}: ${message(error)}`] };
      }
      // Referrers announcing another predicate type (attestations) go last: signatures are tried first.
      referrers.sort((a, b) => rank(a) - rank(b));
      if (referrers.length === 0)
        return { allow: false, reasons: [`no signatures: ${digest} has no ${BUNDLE_MEDIA_TYPE} referrers`] };
      const { verified, failures } = await tryReferrers(context, referrers, trust, expect, true);
      const ok = verified[0];
      if (ok !== undefined)
        return {
          allow: true,
          reasons: [`signature ${short(ok.referrer.digest)} verified (${signerText(ok.signer)})`],
        };
      return {
        allow: false,
        reasons: [
          `none of the ${referrers.length} signature referrer${referrers.length === 1 ? "" : "s"} of ${digest} verified`,
          ...formatFailures(failures),
        ],
      };
    },
  };
}

function rank(descriptor: Descriptor): number {
  const type = descriptor.annotations?.[ANNOTATION_BUNDLE_PREDICATE_TYPE];
  return type === undefined || type === COSIGN_SIGN_PREDICATE_TYPE ? 0 : 1;
}

function signerText(signer: VerifiedSigner): string {
  return signer.keyId !== undefined
    ? `key ${signer.keyId}`
    : `${signer.subjectAlternativeName ?? "?"} from ${signer.issuer ?? "?"}`;
}

/**
 * Verifies every attestation referrer of the manifest with the given predicate types (default SLSA provenance
 * v1 / v0.2): the same checks as {@link sigstorePolicy} (bundle signature, trusted identity or key, log entries,
 * timestamps, statement subject = the manifest digest). Returns the verified statements for other policies to
 * use, and why every other referrer was rejected. Listing failures (network, no referrers API) throw.
 *
 * @public
 */
export async function verifyAttestations(
  context: PolicyContext,
  options: AttestationOptions,
): Promise<AttestationResult> {
  return attestationVerifier(options)(context);
}

/**
 * {@link verifyAttestations} with its options compiled once (the trusted root is loaded once and reused).
 *
 * @public
 */
export function attestationVerifier(
  options: AttestationOptions,
): (context: PolicyContext) => Promise<AttestationResult> {
  const trust = new Trust(options);
  const predicateTypes = options.predicateTypes ?? [SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02];
  return async (context) => {
    const referrers = await listReferrers(context, [BUNDLE_MEDIA_TYPE, IN_TOTO_ARTIFACT_TYPE]);
    // Referrers announcing an unrelated predicate type are not fetched.
    const candidates = referrers.filter((r) => {
      const announced = r.annotations?.[ANNOTATION_BUNDLE_PREDICATE_TYPE];
      return announced === undefined || predicateTypes.includes(announced);
    });
    const { verified, failures } = await tryReferrers(
      context,
      candidates,
      trust,
      { kind: "attestation", predicateTypes },
      false,
    );
    return { attestations: verified, failures };
  };
}

/** Options of {@link slsaPolicy}. @public */
export interface SlsaPolicyOptions extends TrustOptions {
  /** Policy name in denials. Default `slsa`. */
  name?: string | undefined;
  /** Required builder id (exact). */
  builderId?: string | undefined;
  /**
   * Required source repository, compared **exactly** after normalization (`git+` prefix, `@ref` suffix and a
   * trailing `.git` removed): `https://github.com/acme/app` does not accept `https://github.com/acme/app-evil`.
   */
  sourceRepository?: string | undefined;
  /** Allowed source refs as full-ref globs (`refs/heads/main`, `refs/tags/v*`; `*` does not cross `/`). */
  refs?: readonly string[] | undefined;
  /** Allowed branch globs (`refs/heads/<glob>`). */
  branches?: readonly string[] | undefined;
  /** Allowed tag globs (`refs/tags/<glob>`). */
  tags?: readonly string[] | undefined;
  /** Accepted predicate types. Default SLSA provenance v1 and v0.2. */
  predicateTypes?: readonly string[] | undefined;
}

/** What a SLSA provenance says about its build. @public */
export interface ProvenanceFacts {
  builderId?: string | undefined;
  sourceRepository?: string | undefined;
  sourceRef?: string | undefined;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function splitUri(uri: string | undefined): { repository?: string; ref?: string } {
  if (uri === undefined) return {};
  const at = uri.lastIndexOf("@");
  const slash = uri.lastIndexOf("/");
  // `…/repo@refs/heads/main`: the `@` comes after the last path segment's start.
  if (at > uri.indexOf("://") + 2 && at < uri.length - 1 && uri.slice(at + 1).startsWith("refs/"))
    return { repository: uri.slice(0, at), ref: uri.slice(at + 1) };
  if (at > slash) return { repository: uri.slice(0, at), ref: uri.slice(at + 1) };
  return { repository: uri };
}

/** Normalizes a repository URI for exact comparison: no `git+`, no `@ref`, no trailing `.git` or `/`. @public */
export function normalizeRepository(uri: string): string {
  let out = uri.trim();
  if (out.startsWith("git+")) out = out.slice(4);
  out = splitUri(out).repository ?? out;
  out = out.replace(/\/+$/, "").replace(/\.git$/, "");
  return out;
}

/** Extracts builder id, source repository and ref from SLSA provenance v1 or v0.2. @public */
export function provenanceFacts(statement: InTotoStatement): ProvenanceFacts {
  const predicate = asRecord(statement.predicate) ?? {};
  if (statement.predicateType === SLSA_PROVENANCE_V02) {
    const builderId = str(asRecord(predicate.builder)?.id);
    const configSource = asRecord(asRecord(predicate.invocation)?.configSource);
    let { repository, ref } = splitUri(str(configSource?.uri));
    if (repository === undefined) {
      const materials = Array.isArray(predicate.materials) ? predicate.materials : [];
      ({ repository, ref } = splitUri(str(asRecord(materials[0])?.uri)));
    }
    return { builderId, sourceRepository: repository && normalizeRepository(repository), sourceRef: ref };
  }
  const builderId = str(asRecord(asRecord(predicate.runDetails)?.builder)?.id);
  const definition = asRecord(predicate.buildDefinition);
  const workflow = asRecord(asRecord(definition?.externalParameters)?.workflow);
  let repository = str(workflow?.repository);
  let ref = str(workflow?.ref);
  if (repository === undefined) {
    const deps = Array.isArray(definition?.resolvedDependencies) ? definition.resolvedDependencies : [];
    const fromDep = splitUri(str(asRecord(deps[0])?.uri));
    repository = fromDep.repository;
    ref ??= fromDep.ref;
  }
  return { builderId, sourceRepository: repository && normalizeRepository(repository), sourceRef: ref };
}

function refGlobs(options: SlsaPolicyOptions): { regex: RegExp; text: string } | undefined {
  const globs = [
    ...(options.refs ?? []),
    ...(options.branches ?? []).map((b) => `refs/heads/${b}`),
    ...(options.tags ?? []).map((t) => `refs/tags/${t}`),
  ];
  if (globs.length === 0) return undefined;
  const source = globs.map((g) =>
    g
      .split("*")
      .map((p) => p.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&"))
      .join("[^/]*"),
  );
  return { regex: new RegExp(`^(?:${source.join("|")})$`), text: globs.join(", ") };
}

/**
 * A registry {@link Policy} over signed SLSA provenance: it verifies the attestations like
 * {@link verifyAttestations} (signature, trusted signer, subject = the manifest digest), then requires one of
 * them to have the given builder id, exact source repository and a ref matching the globs. Unsigned or
 * mis-bound provenance never counts.
 *
 * @public
 */
export function slsaPolicy(options: SlsaPolicyOptions): Policy {
  if (
    options.builderId === undefined &&
    options.sourceRepository === undefined &&
    refGlobs(options) === undefined
  )
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      "slsaPolicy needs builderId, sourceRepository or refs to check",
    );
  const verify = attestationVerifier(options);
  const wantRepo =
    options.sourceRepository === undefined ? undefined : normalizeRepository(options.sourceRepository);
  const refs = refGlobs(options);
  const name = options.name ?? "slsa";
  return {
    name,
    async evaluate(context): Promise<PolicyDecision> {
      let result: AttestationResult;
      try {
        result = await verify(context);
      } catch (error) {
        rethrowAbort(context, error);
        return {
          allow: false,
          reasons: [`could not list the attestations of ${context.descriptor.digest}: ${message(error)}`],
        };
      }
      const reasons: string[] = [];
      for (const attestation of result.attestations) {
        const facts = provenanceFacts(attestation.statement as InTotoStatement);
        const problems: string[] = [];
        if (options.builderId !== undefined && facts.builderId !== options.builderId)
          problems.push(
            `builder ${JSON.stringify(facts.builderId ?? null)} is not ${JSON.stringify(options.builderId)}`,
          );
        if (wantRepo !== undefined && facts.sourceRepository !== wantRepo)
          problems.push(
            `source repository ${JSON.stringify(facts.sourceRepository ?? null)} is not ${JSON.stringify(wantRepo)}`,
          );
        if (refs !== undefined && (facts.sourceRef === undefined || !refs.regex.test(facts.sourceRef)))
          problems.push(`source ref ${JSON.stringify(facts.sourceRef ?? null)} matches none of ${refs.text}`);
        if (problems.length === 0)
          return {
            allow: true,
            reasons: [
              `provenance ${short(attestation.referrer.digest)} verified (${signerText(attestation.signer)})`,
            ],
          };
        reasons.push(`provenance ${short(attestation.referrer.digest)}: ${problems.join("; ")}`);
      }
      if (result.attestations.length === 0 && result.failures.length === 0)
        return { allow: false, reasons: [`no provenance attestations for ${context.descriptor.digest}`] };
      return {
        allow: false,
        reasons: [
          `no verified provenance of ${context.descriptor.digest} satisfies the policy`,
          ...reasons,
          ...formatFailures(result.failures),
        ],
      };
    },
  };
}

/** A verified attestation as policies that consume statements (e.g. `@blobkit/policy-opa`) take it. @public */
export interface StatementAttestation {
  /** The statement's predicate type. */
  predicateType: string;
  /** The verified in-toto statement. */
  statement: InTotoStatement;
  /** Who signed it. */
  signer: { subject?: string | undefined; issuer?: string | undefined; keyId?: string | undefined };
}

/**
 * An attestation provider for statement-consuming policies: verifies the manifest's attestation referrers
 * (signature, identity, subject = the manifest digest) and returns only those that verified, shaped as
 * `{ predicateType, statement, signer }` — plug it into `opaPolicy({ attestations })`.
 *
 * @public
 */
export function verifiedStatements(
  options: AttestationOptions,
): (context: PolicyContext) => Promise<StatementAttestation[]> {
  const verify = attestationVerifier(options);
  return async (context) => {
    const { attestations } = await verify(context);
    return attestations.flatMap((bundle) =>
      bundle.statement === undefined
        ? []
        : [
            {
              predicateType: bundle.statement.predicateType,
              statement: bundle.statement,
              signer: {
                subject: bundle.signer.subjectAlternativeName,
                issuer: bundle.signer.issuer,
                keyId: bundle.signer.keyId,
              },
            },
          ],
    );
  };
}
