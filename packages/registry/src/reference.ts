import { resolve as resolvePath } from "node:path";
import { BlobError } from "@blobkit/core";

/** Docker Hub's canonical registry name in references. @public */
export const DOCKER_HUB = "docker.io";
/** The host Docker Hub's registry API is served from. @public */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";
/** Tag used when a reference names neither a tag nor a digest (Docker's rule). @public */
export const DEFAULT_TAG = "latest";

/** A reference to a repository in a registry. @public */
export interface RegistryReference {
  readonly kind: "registry";
  /** Registry as written in the reference, port kept (`docker.io` for every spelling of Docker Hub). */
  readonly registry: string;
  /** Host (and port) the API is served from (`registry-1.docker.io` for Docker Hub). */
  readonly apiHost: string;
  /** Repository path, e.g. `acme/configs` (`library/` added for one-component Docker Hub names). */
  readonly repository: string;
  /** Tag, when given or defaulted. */
  readonly tag: string | undefined;
  /** `sha256:<hex>` digest, when given. */
  readonly digest: string | undefined;
}

/** A reference to an OCI image layout directory on disk: `oci:<dir>[:tag|@digest]`. @public */
export interface LayoutReference {
  readonly kind: "layout";
  /** Absolute path of the layout directory. */
  readonly dir: string;
  /** Tag, when given or defaulted. */
  readonly tag: string | undefined;
  /** `sha256:<hex>` digest, when given. */
  readonly digest: string | undefined;
}

/** A parsed reference. @public */
export type Reference = RegistryReference | LayoutReference;

/** Options of {@link parseReference}. @public */
export interface ParseReferenceOptions {
  /**
   * Tag to assume when the reference has neither a tag nor a digest. Default `"latest"` (Docker's rule);
   * `null` leaves `tag` undefined so the caller can insist on an explicit one.
   */
  defaultTag?: string | null | undefined;
  /** Directory relative `oci:` paths are resolved against. Default `process.cwd()`. */
  cwd?: string | undefined;
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME_LENGTH = 255;

function invalid(reference: string, why: string): BlobError {
  return new BlobError("ERR_INVALID_ARGUMENT", `invalid reference ${JSON.stringify(reference)}: ${why}`, {
    reason: "invalid-reference",
    subject: reference,
  });
}

/** True when `tag` is a valid OCI tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`). @public */
export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Checks a tag; `ERR_INVALID_ARGUMENT` (reason `invalid-tag`) when it is not a valid OCI tag. @public */
export function assertValidTag(tag: string): string {
  if (typeof tag !== "string" || !TAG.test(tag)) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `invalid tag ${JSON.stringify(tag)}`, {
      reason: "invalid-tag",
      subject: String(tag),
    });
  }
  return tag;
}

function checkDigest(reference: string, digest: string): string {
  if (!DIGEST.test(digest) || (digest.startsWith("sha256:") && !SHA256_DIGEST.test(digest))) {
    throw invalid(reference, `malformed digest ${JSON.stringify(digest)}`);
  }
  if (!SHA256_DIGEST.test(digest)) {
    throw new BlobError(
      "ERR_UNSUPPORTED",
      `only sha256 digests are supported, got ${JSON.stringify(digest)}`,
      {
        reason: "digest-algorithm",
        subject: reference,
      },
    );
  }
  return digest;
}

function isHostLike(component: string): boolean {
  return (
    component.includes(".") || component.includes(":") || component === "localhost" || /[A-Z]/.test(component)
  );
}

function checkHost(reference: string, host: string): string {
  let name = host;
  let port: string | undefined;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end < 0) throw invalid(reference, "unterminated IPv6 address");
    name = host.slice(0, end + 1);
    const rest = host.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) throw invalid(reference, `malformed registry ${JSON.stringify(host)}`);
      port = rest.slice(1);
    }
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(name)) throw invalid(reference, `malformed IPv6 address ${name}`);
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0) {
      name = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
    if (name === "" || !name.split(".").every((part) => DOMAIN_COMPONENT.test(part))) {
      throw invalid(reference, `malformed registry host ${JSON.stringify(host)}`);
    }
  }
  if (port !== undefined && (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535 || Number(port) === 0)) {
    throw invalid(reference, `malformed port in ${JSON.stringify(host)}`);
  }
  // Kept as written, like Docker: lower-casing `T/3`'s host would turn it into the Hub repository `t/3`.
  return host;
}

