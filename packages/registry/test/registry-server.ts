import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { request } from "undici";
import { startTokenIssuer, type TokenIssuer, type TokenIssuerOptions } from "./token-issuer.ts";

export type { TokenIssuer, TokenIssuerOptions, TokenRequestRecord } from "./token-issuer.ts";

// The real Debian docker-registry (CNCF distribution 2.8), started per test file on a random loopback port
// with its own temporary storage, stopped by PID. A missing binary fails loudly with the install command.
const REGISTRY_BINARY = "/usr/bin/docker-registry";

/**
 * How the registry authenticates clients: `"none"` (anonymous push and pull), `"htpasswd"` (Basic auth) or
 * `"token"` (distribution's `auth: token`, with a token issuer running in the test process).
 */
export type RegistryAuthMode = "none" | "htpasswd" | "token";

/** Options of {@link startRegistry}. */
export interface StartRegistryOptions {
  /** Authentication mode. Default `"none"` (anonymous push and pull). */
  auth?: RegistryAuthMode;
  /**
   * `"token"` mode: options of the token issuer (besides the harness credentials). Default: the harness user
   * may pull, push and delete everywhere, anonymous requests get tokens without access, tokens last 300 s.
   */
  tokenIssuer?: Omit<TokenIssuerOptions, "username" | "password">;
}

/** A running registry. */
export interface RunningRegistry {
  /** `127.0.0.1:<port>`: the host part of references. */
  host: string;
  /** `http://127.0.0.1:<port>`. */
  origin: string;
  /** Storage root (for tampering with blobs in tests). */
  storageDir: string;
  /** Credentials accepted in `htpasswd` mode, and by the token issuer in `token` mode. */
  username: string;
  password: string;
  /** The authentication mode the registry runs in. */
  auth: RegistryAuthMode;
  /**
   * `token` mode only: the token issuer (realm, service, request log and counters, the identity token of the
   * harness user, `expiresIn` to shorten token lifetimes). Stopped with the registry.
   */
  tokenIssuer?: TokenIssuer;
  /** Path of a blob's data file in the storage root. */
  blobPath(digest: string): string;
  /** Server log so far. */
  log(): string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`registry exited (${child.exitCode}): ${log()}`);
    try {
      const response = await request(url);
      await response.body.dump();
      return;
    } catch (error) {
      if (Date.now() > until) throw new Error(`registry did not start: ${String(error)} ${log()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** Starts docker-registry on loopback; the caller stops it with {@link RunningRegistry.stop}. */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<RunningRegistry> {
  if (!existsSync(REGISTRY_BINARY)) {
    throw new Error(
      `${REGISTRY_BINARY} is missing: apt-get install -y --no-install-recommends docker-registry`,
    );
  }
  const auth = options.auth ?? "none";
  const dir = await mkdtemp(join(tmpdir(), "blobkit-registry-"));
  const storageDir = join(dir, "storage");
  const port = await freePort();
  const username = "blobkit";
  const password = randomBytes(12).toString("hex");
  let authConfig = "";
  let tokenIssuer: TokenIssuer | undefined;
  if (auth === "token") {
    tokenIssuer = await startTokenIssuer(dir, { ...options.tokenIssuer, username, password }).catch(
      async (error) => {
        await rm(dir, { recursive: true, force: true });
        throw error;
      },
    );
    authConfig = `auth:
  token:
    realm: ${tokenIssuer.realm}
    service: ${tokenIssuer.service}
    issuer: ${tokenIssuer.issuer}
    rootcertbundle: ${tokenIssuer.certPath}
`;
  } else if (auth === "htpasswd") {
    await writeFile(join(dir, "htpasswd"), `${username}:${bcrypt.hashSync(password, 5)}\n`);
    authConfig = `auth:\n  htpasswd:\n    realm: blobkit-test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storageDir}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString("hex")}
${authConfig}`;
  await writeFile(join(dir, "config.yml"), config);
  let output = "";
  const child = spawn(REGISTRY_BINARY, ["serve", join(dir, "config.yml")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const log = (): string => output.slice(-4000);
  const origin = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.pid !== undefined) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(child.pid, "SIGTERM");
      await exited;
    }
    await tokenIssuer?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttp(`${origin}/v2/`, child, log);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    host: `127.0.0.1:${port}`,
    origin,
    storageDir,
    username,
    password,
    auth,
    ...(tokenIssuer === undefined ? {} : { tokenIssuer }),
    blobPath: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return join(storageDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    },
    log,
    stop,
  };
}
