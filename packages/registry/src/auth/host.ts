import { BlobError } from "@blobkit/core";

/**
 * Every spelling of Docker Hub found in Docker configs and references. `docker login` stores Hub credentials
 * under `https://index.docker.io/v1/`, references say `docker.io`, and the API lives on
 * `registry-1.docker.io`: a lookup for any of them must find credentials stored under any other.
 *
 * @public
 */
export const DOCKER_HUB_ALIASES: readonly string[] = Object.freeze([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "https://index.docker.io/v1/",
]);

/** The key Docker itself uses for Hub credentials (in `auths` and towards credential helpers). */
export const DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/";

/**
 * Normalizes a registry address to `host[:port]`, lower-cased: the scheme, any user info, the path, query and
 * fragment are stripped and the port is kept (`https://Registry.example:5000/v2/` → `registry.example:5000`).
 * Throws `ERR_INVALID_ARGUMENT` for an empty or unparsable address.
 *
 * @public
 */
export function normalizeHost(address: string): string {
  if (typeof address !== "string") {
    throw new BlobError("ERR_INVALID_ARGUMENT", "A registry host must be a string");
  }
  let rest = address.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(rest);
  if (scheme) rest = rest.slice(scheme[0].length);
  // The authority ends at the first path, query or fragment delimiter.
  const end = rest.search(/[/?#]/);
  if (end >= 0) rest = rest.slice(0, end);
  // Never keep user info: it would be a credential in a cache key or an error message.
  const at = rest.lastIndexOf("@");
  if (at >= 0) rest = rest.slice(at + 1);
  rest = rest.toLowerCase();
  if (rest === "" || /[\s\\]/.test(rest) || !/^(\[[0-9a-f:.]+\]|[^:[\]]+)(:\d{1,5})?$/.test(rest)) {
    // Deliberately no echo of the input: a mistyped argument can be a secret.
    throw new BlobError("ERR_INVALID_ARGUMENT", "Not a registry host (expected host[:port])", {
      reason: "invalid-host",
    });
  }
  return rest;
}

/** True when `host` (already normalized) is one of the Docker Hub aliases. @public */
export function isDockerHub(host: string): boolean {
  return host === "docker.io" || host === "index.docker.io" || host === "registry-1.docker.io";
}

/**
 * The hosts to try, in order, when looking up credentials for `host`: the host itself and, for Docker Hub,
 * every alias (the `https://index.docker.io/v1/` spelling Docker uses first).
 */
export function lookupKeys(host: string): string[] {
  if (!isDockerHub(host)) return [host];
  return [
    DOCKER_HUB_SERVER_URL,
    host,
    ...["docker.io", "index.docker.io", "registry-1.docker.io"].filter((h) => h !== host),
  ];
}

/**
 * True for hosts that resolve to this machine by definition (`localhost`, `127.0.0.0/8`, `::1`), with or
 * without a port. Plain-HTTP token realms are accepted only there, where nobody can sit on the wire.
 *
 * @public
 */
export function isLoopbackHost(host: string): boolean {
  let name = host.toLowerCase();
  if (name.startsWith("[")) {
    const close = name.indexOf("]");
    name = close > 0 ? name.slice(1, close) : name;
    return name === "::1" || name === "0:0:0:0:0:0:0:1";
  }
  name = name.replace(/:\d+$/, "");
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