function splitTagAndDigest(
  reference: string,
  rest: string,
): { name: string; tag: string | undefined; digest: string | undefined } {
  let name = rest;
  let digest: string | undefined;
  const at = name.indexOf("@");
  if (at >= 0) {
    digest = checkDigest(reference, name.slice(at + 1));
    name = name.slice(0, at);
  }
  let tag: string | undefined;
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) {
    tag = name.slice(colon + 1);
    if (!TAG.test(tag)) throw invalid(reference, `malformed tag ${JSON.stringify(tag)}`);
    name = name.slice(0, colon);
  }
  return { name, tag, digest };
}

/**
 * Parses `host[:port]/repo/path[:tag][@digest]` with Docker's normalization (a first component without `.`
 * or `:` that is not `localhost` means Docker Hub, and one-component Hub names get `library/`; a reference
 * with neither tag nor digest gets `latest`), or `oci:<dir>[:tag|@digest]` for an OCI image layout. When a
 * digest is given, it is what is fetched; the tag is kept for display and pushing.
 *
 * @throws BlobError `ERR_INVALID_ARGUMENT` (reason `invalid-reference`) for a malformed reference,
 *   `ERR_UNSUPPORTED` for a digest algorithm other than sha256.
 * @public
 */
export function parseReference(reference: string, options: ParseReferenceOptions = {}): Reference {
  if (typeof reference !== "string") throw invalid(String(reference), "not a string");
  const defaultTag = options.defaultTag === undefined ? DEFAULT_TAG : options.defaultTag;
  if (reference.startsWith("oci:")) return parseLayoutReference(reference, defaultTag, options.cwd);
  if (reference === "") throw invalid(reference, "empty");
  if (/\s/.test(reference)) throw invalid(reference, "contains whitespace");
  if (reference.includes("://"))
    throw invalid(reference, "a reference has no scheme (drop http:// or https://)");
  const { name, tag, digest } = splitTagAndDigest(reference, reference);
  const slash = name.indexOf("/");
  let registry: string;
  let repository: string;
  const first = slash < 0 ? name : name.slice(0, slash);
  if (slash >= 0 && isHostLike(first)) {
    registry = checkHost(reference, first);
    repository = name.slice(slash + 1);
  } else {
    registry = DOCKER_HUB;
    repository = name;
  }
  const lower = registry.toLowerCase();
  if (lower === DOCKER_HUB || lower === "index.docker.io" || lower === DOCKER_HUB_API_HOST)
    registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  if (repository === "") throw invalid(reference, "missing repository");
  if (repository.length > MAX_NAME_LENGTH)
    throw invalid(reference, `repository longer than ${MAX_NAME_LENGTH}`);
  for (const component of repository.split("/")) {
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        reference,
        `repository component ${JSON.stringify(component)} must be lower-case letters, digits and separators`,
      );
    }
  }
  return {
    kind: "registry",
    registry,
    apiHost: registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry,
    repository,
    tag: tag ?? (digest === undefined && defaultTag !== null ? defaultTag : undefined),
    digest,
  };
}

function parseLayoutReference(
  reference: string,
  defaultTag: string | null,
  cwd: string | undefined,
): LayoutReference {
  let rest = reference.slice("oci:".length);
  let digest: string | undefined;
  let tag: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0 && /^[a-z0-9]+:/.test(rest.slice(at + 1))) {
    digest = checkDigest(reference, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  // `oci:<dir>:<tag>` — the tag is what follows the last `:` of the final path segment, when it is a valid
  // tag (so `oci:./a:b/c` is the directory `a:b/c`).
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    const candidate = rest.slice(colon + 1);
    if (!TAG.test(candidate)) throw invalid(reference, `malformed tag ${JSON.stringify(candidate)}`);
    tag = candidate;
    rest = rest.slice(0, colon);
  }
  if (rest === "") throw invalid(reference, "missing directory after oci:");
  if (rest.includes("\0")) throw invalid(reference, "directory contains NUL");
  return {
    kind: "layout",
    dir: resolvePath(cwd ?? process.cwd(), rest),
    tag: tag ?? (digest === undefined && defaultTag !== null ? defaultTag : undefined),
    digest,
  };
}

/**
 * Formats a reference back to its canonical string (`registry/repository[:tag][@digest]` or
 * `oci:<dir>[:tag][@digest]`).
 *
 * @public
 */
export function formatReference(reference: Reference): string {
  const base =
    reference.kind === "layout" ? `oci:${reference.dir}` : `${reference.registry}/${reference.repository}`;
  const tag = reference.tag === undefined ? "" : `:${reference.tag}`;
  const digest = reference.digest === undefined ? "" : `@${reference.digest}`;
  return `${base}${tag}${digest}`;
}

/** The same repository or layout with another tag / digest. @public */
export function withTarget<R extends Reference>(reference: R, target: { tag?: string; digest?: string }): R {
  return { ...reference, tag: target.tag, digest: target.digest };
}
