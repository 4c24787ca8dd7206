import { execFile } from "node:child_process";
import { randomBytes, randomUUID, sign, timingSafeEqual, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

// A small token issuer for distribution's `auth: token` mode (the Docker registry token spec), running in the
// test process on 127.0.0.1: GET /token with optional Basic credentials, and the OAuth2 POST /token
// (grant_type=refresh_token or password). Tokens are ES256 JWTs whose header carries the self-signed
// certificate (`x5c`), which docker-registry verifies against the same certificate as `rootcertbundle`.

const execFileAsync = promisify(execFile);

/** A key pair and self-signed certificate made by `openssl`. */
export interface SigningMaterial {
  /** PEM private key (EC P-256). */
  keyPem: string;
  /** PEM certificate. */
  certPem: string;
  /** Path of the certificate file (the registry's `rootcertbundle`). */
  certPath: string;
}

/**
 * Makes an EC P-256 key and a one-day self-signed certificate with `openssl` in `dir`. A missing `openssl`
 * fails loudly with the install command.
 */
export async function makeSigningMaterial(dir: string): Promise<SigningMaterial> {
  const keyPath = join(dir, "token.key");
  const certPath = join(dir, "token.crt");
  try {
    await execFileAsync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "1",
      "-subj",
      "/CN=blobkit-test-token-issuer",
    ]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error("openssl is missing: apt-get install -y --no-install-recommends openssl");
    }
    throw error;
  }
  return { keyPem: await readFile(keyPath, "utf8"), certPem: await readFile(certPath, "utf8"), certPath };
}

/** Actions granted for one requested scope. */
export type GrantFunction = (
  account: string | undefined,
  resource: { type: string; name: string },
  requested: readonly string[],
) => readonly string[];

/** Options of {@link startTokenIssuer}. */
export interface TokenIssuerOptions {
  /** The user accepted with Basic credentials (and the password grant). */
  username: string;
  password: string;
  /** `service` (the JWT audience). Default `"blobkit-test-registry"`. */
  service?: string;
  /** `iss` of the JWTs. Default `"blobkit-test-issuer"`. */
  issuer?: string;
  /** `expires_in` of issued tokens, in seconds (mutable later through {@link TokenIssuer.expiresIn}). Default 300. */
  expiresIn?: number;
  /**
   * What anonymous requests may do: `"none"` (a token with no access, the distribution behaviour) or
   * `"pull"`. Default `"none"`. Ignored when {@link TokenIssuerOptions.grant} is given.
   */
  anonymous?: "none" | "pull";
  /** Custom grants. Default: the user gets `pull`, `push`, `delete` (and `*`) on every repository. */
  grant?: GrantFunction;
}

/** One request the issuer answered (for assertions). */
export interface TokenRequestRecord {
  method: string;
  /** `"basic"`, `"refresh_token"`, `"password"` or `"anonymous"`. */
  grant: string;
  /** The authenticated account, if any. */
  account: string | undefined;
  /** Scopes asked for. */
  scopes: string[];
  /** HTTP status answered. */
  status: number;
  /** Headers received (to check what a client sent — tests only). */
  authorization: string | undefined;
}

/** A running token issuer. */
export interface TokenIssuer {
  /** `http://127.0.0.1:<port>/token`: the registry's `realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** Path of the signing certificate (the registry's `rootcertbundle`). */
  certPath: string;
  /** An identity (refresh) token valid for the harness user: use it as `{ identityToken }`. */
  refreshToken: string;
  /** `expires_in` (seconds) of the next tokens; tests may lower it to exercise expiry. */
  expiresIn: number;
  /** Every request answered, oldest first. */
  readonly requests: TokenRequestRecord[];
  /** Number of tokens issued (successful answers). */
  readonly issued: number;
  /** Forgets {@link TokenIssuer.requests} and resets {@link TokenIssuer.issued}. */
  reset(): void;
  stop(): Promise<void>;
}

const base64url = (data: Buffer | string): string => Buffer.from(data).toString("base64url");

