import { BlobError, isBlobError, raceAbort } from "@blobkit/core";
import { Agent, type Dispatcher, request } from "undici";
import { type AuthChallenge, parseWwwAuthenticate } from "./challenge.ts";
import { anonymousCredentials, type Credential, type CredentialStore, hostKey } from "./credentials.ts";
import { isLoopbackHost } from "./host.ts";
import { covers, formatScopes, parseScopes, type ScopeSet } from "./scope.ts";

/** Default total time of one token request (redirects included), in milliseconds. @public */
export const DEFAULT_TOKEN_TIMEOUT_MS = 30_000;
/** Lifetime of a token whose response has no usable `expires_in` (distribution token spec). @public */
export const DEFAULT_TOKEN_EXPIRES_IN_SECONDS = 60;

/** How long a looked-up credential is reused before the store is asked again. */
const CREDENTIAL_TTL_MS = 5 * 60_000;
/** Tokens kept per host; the oldest go first. A client needs a few per repository it talks to. */
const MAX_TOKENS_PER_HOST = 128;
/** Largest token response read. Tokens are a few KiB. */
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const MAX_TOKEN_REDIRECTS = 3;
/** A token must fit in a header: visible ASCII only (no CR/LF smuggling). */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

/** Options of {@link RegistryAuth}. @public */
export interface RegistryAuthOptions {
  /** Where credentials come from. Default {@link anonymousCredentials}. */
  credentials?: CredentialStore | undefined;
  /**
   * undici dispatcher for token requests. It stays the caller's: {@link RegistryAuth.close} never closes it.
   * Without it, a keep-alive `Agent` is created on the first token request and closed by `close()`.
   */
  dispatcher?: Dispatcher | undefined;
  /** `User-Agent` of token requests. Default `"blobkit"`. */
  userAgent?: string | undefined;
  /** Total time of one token request, redirects included, in ms (`ERR_NETWORK`, reason `"timeout"`). Default 30 s. */
  timeoutMs?: number | undefined;
  /** OAuth2 `client_id` sent with refresh-token requests. Default `"blobkit"`. */
  clientId?: string | undefined;
  /**
   * Whether a plain-`http:` token realm may receive credentials. By default only loopback realms
   * (`localhost`, `127.0.0.0/8`, `[::1]`) may be plain HTTP; every other realm must be `https:`. Pass `true`
   * to allow any (an insecure lab registry), or a predicate.
   */
  allowInsecureRealm?: boolean | ((realm: URL) => boolean) | undefined;
}

