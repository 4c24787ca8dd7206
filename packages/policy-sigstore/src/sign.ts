import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  type KeyObject,
} from "node:crypto";
import { BlobError, throwIfAborted } from "@blobkit/core";
import type { Signature, Signer, SignSubject } from "@blobkit/registry";
import { bundleToJSON } from "@sigstore/bundle";
import {
  DSSEBundleBuilder,
  FulcioSigner,
  type Signer as KeyHolder,
  RekorWitness,
  TSAWitness,
  type Witness,
} from "@sigstore/sign";
import { cosignReferrerManifest } from "./attach.ts";
import {
  ANNOTATION_BUNDLE_CONTENT,
  ANNOTATION_BUNDLE_PREDICATE_TYPE,
  BUNDLE_MEDIA_TYPE,
  COSIGN_SIGN_PREDICATE_TYPE,
  DEFAULT_FULCIO_URL,
  DEFAULT_REKOR_URL,
  IN_TOTO_PAYLOAD_TYPE,
} from "./constants.ts";
import { manifestStatement } from "./statement.ts";

/** What the signed in-toto statement says besides its subject (the manifest digest). @public */
export interface StatementOptions {
  /** Predicate type. Default `https://sigstore.dev/cosign/sign/v1` (a cosign signature). */
  predicateType?: string | undefined;
  /** Predicate. Default `{}`. */
  predicate?: unknown;
  /** Annotations of the statement's subject (cosign `-a key=value`). Default none. */
  subjectAnnotations?: Record<string, unknown> | undefined;
}

/** Options every sigstore signer takes. @public */
export interface CommonSignerOptions extends StatementOptions {
  /**
   * Rekor (v1 API) to log the signature in, or `false` for none. Default: Sigstore's public Rekor for keyless
   * signing, none for key pairs.
   */
  rekorURL?: string | false | undefined;
  /** RFC 3161 timestamp authority (`…/api/v1/timestamp` is appended by sigstore-js). Default none. */
  tsaURL?: string | undefined;
  /** Per-request timeout towards Fulcio/Rekor/TSA, in ms. Default 30 s. */
  timeoutMs?: number | undefined;
  /** Retries per request towards Fulcio/Rekor/TSA. Default 2. */
  retries?: number | undefined;
  /** Clock for the referrer's `org.opencontainers.image.created` annotation. Default `new Date()`. */
  now?: (() => Date) | undefined;
}

/** Options of {@link keylessSigner}. @public */
export interface KeylessSignerOptions extends CommonSignerOptions {
  /** Fulcio base URL. Default Sigstore's public Fulcio. */
  fulcioURL?: string | undefined;
  /** The OIDC identity token (audience `sigstore`). */
  identityToken?: string | undefined;
  /**
   * Called for a token when {@link KeylessSignerOptions.identityToken} is not set. Without either, the token
   * comes from `SIGSTORE_ID_TOKEN`, else from GitHub Actions' ambient credentials
   * (`ACTIONS_ID_TOKEN_REQUEST_URL` / `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, audience `sigstore`).
   */
  getIdentityToken?: (() => Promise<string>) | undefined;
  /** Environment to read `SIGSTORE_ID_TOKEN` and GitHub's variables from. Default `process.env`. */
  env?: Record<string, string | undefined> | undefined;
}

/** Options of {@link keySigner}. @public */
export interface KeySignerOptions extends CommonSignerOptions {
  /**
   * PEM private key: PKCS#8 (`PRIVATE KEY` / `ENCRYPTED PRIVATE KEY`), `EC PRIVATE KEY` or `RSA PRIVATE KEY`
   * (legacy OpenSSL encryption included). ECDSA P-256 / P-384 / P-521, Ed25519, or RSA of at least 2048 bits.
   */
  privateKeyPem: string | Uint8Array;
  /** Password of an encrypted key. */
  password?: string | undefined;
}

/** A registry `Signer` that also tells what it is. @public */
export interface SigstoreSigner extends Signer {
  /** `"keyless"` or `"key"`. */
  readonly kind: "keyless" | "key";
  /**
   * Signs `subject` and returns the sigstore bundle (protobuf-JSON) without attaching it: what
   * {@link Signer.sign} puts in the referrer's single layer.
   */
  createBundle(subject: SignSubject, options?: { signal?: AbortSignal | undefined }): Promise<unknown>;
}

/**
 * Reads an OIDC token for keyless signing: the explicit `token`, else `getToken()`, else
 * `SIGSTORE_ID_TOKEN`, else GitHub Actions' ambient token (audience `sigstore`). Throws `ERR_UNAUTHORIZED`
 * when none is available.
 *
 * @public
 */
