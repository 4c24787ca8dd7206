import { generateKeyPairSync } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Descriptor } from "@blobkit/core";
import type { Client, Signature } from "@blobkit/registry";

export const ISSUER = "https://token.actions.githubusercontent.com";
export const SAN = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
export const OTHER_ISSUER = "https://accounts.example.com";

/** Writes a small tree under `dir` and returns `dir`. */
export async function makeTree(dir: string, files: Record<string, string>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

/** The resolved descriptor of `reference` (mediaType, digest, size of the raw manifest). */
export async function subjectOf(
  client: Client,
  reference: string,
): Promise<{ descriptor: Descriptor; bytes: Uint8Array }> {
  const fetched = await client.fetch(reference);
  return {
    descriptor: {
      mediaType: fetched.descriptor.mediaType,
      digest: fetched.descriptor.digest,
      size: fetched.manifest.raw.length,
    },
    bytes: fetched.manifest.raw,
  };
}

/** PEM key pairs of every accepted algorithm (and a too-small RSA one). */
export function pemKeys(type: "p256" | "p384" | "ed25519" | "rsa2048" | "rsa1024"): {
  privateKey: string;
  publicKey: string;
} {
  const pair =
    type === "p256" || type === "p384"
      ? generateKeyPairSync("ec", { namedCurve: type === "p256" ? "P-256" : "P-384" })
      : type === "ed25519"
        ? generateKeyPairSync("ed25519")
        : generateKeyPairSync("rsa", { modulusLength: type === "rsa2048" ? 2048 : 1024 });
  return {
    privateKey: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** The fields of a sigstore bundle v0.3 (protobuf-JSON) the tests look at. */
export interface BundleJSON {
  mediaType: string;
  verificationMaterial: {
    certificate: { rawBytes: string };
    tlogEntries: { kindVersion: unknown; inclusionPromise: { signedEntryTimestamp: string } }[];
    timestampVerificationData: { rfc3161Timestamps: unknown[] };
  };
  dsseEnvelope: { payload: string; payloadType: string; signatures: { sig: string; keyid?: string }[] };
}

/** The bundle JSON inside a signer's output. */
export function bundleOf(signature: Signature): BundleJSON {
  return JSON.parse(new TextDecoder().decode(signature.layers[0]?.bytes)) as BundleJSON;
}

/** A signature whose bundle JSON was edited by `edit`. */
export function editBundle(signature: Signature, edit: (bundle: BundleJSON) => void): Signature {
  const bundle = bundleOf(signature);
  edit(bundle);
  return {
    ...signature,
    layers: [
      {
        mediaType: signature.layers[0]?.mediaType ?? "",
        bytes: new TextEncoder().encode(JSON.stringify(bundle)),
      },
    ],
  };
}