/** Options of {@link RegistryAuth.authorization}. @public */
export interface AuthorizationOptions {
  /** Aborts a credential-helper lookup; rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link RegistryAuth.respond}. @public */
export interface RespondOptions {
  /** Aborts waiting for the token (a token request shared with other callers keeps running). */
  signal?: AbortSignal | undefined;
  /**
   * The `Authorization` value the rejected request carried, `null` when it carried none. With it, `respond`
   * knows exactly whether it has something new: it resolves `true` without a token request when another
   * request has already refreshed the token, `false` when the same credentials would be sent again, and
   * throws `ERR_DENIED` when a token obtained with credentials lacks the scope (`insufficient_scope`).
   * Without it, `respond` resolves `true` whenever it has credentials to offer: the caller must then retry
   * each request at most once.
   */
  sent?: string | null | undefined;
}

/** A cached bearer token. */
interface CachedToken {
  header: string;
  scopes: ScopeSet;
  expiresAt: number;
  /** When it was fetched (`Date.now()`). */
  fetchedAt: number;
  /** Obtained with credentials (an insufficient scope is then a denial, not a missing login). */
  authenticated: boolean;
}

/** What is known about one registry host. */
interface HostState {
  /** The registry asked for Basic: send the credential on every request. */
  basic: boolean;
  /** The credential is a static registry token: send it as Bearer on every request. */
  staticToken: boolean;
  /** Tokens by canonical scope key, oldest first. */
  tokens: Map<string, CachedToken>;
  /** A refresh token the token endpoint handed out (replaces the configured identity token). */
  refreshToken: string | undefined;
}

/**
 * Registry authentication for a distribution client: the token cache, `WWW-Authenticate` challenges (Bearer
 * and Basic), the token endpoint (GET with Basic credentials, or OAuth2 `POST grant_type=refresh_token` for
 * an identity token) and the credentials that feed them.
 *
 * The request loop of a caller:
 * ```ts
 * const auth = new RegistryAuth({ credentials: dockerCredentials() });
 * const scopes = ["repository:acme/app:pull"];
 * let sent = (await auth.authorization(host, scopes)) ?? null;
 * let response = await request(url, { headers: sent ? { authorization: sent } : {} });
 * if (response.statusCode === 401 && (await auth.respond(host, scopes, response.headers["www-authenticate"], { sent }))) {
 *   sent = (await auth.authorization(host, scopes)) ?? null;
 *   response = await request(url, { headers: sent ? { authorization: sent } : {} }); // once
 * }
 * ```
 *
 * Where credentials go (the safety rules):
 * - the value of {@link RegistryAuth.authorization} is for the registry `host` only: callers must not send it
 *   to another origin, in particular after a redirect (blob downloads redirect to object storage);
 * - username/password and identity tokens go only to the registry itself (Basic) or to the token realm named
 *   by that registry's own challenge, as Docker does; a realm must be `https:` unless it is a loopback
 *   host (see {@link RegistryAuthOptions.allowInsecureRealm}) and must not carry user info;
 * - the token endpoint's redirects are followed to the same origin only with credentials; a redirect to
 *   another origin is followed without credentials for GET and refused for POST (its body holds the
 *   refresh token);
 * - no error message, `reason` or `subject` contains a password, token or response body.
 *
 * Tokens are cached per host and scope set until `expires_in` (default 60 s) minus a margin of a tenth of the
 * lifetime (at most 10 s); a token granted for `pull,push` also serves `pull`. Concurrent `respond` calls for
 * the same host and scopes share one token request.
 *
 * @public
 */
export class RegistryAuth {
  readonly #credentials: CredentialStore;
  readonly #dispatcher: Dispatcher | undefined;
  #ownAgent: Agent | undefined;
  readonly #userAgent: string;
  readonly #timeoutMs: number;
  readonly #clientId: string;
  readonly #allowInsecureRealm: (realm: URL) => boolean;
  readonly #hosts = new Map<string, HostState>();
  readonly #lookups = new Map<string, { at: number; promise: Promise<Credential | undefined> }>();
  readonly #inflight = new Map<string, Promise<CachedToken>>();
  #closed = false;