export async function resolveIdentityToken(
  options: Pick<KeylessSignerOptions, "identityToken" | "getIdentityToken" | "env" | "timeoutMs"> = {},
): Promise<string> {
  if (options.identityToken !== undefined && options.identityToken !== "") return options.identityToken;
  if (options.getIdentityToken !== undefined) {
    const token = await options.getIdentityToken();
    if (typeof token !== "string" || token === "")
      throw new BlobError("ERR_UNAUTHORIZED", "getIdentityToken returned no token");
    return token;
  }
  const env = options.env ?? process.env;
  const fromEnv = env.SIGSTORE_ID_TOKEN;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const requestURL = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (requestURL !== undefined && requestURL !== "" && requestToken !== undefined && requestToken !== "") {
    const url = new URL(requestURL);
    url.searchParams.set("audience", "sigstore");
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { accept: "application/json", authorization: `Bearer ${requestToken}` },
        signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
      });
    } catch (error) {
      throw new BlobError("ERR_NETWORK", "could not reach GitHub Actions' OIDC token endpoint", {
        cause: error,
        subject: url.origin,
      });
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new BlobError(
        "ERR_UNAUTHORIZED",
        `GitHub Actions' OIDC token endpoint answered HTTP ${response.status}`,
        { subject: url.origin },
      );
    }
    const body = (await response.json().catch(() => undefined)) as { value?: unknown } | undefined;
    if (typeof body?.value !== "string" || body.value === "")
      throw new BlobError("ERR_UNAUTHORIZED", "GitHub Actions' OIDC token endpoint returned no token");
    return body.value;
  }
  throw new BlobError(
    "ERR_UNAUTHORIZED",
    "no OIDC identity token for keyless signing: pass identityToken, set SIGSTORE_ID_TOKEN, or run in GitHub Actions with `id-token: write`",
  );
}

/** A loaded signing key: algorithm, public key PEM and hint. */
interface LoadedKey {
  privateKey: KeyObject;
  publicKeyPem: string;
  /** base64(SHA-256(DER SPKI)), the hint cosign and the Go tool use too. */
  hint: string;
  /** Digest for `crypto.sign` (`null` for Ed25519). */
  hash: string | null;
}

/**
 * Loads a PEM private key and checks it is an accepted algorithm. Throws `ERR_INVALID_ARGUMENT` with the reason
 * (never the key or the password).
 */
export function loadSigningKey(pem: string | Uint8Array, password?: string): LoadedKey {
  const text = typeof pem === "string" ? pem : new TextDecoder().decode(pem);
  if (text.includes("ENCRYPTED SIGSTORE PRIVATE KEY") || text.includes("ENCRYPTED COSIGN PRIVATE KEY"))
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      "cosign's own encrypted key format (scrypt + secretbox) is not supported: export the key as PKCS#8 PEM",
    );
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(
      password === undefined
        ? { key: text, format: "pem" }
        : { key: text, format: "pem", passphrase: password },
    );
  } catch (error) {
    const encrypted = /ENCRYPTED|Proc-Type: 4,ENCRYPTED/.test(text);
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      encrypted
        ? password === undefined
          ? "the private key is encrypted and no password was given"
          : "could not decrypt the private key (wrong password?)"
        : "not a PEM private key",
      { cause: error instanceof Error ? new Error(error.message) : undefined },
    );
  }
  let hash: string | null;
  const type = privateKey.asymmetricKeyType;
  const details = privateKey.asymmetricKeyDetails ?? {};
  switch (type) {
    case "ec":
      switch (details.namedCurve) {
        case "prime256v1":
          hash = "sha256";
          break;
        case "secp384r1":
          hash = "sha384";
          break;
        case "secp521r1":
          hash = "sha512";
          break;
        default:
          throw new BlobError(
            "ERR_INVALID_ARGUMENT",
            `unsupported ECDSA curve ${String(details.namedCurve)}: use P-256, P-384 or P-521`,
          );
      }
      break;
    case "ed25519":
      hash = null;
      break;
    case "rsa":
      if ((details.modulusLength ?? 0) < 2048)
        throw new BlobError(
          "ERR_INVALID_ARGUMENT",
          `RSA keys need at least 2048 bits (got ${details.modulusLength ?? 0})`,
        );
      hash = "sha256";
      break;
    default:
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        `unsupported key type ${String(type)}: use ECDSA P-256/P-384, Ed25519 or RSA ≥ 2048`,
      );
  }
  const publicKey = createPublicKey(privateKey);
  const der = publicKey.export({ format: "der", type: "spki" });
  return {
    privateKey,
    publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
    hint: createHash("sha256").update(der).digest("base64"),
    hash,
  };
}

/** RFC 3339 at second precision in UTC, as cosign writes `org.opencontainers.image.created`. */
export function rfc3339Seconds(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

function witnesses(options: CommonSignerOptions, defaultRekor: string | false): Witness[] {
  const fetchOptions = { timeout: options.timeoutMs ?? 30_000, retry: options.retries ?? 2 };
  const list: Witness[] = [];
  const rekorURL = options.rekorURL ?? defaultRekor;
  if (rekorURL !== false)
    list.push(new RekorWitness({ rekorBaseURL: rekorURL, entryType: "dsse", ...fetchOptions }));
  if (options.tsaURL !== undefined)
    list.push(new TSAWitness({ tsaBaseURL: options.tsaURL, ...fetchOptions }));
  return list;
}

/** Removes `secret` from an error's message chain (sigstore-js puts a rejected token in its messages). */
function scrub(error: unknown, secret: string | undefined): unknown {
  if (secret === undefined || secret === "") return error;
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    if (e.message.includes(secret)) e.message = e.message.split(secret).join("<token>");
    e = e.cause;
  }
  return error;
}

