import { readFile } from "node:fs/promises";
import { BlobError } from "@blobkit/core";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { getTrustedRoot } from "@sigstore/tuf";

/**
 * A Sigstore trusted root (`TrustedRoot` protobuf-JSON, as in `trusted_root.json`): the parsed object, or a
 * path to the file.
 *
 * @public
 */
export type TrustedRootInput = Record<string, unknown> | string;

/** Where to get Sigstore's trusted root through TUF when no trusted root is given. @public */
export interface TufOptions {
  /** TUF repository. Default Sigstore's public-good `https://tuf-repo-cdn.sigstore.dev`. */
  mirrorURL?: string | undefined;
  /** Initial `root.json` for a mirror other than the default (whose root is embedded in @sigstore/tuf). */
  rootPath?: string | undefined;
  /** Cache directory of the TUF metadata. Default sigstore-js' app-data directory. */
  cachePath?: string | undefined;
  /** Use the cached metadata without contacting the mirror. */
  forceCache?: boolean | undefined;
  /** Per-request timeout in ms. Default 5 s. */
  timeoutMs?: number | undefined;
  /** Retries per request. Default 2. */
  retries?: number | undefined;
}

function parseRoot(json: unknown, where: string): TrustedRoot {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new BlobError("ERR_INVALID_ARGUMENT", `the trusted root from ${where} is not a JSON object`);
  const media = (json as { mediaType?: unknown }).mediaType;
  if (typeof media === "string" && !media.startsWith("application/vnd.dev.sigstore.trustedroot"))
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `${where} is not a Sigstore trusted root (mediaType ${media})`,
    );
  let root: TrustedRoot;
  try {
    root = TrustedRoot.fromJSON(json);
  } catch (error) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `the trusted root from ${where} does not parse`, {
      cause: error,
    });
  }
  if (
    root.certificateAuthorities.length === 0 &&
    root.tlogs.length === 0 &&
    root.timestampAuthorities.length === 0
  )
    throw new BlobError("ERR_INVALID_ARGUMENT", `the trusted root from ${where} trusts nothing`);
  return root;
}

/**
 * Loads a trusted root: from `input` (object or file path; fully offline), else — only when `tuf` is not
 * `false` — from Sigstore's TUF repository (network, cached on disk by @sigstore/tuf).
 *
 * @throws BlobError `ERR_INVALID_ARGUMENT` for an unreadable or malformed root, `ERR_NETWORK` when TUF fails.
 * @public
 */
export async function loadTrustedRoot(
  input: TrustedRootInput | undefined,
  tuf: TufOptions | false = {},
): Promise<TrustedRoot> {
  if (typeof input === "string") {
    let text: string;
    try {
      text = await readFile(input, "utf8");
    } catch (error) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `cannot read the trusted root ${input}`, { cause: error });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `the trusted root ${input} is not JSON`, { cause: error });
    }
    return parseRoot(json, input);
  }
  if (input !== undefined) return parseRoot(input, "the trustedRoot option");
  if (tuf === false) throw new BlobError("ERR_INVALID_ARGUMENT", "no trusted root given and TUF is disabled");
  try {
    return await getTrustedRoot({
      ...(tuf.mirrorURL === undefined ? {} : { mirrorURL: tuf.mirrorURL }),
      ...(tuf.rootPath === undefined ? {} : { rootPath: tuf.rootPath }),
      ...(tuf.cachePath === undefined ? {} : { cachePath: tuf.cachePath }),
      ...(tuf.forceCache === undefined ? {} : { forceCache: tuf.forceCache }),
      timeout: tuf.timeoutMs ?? 5_000,
      retry: tuf.retries ?? 2,
    });
  } catch (error) {
    throw new BlobError(
      "ERR_NETWORK",
      `could not get Sigstore's trusted root through TUF from ${tuf.mirrorURL ?? "https://tuf-repo-cdn.sigstore.dev"}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error, reason: "tuf" },
    );
  }
}