  constructor(options: RegistryAuthOptions = {}) {
    this.#credentials = options.credentials ?? anonymousCredentials;
    if (typeof this.#credentials.get !== "function") {
      throw new BlobError("ERR_INVALID_ARGUMENT", "RegistryAuth: credentials must be a CredentialStore");
    }
    this.#dispatcher = options.dispatcher;
    this.#userAgent = options.userAgent ?? "blobkit";
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS;
    if (!(this.#timeoutMs > 0))
      throw new BlobError("ERR_INVALID_ARGUMENT", "RegistryAuth: timeoutMs must be > 0");
    this.#clientId = options.clientId ?? "blobkit";
    const allow = options.allowInsecureRealm;
    this.#allowInsecureRealm = typeof allow === "function" ? allow : () => allow === true;
  }

  /**
   * The `Authorization` header value for a request to `host` (`host[:port]`) needing `scopes` (for example
   * `"repository:acme/app:pull,push"`): a cached token covering the scopes, the static token, or Basic
   * credentials once the registry asked for Basic — else `undefined` (send the request anonymously, and
   * call {@link RegistryAuth.respond} on a 401). No network I/O, except possibly a credential-helper call.
   */
  async authorization(
    host: string,
    scopes: readonly string[],
    options: AuthorizationOptions = {},
  ): Promise<string | undefined> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const key = hostKey(host);
    const state = this.#hosts.get(key);
    if (state === undefined) return undefined;
    const token = this.#cachedToken(state, parseScopes(scopes));
    if (token !== undefined) return token.header;
    if (state.staticToken || state.basic) {
      const credential = await this.#credential(key, options.signal);
      if (state.staticToken && credential !== undefined && "registryToken" in credential) {
        return `Bearer ${credential.registryToken}`;
      }
      if (state.basic && credential !== undefined && "password" in credential) return basicHeader(credential);
    }
    return undefined;
  }

  /**
   * Handles a 401 answer: its `WWW-Authenticate` value(s) are parsed; for a Bearer challenge a token is
   * fetched from the challenge's realm (service and scope from the challenge, merged with `scopes`), for a
   * Basic challenge the host is marked as Basic. Resolves `true` when retrying the request is worthwhile
   * (new credentials available, see {@link RespondOptions.sent}), `false` when there is nothing new to try
   * (the caller then fails with `ERR_UNAUTHORIZED`).
   *
   * Rejects with `ERR_UNAUTHORIZED` when the token endpoint refuses the credentials (or the challenge is
   * unusable: no realm, an insecure realm), `ERR_DENIED` when it answers 403 or a token obtained with
   * credentials lacks the scope, `ERR_NETWORK` when it cannot be reached, times out or answers garbage, a
   * credential store's `BlobError` when the lookup fails. Never with a secret in the error.
   */
  async respond(
    host: string,
    scopes: readonly string[],
    wwwAuthenticate: string | readonly string[] | undefined,
    options: RespondOptions = {},
  ): Promise<boolean> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const key = hostKey(host);
    const challenges = parseWwwAuthenticate(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    if (bearer !== undefined) return this.#respondBearer(key, scopes, bearer, options);
    if (challenges.some((c) => c.scheme === "basic")) return this.#respondBasic(key, options);
    return false;
  }

  /** Drops the cached tokens, refresh token and looked-up credential of `host` (for example after a rejection). */
  invalidate(host: string): void {
    const key = hostKey(host);
    const state = this.#hosts.get(key);
    if (state !== undefined) {
      state.tokens.clear();
      state.refreshToken = undefined;
    }
    this.#lookups.delete(key);
  }

  /** Forgets every token and closes the agent this instance created (never a caller's dispatcher). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#hosts.clear();
    this.#lookups.clear();
    const agent = this.#ownAgent;
    this.#ownAgent = undefined;
    await agent?.close();
  }

  /** Same as {@link RegistryAuth.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new BlobError("ERR_CLOSED", "RegistryAuth is closed");
  }

  #state(key: string): HostState {
    let state = this.#hosts.get(key);
    if (state === undefined) {
      state = { basic: false, staticToken: false, tokens: new Map(), refreshToken: undefined };
      this.#hosts.set(key, state);
    }
    return state;
  }

  /** The exact-scope token if valid, else any valid token covering the scopes. Expired ones are dropped. */
  #cachedToken(state: HostState, wanted: ScopeSet): CachedToken | undefined {
    const now = Date.now();
    const exact = state.tokens.get(formatScopes(wanted).join(" "));
    if (exact !== undefined && exact.expiresAt > now) return exact;
    let found: CachedToken | undefined;
    for (const [scopeKey, token] of state.tokens) {
      if (token.expiresAt <= now) state.tokens.delete(scopeKey);
      else if (found === undefined && covers(token.scopes, wanted)) found = token;
    }
    return found;
  }

  /** The credential of `key`, looked up once per {@link CREDENTIAL_TTL_MS} and shared by concurrent callers. */
  async #credential(key: string, signal: AbortSignal | undefined): Promise<Credential | undefined> {
    let lookup = this.#lookups.get(key);
    if (lookup === undefined || Date.now() - lookup.at > CREDENTIAL_TTL_MS) {
      // Not bound to one caller's signal: others may be waiting for the same lookup.
      const promise = this.#credentials.get(key);
      lookup = { at: Date.now(), promise };
      this.#lookups.set(key, lookup);
      const current = lookup;
      promise.catch(() => {
        // A failed lookup is not remembered: the next request asks again.
        if (this.#lookups.get(key) === current) this.#lookups.delete(key);
      });
    }
    return raceAbort(lookup.promise, signal);
  }

  async #respondBasic(key: string, options: RespondOptions): Promise<boolean> {
    const credential = await this.#credential(key, options.signal);
    // Identity and registry tokens cannot answer a Basic challenge.
    if (credential === undefined || !("password" in credential)) return false;
    const state = this.#state(key);
    state.basic = true;
    const header = basicHeader(credential);
    return options.sent === undefined ? true : options.sent !== header;
  }

