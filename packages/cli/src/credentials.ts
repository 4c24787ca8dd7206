import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { BlobError } from "@blobkit/core";
import {
  isDockerHub,
  isLoopbackHost,
  normalizeHost,
  RegistryAuth,
  staticCredentials,
} from "@blobkit/registry";
import { CliError, EXIT } from "./exit-codes.ts";

type Env = Record<string, string | undefined>;

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (Docker's rule). @public */
export function dockerConfigPath(env: Env): string {
  if (env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== "")
    return join(env.DOCKER_CONFIG, "config.json");
  const home = env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir();
  return join(home, ".docker", "config.json");
}

/** The key Docker uses for a registry in `auths` and towards helpers (`https://index.docker.io/v1/` for Hub). */
export function serverKey(host: string): string {
  return isDockerHub(host) ? "https://index.docker.io/v1/" : host;
}

/** The host whose `/v2/` endpoint answers for `host` (Hub's API lives on registry-1.docker.io). */
function apiHost(host: string): string {
  return isDockerHub(host) ? "registry-1.docker.io" : host;
}

interface DockerConfig {
  auths?: Record<string, Record<string, unknown>>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

async function readConfig(path: string): Promise<DockerConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return {};
    throw new CliError(`cannot read ${path}: ${(error as { code?: string }).code ?? String(error)}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not an object");
    return parsed as DockerConfig;
  } catch {
    throw new CliError(`${path} is not a valid Docker config (JSON object); fix or remove it`);
  }
}

/** Writes the config atomically (temp file 0600 in the same directory, then rename). */
async function writeConfig(path: string, config: DockerConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(config, null, "\t")}\n`, { mode: 0o600, flag: "wx" });
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw new CliError(`cannot write ${path}: ${(error as { code?: string }).code ?? String(error)}`);
  }
}

function helperFor(config: DockerConfig, key: string): string | undefined {
  return config.credHelpers?.[key] ?? config.credsStore;
}

async function runHelper(name: string, verb: "store" | "erase", input: string, env: Env): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name))
    throw new CliError("invalid credential helper name in the Docker config");
  const program = `docker-credential-${name}`;
  await new Promise<void>((resolve, reject) => {
    const child = spawn(program, [verb], { env, stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    child.on("error", (error) =>
      reject(
        new CliError(
          `credential helper ${program} cannot run: ${(error as { code?: string }).code ?? error.message}`,
        ),
      ),
    );
    child.on("close", (code) => {
      // The helper's output may echo the secret: never include it.
      if (code === 0) resolve();
      else if (verb === "erase" && /not found/i.test(stderr)) resolve();
      else reject(new CliError(`credential helper ${program} ${verb} failed (exit ${code})`));
    });
    child.stdin?.end(input);
  });
}

/** Where a login was stored. */
export interface StoredCredential {
  /** `config.json` path, or `docker-credential-<name>`. */
  store: string;
  /** The key used (`host[:port]`, Hub: `https://index.docker.io/v1/`). */
  serverKey: string;
}

/**
 * Stores `username`/`password` for `host` the way `docker login` does: with a credential helper when the
 * config names one for the host (`credHelpers`) or globally (`credsStore`) — then `auths[key]` is an empty
 * object — else base64 `user:password` in `auths[key].auth`. The file is written atomically, mode 0600.
 */
export async function storeCredential(
  host: string,
  username: string,
  password: string,
  env: Env,
): Promise<StoredCredential> {
  const path = dockerConfigPath(env);
  const config = await readConfig(path);
  const key = serverKey(host);
  const helper = helperFor(config, key);
  config.auths ??= {};
  if (helper !== undefined) {
    await runHelper(
      helper,
      "store",
      JSON.stringify({ ServerURL: key, Username: username, Secret: password }),
      env,
    );
    config.auths[key] = {};
    await writeConfig(path, config);
    return { store: `docker-credential-${helper}`, serverKey: key };
  }
  config.auths[key] = { auth: Buffer.from(`${username}:${password}`, "utf8").toString("base64") };
  await writeConfig(path, config);
  return { store: path, serverKey: key };
}

/** Removes the credentials of `host` (helper `erase` and the `auths` entry). Resolves whether anything was there. */
export async function eraseCredential(
  host: string,
  env: Env,
): Promise<{ removed: boolean; store: string; serverKey: string }> {
  const path = dockerConfigPath(env);
  const config = await readConfig(path);
  const key = serverKey(host);
  const helper = helperFor(config, key);
  const keys = Object.keys(config.auths ?? {}).filter((k) => {
    try {
      return normalizeHost(k) === normalizeHost(key) || k === key;
    } catch {
      return false;
    }
  });
  if (helper !== undefined) await runHelper(helper, "erase", key, env);
  for (const k of keys) delete config.auths?.[k];
  if (keys.length > 0) await writeConfig(path, config);
  return {
    removed: keys.length > 0 || helper !== undefined,
    store: helper === undefined ? path : `docker-credential-${helper}`,
    serverKey: key,
  };
}

/**
 * Checks credentials against the registry before storing them: `GET /v2/` answering the registry's
 * challenge (Basic, or a Bearer token from its realm) with them. Rejected → `ERR_UNAUTHORIZED`, forbidden →
 * `ERR_DENIED` (exit 6).
 */
export async function verifyCredential(
  host: string,
  username: string,
  password: string,
  options: { plainHttp: boolean; signal?: AbortSignal | undefined },
): Promise<void> {
  const api = apiHost(host);
  const scheme = options.plainHttp || isLoopbackHost(api) ? "http" : "https";
  const url = `${scheme}://${api}/v2/`;
  const auth = new RegistryAuth({ credentials: staticCredentials({ [api]: { username, password } }) });
  const get = async (authorization?: string): Promise<Response> => {
    try {
      const response = await fetch(url, {
        headers: authorization === undefined ? {} : { authorization },
        signal: options.signal ?? null,
        redirect: "manual",
      });
      await response.body?.cancel();
      return response;
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw new BlobError(
        "ERR_NETWORK",
        `cannot reach ${url}: ${(error as Error).cause ?? (error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  };
  try {
    let response = await get();
    if (response.status === 401) {
      const retry = await auth.respond(api, [], response.headers.get("www-authenticate") ?? undefined, {
        sent: null,
        signal: options.signal,
      });
      if (!retry) throw new BlobError("ERR_UNAUTHORIZED", `${host} rejected the credentials`);
      response = await get(await auth.authorization(api, [], { signal: options.signal }));
    }
    if (response.status === 401)
      throw new BlobError("ERR_UNAUTHORIZED", `${host} rejected the credentials of ${username}`);
    if (response.status === 403)
      throw new BlobError("ERR_DENIED", `${host} refused access to ${username} (403)`);
    if (response.status < 200 || response.status >= 300)
      throw new BlobError("ERR_NETWORK", `${url} answered ${response.status}; is ${host} an OCI registry?`);
  } finally {
    await auth.close();
  }
}

/** Reads a password from stdin (`--password-stdin`): everything up to EOF, one trailing newline removed. */
export async function readPasswordFromStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  const text = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (text === "") throw new CliError("no password on stdin", EXIT.USAGE, "ERR_USAGE");
  return text;
}