function describe(error: unknown): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ");
}

function makeSigner(
  kind: "keyless" | "key",
  options: CommonSignerOptions,
  builder: () => Promise<{ builder: DSSEBundleBuilder; secret?: string | undefined }>,
): SigstoreSigner {
  const predicateType = options.predicateType ?? COSIGN_SIGN_PREDICATE_TYPE;
  const createBundle = async (
    subject: SignSubject,
    signOptions: { signal?: AbortSignal | undefined } = {},
  ): Promise<unknown> => {
    throwIfAborted(signOptions.signal);
    const statement = manifestStatement(
      subject.descriptor.digest,
      predicateType,
      options.predicate ?? {},
      options.subjectAnnotations,
    );
    const payload = Buffer.from(JSON.stringify(statement));
    let secret: string | undefined;
    try {
      const made = await builder();
      secret = made.secret;
      const bundle = await made.builder.create({ data: payload, type: IN_TOTO_PAYLOAD_TYPE });
      throwIfAborted(signOptions.signal);
      return bundleToJSON(bundle);
    } catch (error) {
      if (signOptions.signal?.aborted) throw signOptions.signal.reason;
      if (error instanceof BlobError) throw error;
      scrub(error, secret);
      throw new BlobError("ERR_NETWORK", `sigstore signing failed: ${describe(error)}`, {
        cause: error,
        reason: "sigstore-sign",
      });
    }
  };
  return {
    kind,
    createBundle,
    async sign(subject, signOptions): Promise<Signature> {
      const bundle = await createBundle(subject, signOptions);
      const annotations = {
        [ANNOTATION_BUNDLE_CONTENT]: "dsse-envelope",
        [ANNOTATION_BUNDLE_PREDICATE_TYPE]: predicateType,
        "org.opencontainers.image.created": rfc3339Seconds(options.now?.() ?? new Date()),
      };
      return {
        artifactType: BUNDLE_MEDIA_TYPE,
        layers: [{ mediaType: BUNDLE_MEDIA_TYPE, bytes: new TextEncoder().encode(JSON.stringify(bundle)) }],
        annotations,
        // Client.sign then writes cosign's referrer layout byte for byte.
        referrerManifest: (signed, layers) =>
          cosignReferrerManifest(signed, BUNDLE_MEDIA_TYPE, layers, annotations),
      };
    },
  };
}

/**
 * A keyless (Fulcio) signer: an ephemeral P-256 key certified by Fulcio for the OIDC identity, the signature
 * logged in Rekor (`dsse` entry) and optionally timestamped by a TSA. It signs, like `cosign sign`, a DSSE
 * envelope over an in-toto Statement v1 whose subject is the manifest digest (predicate type
 * `https://sigstore.dev/cosign/sign/v1` unless {@link StatementOptions.predicateType} says otherwise), packed in
 * a sigstore bundle v0.3. Pass it to `Client.sign` (or {@link signReference} for cosign's exact referrer
 * layout).
 *
 * @public
 */
export function keylessSigner(options: KeylessSignerOptions = {}): SigstoreSigner {
  return makeSigner("keyless", options, async () => {
    const token = await resolveIdentityToken(options);
    const signer = new FulcioSigner({
      fulcioBaseURL: options.fulcioURL ?? DEFAULT_FULCIO_URL,
      identityProvider: { getToken: async () => token },
      timeout: options.timeoutMs ?? 30_000,
      retry: options.retries ?? 2,
    });
    return {
      builder: new DSSEBundleBuilder({ signer, witnesses: witnesses(options, DEFAULT_REKOR_URL) }),
      secret: token,
    };
  });
}

/**
 * A key-pair signer (cosign `sign --key`): the bundle carries the public key's hint
 * (base64 SHA-256 of its DER SPKI) instead of a certificate. Rekor and a TSA are used only when configured.
 * The key is loaded (and its algorithm checked) when the signer is created.
 *
 * @public
 */
export function keySigner(options: KeySignerOptions): SigstoreSigner {
  const key = loadSigningKey(options.privateKeyPem, options.password);
  const holder: KeyHolder = {
    async sign(data) {
      return {
        signature: cryptoSign(key.hash, data, key.privateKey),
        key: { $case: "publicKey", publicKey: key.publicKeyPem, hint: key.hint },
      };
    },
  };
  return makeSigner("key", options, async () => ({
    builder: new DSSEBundleBuilder({ signer: holder, witnesses: witnesses(options, false) }),
  }));
}

/** The public key (SPKI PEM) of a private key, e.g. to configure a verification policy. @public */
export function publicKeyFromPrivate(privateKeyPem: string | Uint8Array, password?: string): string {
  return loadSigningKey(privateKeyPem, password).publicKeyPem;
}