  async #respondBearer(
    key: string,
    scopes: readonly string[],
    challenge: AuthChallenge,
    options: RespondOptions,
  ): Promise<boolean> {
    const credential = await this.#credential(key, options.signal);
    const state = this.#state(key);
    if (credential !== undefined && "registryToken" in credential) {
      // A static token is all we have: it is new only if it was not the one just rejected.
      state.staticToken = true;
      const header = `Bearer ${credential.registryToken}`;
      return options.sent === undefined ? true : options.sent !== header;
    }
    const wanted = parseScopes([...scopes, challenge.params.scope ?? ""]);
    const scopeList = formatScopes(wanted);
    const scopeKey = scopeList.join(" ");
    const existing = state.tokens.get(scopeKey);
    const now = Date.now();
    if (existing !== undefined && existing.expiresAt > now) {
      const error = challenge.params.error;
      // Without `sent`, a challenge with no `error` parameter still tells that the request carried no token
      // (RFC 6750 §3.1; distribution behaves so): a token fetched moments ago by a concurrent request is new
      // to it. An old token is refetched instead, in case the server rejected it without saying why.
      const anonymousRequest =
        options.sent === undefined && error === undefined && now - existing.fetchedAt < 10_000;
      const rejected = !anonymousRequest && (options.sent === undefined || options.sent === existing.header);
      if (!rejected) return true; // another request refreshed it meanwhile
      if (error === "insufficient_scope") {
        // The token was issued for exactly these scopes and still falls short: asking again gets the same.
        if (existing.authenticated) {
          throw new BlobError("ERR_DENIED", `The registry ${key} does not grant ${scopeList.join(" ")}`, {
            reason: "insufficient-scope",
            subject: key,
          });
        }
        return false;
      }
      state.tokens.delete(scopeKey);
    }
    const flightKey = `${key}\u0000${scopeKey}`;
    let flight = this.#inflight.get(flightKey);
    if (flight === undefined) {
      flight = this.#fetchToken(key, state, challenge, wanted, scopeList, credential).finally(() => {
        this.#inflight.delete(flightKey);
      });
      this.#inflight.set(flightKey, flight);
    }
    const token = await raceAbort(flight, options.signal);
    return options.sent === undefined ? true : options.sent !== token.header;
  }

  async #fetchToken(
    key: string,
    state: HostState,
    challenge: AuthChallenge,
    wanted: ScopeSet,
    scopeList: string[],
    credential: Credential | undefined,
  ): Promise<CachedToken> {
    const realm = this.#realm(key, challenge);
    const service = challenge.params.service;
    const started = Date.now();
    let method: "GET" | "POST";
    let url: URL;
    let body: string | undefined;
    const headers: Record<string, string> = { "user-agent": this.#userAgent, accept: "application/json" };
    if (credential !== undefined && "identityToken" in credential) {
      // OAuth2 refresh-token grant: the identity token is a refresh token and travels in the body only.
      method = "POST";
      url = realm;
      const form = new URLSearchParams();
      form.set("grant_type", "refresh_token");
      form.set("refresh_token", state.refreshToken ?? credential.identityToken);
      if (service !== undefined) form.set("service", service);
      if (scopeList.length > 0) form.set("scope", scopeList.join(" "));
      form.set("client_id", this.#clientId);
      body = form.toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      // Distribution token GET: scopes as repeated `scope` parameters, Basic credentials when we have some.
      method = "GET";
      url = new URL(realm);
      if (service !== undefined) url.searchParams.set("service", service);
      for (const scope of scopeList) url.searchParams.append("scope", scope);
      if (credential !== undefined && "password" in credential) {
        if (credential.username !== "") url.searchParams.set("account", credential.username);
        headers.authorization = basicHeader(credential);
      }
    }
    const authenticated = credential !== undefined;
    const answer = await this.#tokenRequestWithRetries(key, method, url, headers, body);
    const token =
      typeof answer.token === "string" && answer.token !== "" ? answer.token : answer.access_token;
    if (typeof token !== "string" || !HEADER_SAFE.test(token)) {
      throw new BlobError("ERR_NETWORK", `The token endpoint of ${key} answered without a usable token`, {
        reason: "invalid-token-response",
        subject: key,
      });
    }
    if (typeof answer.refresh_token === "string" && HEADER_SAFE.test(answer.refresh_token)) {
      state.refreshToken = answer.refresh_token;
    }
    const seconds =
      typeof answer.expires_in === "number" && Number.isFinite(answer.expires_in) && answer.expires_in > 0
        ? answer.expires_in
        : DEFAULT_TOKEN_EXPIRES_IN_SECONDS;
    const lifetime = seconds * 1000;
    // Refresh a little early so a token does not expire between the cache lookup and the registry's check.
    const expiresAt = started + lifetime - Math.min(10_000, lifetime / 10);
    const cached: CachedToken = {
      header: `Bearer ${token}`,
      scopes: wanted,
      expiresAt,
      fetchedAt: Date.now(),
      authenticated,
    };
    const scopeKey = scopeList.join(" ");
    state.tokens.delete(scopeKey);
    state.tokens.set(scopeKey, cached);
    while (state.tokens.size > MAX_TOKENS_PER_HOST) {
      const oldest = state.tokens.keys().next().value;
      if (oldest === undefined) break;
      state.tokens.delete(oldest);
    }
    return cached;
  }

  /** The challenge's realm, checked against the rules of where credentials may go. */
  #realm(key: string, challenge: AuthChallenge): URL {
    const raw = challenge.params.realm;
    let realm: URL | undefined;
    try {
      realm = raw === undefined || raw === "" ? undefined : new URL(raw);
    } catch {
      realm = undefined;
    }
    if (realm === undefined || (realm.protocol !== "https:" && realm.protocol !== "http:")) {
      throw new BlobError(
        "ERR_UNAUTHORIZED",
        `The registry ${key} sent a Bearer challenge without a usable realm`,
        {
          reason: "invalid-challenge",
          subject: key,
        },
      );
    }
    if (realm.username !== "" || realm.password !== "") {
      throw new BlobError("ERR_UNAUTHORIZED", `The registry ${key} named a token realm with user info`, {
        reason: "invalid-challenge",
        subject: key,
      });
    }
    if (!this.#secureTarget(realm)) {
      throw new BlobError(
        "ERR_UNAUTHORIZED",
        `The registry ${key} named a plain-HTTP token realm (${realm.origin}); only https or loopback realms receive credentials`,
        { reason: "insecure-realm", subject: key },
      );
    }
    realm.hash = "";
    return realm;
  }

  #secureTarget(url: URL): boolean {
    return (
      url.protocol === "https:" ||
      (url.protocol === "http:" && (isLoopbackHost(url.host) || this.#allowInsecureRealm(url)))
    );
  }

  #agent(): Dispatcher {
    if (this.#dispatcher !== undefined) return this.#dispatcher;
    this.#ownAgent ??= new Agent({ connect: { timeout: Math.min(10_000, this.#timeoutMs) } });
    return this.#ownAgent;
  }

  /**
   * {@link RegistryAuth.#tokenRequest}, sent again (twice at most, after 100 and 400 ms) when the token
   * endpoint could not be reached or answered 408 / 429 / 5xx: one transient failure of the token service
   * must not fail a pull. Refusals, timeouts and malformed answers are not retried.
   */
  async #tokenRequestWithRetries(
    key: string,
    method: "GET" | "POST",
    start: URL,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<Record<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#tokenRequest(key, method, start, headers, body);
      } catch (error) {
        const transient =
          isBlobError(error, "ERR_NETWORK") &&
          (error.reason === "token-endpoint" || error.reason === "token-endpoint-status");
        if (!transient || attempt >= 2) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 4 ** attempt));
      }
    }
  }

  /** One token request, redirects included, bounded by the timeout. Resolves the parsed JSON object. */
  async #tokenRequest(
    key: string,
    method: "GET" | "POST",
    start: URL,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<Record<string, unknown>> {
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const endpoint = (url: URL): string => `${url.origin}${url.pathname}`;
    let url = start;
    let currentHeaders = headers;
    for (let redirects = 0; ; redirects++) {
      this.#assertOpen();
      let response: Dispatcher.ResponseData;
      try {
        response = await request(url, {
          method,
          headers: currentHeaders,
          body,
          dispatcher: this.#agent(),
          signal: deadline,
          headersTimeout: this.#timeoutMs,
          bodyTimeout: this.#timeoutMs,
        });
      } catch (error) {
        const timedOut = deadline.aborted;
        throw new BlobError(
          "ERR_NETWORK",
          timedOut
            ? `The token endpoint ${endpoint(url)} of ${key} did not answer within ${this.#timeoutMs} ms`
            : `The token endpoint ${endpoint(url)} of ${key} could not be reached`,
          {
            reason: timedOut ? "timeout" : "token-endpoint",
            subject: key,
            cause: timedOut ? undefined : scrub(error),
          },
        );
      }
      const status = response.statusCode;
      if (status >= 300 && status < 400 && status !== 304) {
        await response.body.dump().catch(() => {});
        const location = response.headers.location;
        let next: URL | undefined;
        try {
          next = typeof location === "string" ? new URL(location, url) : undefined;
        } catch {
          next = undefined;
        }
        if (next === undefined || redirects >= MAX_TOKEN_REDIRECTS) {
          throw new BlobError(
            "ERR_NETWORK",
            `The token endpoint ${endpoint(url)} of ${key} redirected too often or nowhere`,
            {
              reason: "token-redirect",
              subject: key,
            },
          );
        }
        if (next.origin !== url.origin) {
          // Credentials stay with the origin the registry named. A GET may go on without them (it then yields
          // an anonymous token at best); a POST carries the refresh token in its body and stops here.
          if (
            method === "POST" ||
            !this.#secureTarget(next) ||
            next.username !== "" ||
            next.password !== ""
          ) {
            throw new BlobError(
              "ERR_NETWORK",
              `The token endpoint ${endpoint(url)} of ${key} redirected to another origin; credentials are not sent there`,
              { reason: "cross-origin-redirect", subject: key },
            );
          }
          const { authorization: _dropped, ...rest } = currentHeaders;
          currentHeaders = rest;
        }
        url = next;
        continue;
      }
      if (status !== 200) {
        await response.body.dump().catch(() => {});
        const where = `The token endpoint ${endpoint(url)} of ${key}`;
        if (status === 403) {
          throw new BlobError("ERR_DENIED", `${where} refused access (403)`, {
            reason: "token-denied",
            subject: key,
          });
        }
        if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
          const who =
            currentHeaders.authorization !== undefined || body !== undefined
              ? "the credentials"
              : "anonymous access";
          throw new BlobError("ERR_UNAUTHORIZED", `${where} rejected ${who} (${status})`, {
            reason: "token-rejected",
            subject: key,
          });
        }
        throw new BlobError("ERR_NETWORK", `${where} answered ${status}`, {
          reason: "token-endpoint-status",
          subject: key,
        });
      }
      let text: string;
      try {
        text = await readLimited(response.body, MAX_TOKEN_RESPONSE_BYTES);
      } catch (error) {
        if (isBlobError(error)) throw error;
        throw new BlobError(
          "ERR_NETWORK",
          `The token endpoint ${endpoint(url)} of ${key} broke off its answer`,
          {
            reason: deadline.aborted ? "timeout" : "token-endpoint",
            subject: key,
          },
        );
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        throw new BlobError(
          "ERR_NETWORK",
          `The token endpoint ${endpoint(url)} of ${key} answered something that is not a token`,
          {
            reason: "invalid-token-response",
            subject: key,
          },
        );
      }
      return parsed as Record<string, unknown>;
    }
  }
}

function basicHeader(credential: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`, "utf8").toString("base64")}`;
}

/** Reads a body as UTF-8, failing beyond `limit` bytes. */
async function readLimited(body: Dispatcher.ResponseData["body"], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).byteLength;
    if (size > limit) {
      body.destroy();
      throw new BlobError("ERR_NETWORK", "The token endpoint's answer is too large", {
        reason: "invalid-token-response",
      });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A network error as a cause, reduced to its name, code and message: undici errors are plain, but a cause
 * must never be able to drag request options (headers with credentials) along.
 */
function scrub(error: unknown): Error {
  if (!(error instanceof Error)) return new Error("request failed");
  const copy = new Error(error.message);
  copy.name = error.name;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") (copy as Error & { code: string }).code = code;
  if (error.cause instanceof Error) copy.cause = scrub(error.cause);
  return copy;
}
