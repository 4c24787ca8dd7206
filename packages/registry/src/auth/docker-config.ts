import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { DEFAULT_HELPER_TIMEOUT_MS, runCredentialHelper } from "./credential-helper.ts";
import type { Credential, CredentialLookupOptions, CredentialStore } from "./credentials.ts";
import { DOCKER_HUB_SERVER_URL, isDockerHub, lookupKeys, normalizeHost } from "./host.ts";

/** Options of {@link dockerCredentials}. @public */
export interface DockerCredentialsOptions {
  /**
   * Path of Docker's `config.json`. Default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
   */
  configPath?: string | undefined;
  /**
   * Path of podman's / containers' `auth.json`. Default `$REGISTRY_AUTH_FILE` when set, else
   * `$XDG_RUNTIME_DIR/containers/auth.json` then `~/.config/containers/auth.json`. `false` disables it.
   */
  podmanAuthPath?: string | false | undefined;
  /** Environment used for the defaults above and given to credential helpers. Default `process.env`. */
  env?: NodeJS.ProcessEnv | undefined;
  /** A credential helper is killed and the lookup fails after this many ms. Default 10 s. */
  helperTimeoutMs?: number | undefined;
  /**
   * Receives a message (never containing a secret) when a config file exists but cannot be used (unreadable,
   * not JSON, an `auth` field that is not base64 `user:password`); that file is then ignored, like Docker
   * does. Default: `process.emitWarning`.
   */
  onWarning?: ((message: string) => void) | undefined;
}

/** The parts of Docker's config.json / containers' auth.json we read. */
interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/**
 * Credentials looked up the way Docker does, then podman:
 *
 * 1. Docker's `config.json`: a `credHelpers` entry for the host → `docker-credential-<helper> get`;
 *    otherwise a `credsStore` → that helper; otherwise the `auths` entry (`auth` = base64 `user:password`,
 *    or `username`/`password`, `identitytoken`, `registrytoken`). When a helper is configured for the host
 *    its answer is final, as in Docker: "credentials not found" means no credential from this file.
 * 2. podman's `auth.json` (same format).
 *
 * Docker Hub's aliases (`docker.io`, `index.docker.io`, `registry-1.docker.io`,
 * `https://index.docker.io/v1/`) find each other's entries, and helpers are asked for Hub with Docker's
 * `https://index.docker.io/v1/`. Keys of `auths` match after normalization (`https://host/v1/` ≡ `host`);
 * namespaced podman keys (`quay.io/org`) are not used. Files are read at each lookup (a `docker login`
 * in between is seen). A missing file means no credentials; a file that cannot be read or parsed is
 * ignored with a warning (see {@link DockerCredentialsOptions.onWarning}), never a crash. A helper that is
 * configured but fails, hangs or is not installed rejects the lookup with `ERR_IO` (as `docker pull` does).
 *
 * @example
 * ```ts
 * const auth = new RegistryAuth({ credentials: dockerCredentials() });
 * ```
 *
 * @public
 */
export function dockerCredentials(options: DockerCredentialsOptions = {}): CredentialStore {
  const env = options.env ?? process.env;
  const home = env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir();
  const dockerPath =
    options.configPath ??
    (env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== ""
      ? join(env.DOCKER_CONFIG, "config.json")
      : join(home, ".docker", "config.json"));
  let podmanPaths: string[];
  if (options.podmanAuthPath === false) podmanPaths = [];
  else if (options.podmanAuthPath !== undefined) podmanPaths = [options.podmanAuthPath];
  else if (env.REGISTRY_AUTH_FILE !== undefined && env.REGISTRY_AUTH_FILE !== "")
    podmanPaths = [env.REGISTRY_AUTH_FILE];
  else {
    podmanPaths = [];
    if (env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== "") {
      podmanPaths.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
    }
    podmanPaths.push(join(home, ".config", "containers", "auth.json"));
  }
  const warn =
    options.onWarning ??
    ((message: string) => process.emitWarning(message, { code: "BLOBKIT_DOCKER_CONFIG" }));
  const helperTimeoutMs = options.helperTimeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS;

  return {
    async get(host: string, lookup: CredentialLookupOptions = {}): Promise<Credential | undefined> {
      const normalized = normalizeHost(host);
      for (const path of [dockerPath, ...podmanPaths]) {
        lookup.signal?.throwIfAborted();
        const file = await readAuthFile(path, warn);
        if (file === undefined) continue;
        const found = await fromFile(file, path, normalized, {
          env,
          timeoutMs: helperTimeoutMs,
          warn,
          lookup,
        });
        if (found === "helper-miss") return undefined;
        if (found !== undefined) return found;
      }
      return undefined;
    },
  };
}

