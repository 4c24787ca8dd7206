import { BlobError } from "@blobkit/core";
import { isDockerHub, normalizeHost } from "./host.ts";

/**
 * Credentials for one registry host:
 * - `{ username, password }`: sent as HTTP Basic to a registry that asks for Basic, or to the token endpoint
 *   its Bearer challenge names;
 * - `{ identityToken }`: Docker's `identitytoken`, an OAuth2 refresh token exchanged at the token endpoint with
 *   `POST grant_type=refresh_token`;
 * - `{ registryToken }`: a bearer access token sent as is.
 *
 * @public
 */
export type Credential =
  | { username: string; password: string }
  | { identityToken: string; username?: string | undefined }
  | { registryToken: string };

/** Options of {@link CredentialStore.get}. @public */
export interface CredentialLookupOptions {
  /** Aborts the lookup (a running credential helper is killed); rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
}

/**
 * Where credentials come from. `get` receives a host as `host[:port]` and resolves to its credential, or
 * `undefined` when it has none. Failures (an unusable credential helper) reject with a `BlobError` whose
 * message never contains a secret.
 *
 * @public
 */
export interface CredentialStore {
  /** The credential for `host`, or `undefined`. */
  get(host: string, options?: CredentialLookupOptions): Promise<Credential | undefined>;
}

/**
 * A store that never has credentials: every request is anonymous.
 *
 * @public
 */
export const anonymousCredentials: CredentialStore = Object.freeze({
  get: async (): Promise<Credential | undefined> => undefined,
});

/** The cache/lookup key of a host: its normalized form, with Docker Hub's aliases folded into one. */
export function hostKey(host: string): string {
  const normalized = normalizeHost(host);
  return isDockerHub(normalized) ? "docker.io" : normalized;
}

/**
 * Checks the shape of a credential given by a caller and returns a copy. Throws `ERR_INVALID_ARGUMENT` (with
 * no value in the message) for anything else.
 */
export function validateCredential(value: unknown, what: string): Credential {
  const bad = (detail: string): BlobError =>
    new BlobError("ERR_INVALID_ARGUMENT", `Invalid credential for ${what}: ${detail}`, {
      reason: "invalid-credential",
    });
  if (typeof value !== "object" || value === null) throw bad("expected an object");
  const v = value as Record<string, unknown>;
  if ("registryToken" in v) {
    if (typeof v.registryToken !== "string" || v.registryToken === "")
      throw bad("registryToken must be a string");
    return { registryToken: v.registryToken };
  }
  if ("identityToken" in v) {
    if (typeof v.identityToken !== "string" || v.identityToken === "")
      throw bad("identityToken must be a string");
    if (v.username !== undefined && typeof v.username !== "string") throw bad("username must be a string");
    return v.username === undefined
      ? { identityToken: v.identityToken }
      : { identityToken: v.identityToken, username: v.username };
  }
  if (typeof v.username !== "string" || typeof v.password !== "string") {
    throw bad("expected { username, password }, { identityToken } or { registryToken }");
  }
  return { username: v.username, password: v.password };
}

/**
 * A store of fixed credentials by host. Keys are normalized like references (`https://ghcr.io/v2/` →
 * `ghcr.io`, the port kept: `localhost:5000` differs from `localhost`), and the Docker Hub aliases
 * (`docker.io`, `index.docker.io`, `registry-1.docker.io`, `https://index.docker.io/v1/`) are one host.
 * Throws `ERR_INVALID_ARGUMENT` for an invalid key or credential.
 *
 * @example
 * ```ts
 * const credentials = staticCredentials({ "ghcr.io": { username: "me", password: process.env.GHCR_TOKEN! } });
 * ```
 *
 * @public
 */
export function staticCredentials(entries: Record<string, Credential>): CredentialStore {
  if (typeof entries !== "object" || entries === null) {
    throw new BlobError("ERR_INVALID_ARGUMENT", "staticCredentials expects an object of host → credential");
  }
  const map = new Map<string, Credential>();
  for (const [host, credential] of Object.entries(entries)) {
    const key = hostKey(host);
    map.set(key, Object.freeze(validateCredential(credential, key)));
  }
  return {
    get: async (host: string): Promise<Credential | undefined> => map.get(hostKey(host)),
  };
}

/**
 * Asks each store in turn; the first credential found wins. A store that fails rejects the whole lookup (a
 * broken credential helper is reported, not skipped silently).
 *
 * @example
 * ```ts
 * const credentials = chainCredentials(staticCredentials({ ... }), dockerCredentials());
 * ```
 *
 * @public
 */
export function chainCredentials(...stores: CredentialStore[]): CredentialStore {
  for (const store of stores) {
    if (typeof store?.get !== "function") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "chainCredentials expects credential stores");
    }
  }
  return {
    get: async (host: string, options?: CredentialLookupOptions): Promise<Credential | undefined> => {
      for (const store of stores) {
        options?.signal?.throwIfAborted();
        const found = await store.get(host, options);
        if (found !== undefined) return found;
      }
      return undefined;
    },
  };
}