/** Starts the issuer on a random 127.0.0.1 port with fresh signing material from `dir`. */
export async function startTokenIssuer(dir: string, options: TokenIssuerOptions): Promise<TokenIssuer> {
  const material = await makeSigningMaterial(dir);
  const service = options.service ?? "blobkit-test-registry";
  const issuer = options.issuer ?? "blobkit-test-issuer";
  const certDer = new X509Certificate(material.certPem).raw.toString("base64");
  const refreshTokens = new Set<string>([`rt-${randomBytes(16).toString("hex")}`]);
  const initialRefreshToken = [...refreshTokens][0]!;
  const grant: GrantFunction =
    options.grant ??
    ((account, resource, requested) => {
      const allowed =
        account === options.username
          ? ["pull", "push", "delete", "*"]
          : options.anonymous === "pull" && resource.type === "repository"
            ? ["pull"]
            : [];
      return requested.filter((action) => allowed.includes(action));
    });

  const state = {
    expiresIn: options.expiresIn ?? 300,
    requests: [] as TokenRequestRecord[],
    issued: 0,
  };

  const mint = (account: string | undefined, scopes: string[]): { token: string; expiresIn: number } => {
    const access: { type: string; name: string; actions: string[] }[] = [];
    for (const scope of scopes) {
      const first = scope.indexOf(":");
      const last = scope.lastIndexOf(":");
      if (first <= 0 || last <= first) continue;
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      const actions = [...new Set(grant(account, { type, name }, scope.slice(last + 1).split(",")))];
      if (actions.length > 0) access.push({ type, name, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = state.expiresIn;
    const header = { alg: "ES256", typ: "JWT", x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: account ?? "",
      aud: service,
      exp: now + expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    // JWS ES256 wants the raw r||s signature, not DER.
    const signature = sign("sha256", Buffer.from(input), { key: material.keyPem, dsaEncoding: "ieee-p1363" });
    return { token: `${input}.${base64url(signature)}`, expiresIn };
  };

  const checkPassword = (username: string, password: string): boolean => {
    const a = Buffer.from(`${username}:${password}`);
    const b = Buffer.from(`${options.username}:${options.password}`);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const record: TokenRequestRecord = {
      method: req.method ?? "",
      grant: "anonymous",
      account: undefined,
      scopes: [],
      status: 0,
      authorization: req.headers.authorization,
    };
    state.requests.push(record);
    const answer = (status: number, body: unknown): void => {
      record.status = status;
      send(res, status, body);
    };
    if (url.pathname !== "/token") return answer(404, { errors: [{ code: "NOT_FOUND" }] });
    if (req.method === "GET") {
      if (url.searchParams.get("service") !== service)
        return answer(400, { errors: [{ code: "INVALID_SERVICE" }] });
      record.scopes = url.searchParams.getAll("scope");
      const authorization = req.headers.authorization;
      let account: string | undefined;
      if (authorization !== undefined) {
        const match = /^Basic\s+(.+)$/i.exec(authorization);
        const decoded = match ? Buffer.from(match[1]!, "base64").toString("utf8") : "";
        const colon = decoded.indexOf(":");
        if (colon < 0 || !checkPassword(decoded.slice(0, colon), decoded.slice(colon + 1))) {
          res.setHeader("www-authenticate", 'Basic realm="blobkit-test-issuer"');
          return answer(401, { errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] });
        }
        account = decoded.slice(0, colon);
        record.grant = "basic";
      }
      record.account = account;
      const { token, expiresIn } = mint(account, record.scopes);
      state.issued++;
      const body: Record<string, unknown> = {
        token,
        access_token: token,
        expires_in: expiresIn,
        issued_at: new Date().toISOString(),
      };
      if (account !== undefined && url.searchParams.get("offline_token") === "true") {
        body.refresh_token = initialRefreshToken;
      }
      return answer(200, body);
    }
    if (req.method === "POST") {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
      if (form.get("service") !== service) return answer(400, { error: "invalid_request" });
      record.scopes = (form.get("scope") ?? "").split(" ").filter((s) => s !== "");
      const grantType = form.get("grant_type");
      record.grant = grantType ?? "";
      let account: string | undefined;
      if (grantType === "refresh_token") {
        if (!refreshTokens.has(form.get("refresh_token") ?? ""))
          return answer(400, { error: "invalid_grant" });
        account = options.username;
      } else if (grantType === "password") {
        if (!checkPassword(form.get("username") ?? "", form.get("password") ?? "")) {
          return answer(400, { error: "invalid_grant" });
        }
        account = options.username;
      } else {
        return answer(400, { error: "unsupported_grant_type" });
      }
      record.account = account;
      const { token, expiresIn } = mint(account, record.scopes);
      state.issued++;
      const body: Record<string, unknown> = {
        access_token: token,
        expires_in: expiresIn,
        issued_at: new Date().toISOString(),
        scope: record.scopes.join(" "),
      };
      if (grantType === "password" && form.get("access_type") === "offline")
        body.refresh_token = initialRefreshToken;
      return answer(200, body);
    }
    return answer(405, { error: "method not allowed" });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { error: "internal" });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let stopped = false;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath: material.certPath,
    refreshToken: initialRefreshToken,
    get expiresIn() {
      return state.expiresIn;
    },
    set expiresIn(value: number) {
      state.expiresIn = value;
    },
    get requests() {
      return state.requests;
    },
    get issued() {
      return state.issued;
    },
    reset() {
      state.requests = [];
      state.issued = 0;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