/** Reads and shape-checks one auth file; undefined when it is absent or unusable (warned). */
async function readAuthFile(path: string, warn: (message: string) => void): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTDIR")
      warn(`Cannot read ${path} (${code ?? "error"}); ignoring it`);
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the parser's message: V8 quotes the input, and this input holds credentials.
    warn(`${path} is not valid JSON; ignoring it`);
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    warn(`${path} is not a JSON object; ignoring it`);
    return undefined;
  }
  const raw = parsed as Record<string, unknown>;
  const file: AuthFile = {};
  if (isRecord(raw.auths)) {
    file.auths = {};
    for (const [key, value] of Object.entries(raw.auths))
      if (isRecord(value)) file.auths[key] = value as AuthEntry;
  }
  if (typeof raw.credsStore === "string" && raw.credsStore !== "") file.credsStore = raw.credsStore;
  if (isRecord(raw.credHelpers)) {
    file.credHelpers = {};
    for (const [key, value] of Object.entries(raw.credHelpers)) {
      if (typeof value === "string" && value !== "") file.credHelpers[key] = value;
    }
  }
  return file;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Finds `key` among `record`'s keys: exactly, else after normalizing both (`https://host/v1/` ≡ `host`). */
function findKey<T>(record: Record<string, T> | undefined, keys: readonly string[]): T | undefined {
  if (record === undefined) return undefined;
  for (const key of keys) if (Object.hasOwn(record, key)) return record[key];
  const wanted = new Set(keys.map(safeNormalize));
  for (const [key, value] of Object.entries(record)) {
    const normalized = safeNormalize(key);
    // Namespaced keys (`quay.io/org`) normalize to their host too; only whole-host keys may match.
    if (wanted.has(normalized) && !isNamespaced(key)) return value;
  }
  return undefined;
}

function safeNormalize(key: string): string {
  try {
    return normalizeHost(key);
  } catch {
    return "";
  }
}

/** `quay.io/org` (podman's per-namespace entries) as opposed to `https://host/v1/` or `host/`. */
function isNamespaced(key: string): boolean {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(key)) return false;
  const slash = key.indexOf("/");
  return slash >= 0 && slash < key.length - 1;
}

async function fromFile(
  file: AuthFile,
  path: string,
  host: string,
  context: {
    env: NodeJS.ProcessEnv;
    timeoutMs: number;
    warn: (message: string) => void;
    lookup: CredentialLookupOptions;
  },
): Promise<Credential | "helper-miss" | undefined> {
  const keys = lookupKeys(host);
  // Docker's order: a per-registry helper, then the default store, then the file's own entries.
  const helper = findKey(file.credHelpers, keys) ?? file.credsStore;
  if (helper !== undefined) {
    const serverUrl = isDockerHub(host) ? DOCKER_HUB_SERVER_URL : host;
    const found = await runCredentialHelper(helper, serverUrl, {
      env: context.env,
      timeoutMs: context.timeoutMs,
      signal: context.lookup.signal,
    });
    return found ?? "helper-miss";
  }
  const entry = findKey(file.auths, keys);
  if (entry === undefined) return undefined;
  return fromEntry(entry, path, context.warn);
}

/** Reads one `auths` entry. Docker's precedence: registry token, identity token, then user/password. */
function fromEntry(entry: AuthEntry, path: string, warn: (message: string) => void): Credential | undefined {
  if (typeof entry.registrytoken === "string" && entry.registrytoken !== "") {
    return { registryToken: entry.registrytoken };
  }
  let username = typeof entry.username === "string" ? entry.username : undefined;
  let password = typeof entry.password === "string" ? entry.password : undefined;
  if (typeof entry.auth === "string" && entry.auth !== "") {
    const decoded = decodeAuth(entry.auth);
    if (decoded === undefined) {
      warn(`An "auth" field in ${path} is not base64 "user:password"; ignoring that entry`);
      return undefined;
    }
    [username, password] = decoded;
  }
  if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") {
    return username === undefined || username === ""
      ? { identityToken: entry.identitytoken }
      : { identityToken: entry.identitytoken, username };
  }
  if (username === undefined || password === undefined || (username === "" && password === ""))
    return undefined;
  return { username, password };
}

function decodeAuth(auth: string): [string, string] | undefined {
  const trimmed = auth.trim();
  if (!/^[A-Za-z0-9+/\-_]*={0,2}$/.test(trimmed)) return undefined;
  const text = Buffer.from(trimmed, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  return [text.slice(0, colon), text.slice(colon + 1)];
}
