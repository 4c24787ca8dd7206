import { BlobError } from "@blobkit/core";
import { GITHUB_ACTIONS_ISSUER } from "./constants.ts";

/**
 * A keyless signer identity: the OIDC issuer and the certificate's subject alternative name (SAN).
 * `issuer` and `subject` compare **exactly**. A regular expression is used only when given explicitly
 * (`issuerRegExp` / `subjectRegExp`) and is always anchored (`^(?:…)$`): `main` never matches `main-evil`.
 *
 * @public
 */
export type Identity =
  | { issuer: string; subject: string }
  | { issuer: string; subjectRegExp: RegExp | string }
  | { issuerRegExp: RegExp | string; subject: string }
  | { issuerRegExp: RegExp | string; subjectRegExp: RegExp | string };

/**
 * GitHub Actions workflow identities of one repository: issuer `https://token.actions.githubusercontent.com`,
 * SAN `https://github.com/<repository>/.github/workflows/<workflow>@<ref>`. Globs accept `*` only, which never
 * crosses `/` (`refs/heads/release-*` does not match `refs/heads/release-1/evil`). Without any of
 * `refs`/`branches`/`tags`, every ref is allowed.
 *
 * @public
 */
export interface GitHubActionsIdentity {
  /** `owner/name`, compared exactly. */
  repository: string;
  /** Full ref globs, e.g. `refs/heads/main`, `refs/tags/v*`. */
  refs?: readonly string[] | undefined;
  /** Branch globs (`main`, `release-*`), i.e. `refs/heads/<glob>`. */
  branches?: readonly string[] | undefined;
  /** Tag globs (`v*`), i.e. `refs/tags/<glob>`. */
  tags?: readonly string[] | undefined;
  /** Workflow file name glob (`release.yml`). Default any workflow. */
  workflow?: string | undefined;
}

/** A compiled identity check. */
export interface IdentityMatcher {
  /** Human-readable form for denial messages. */
  readonly description: string;
  matches(issuer: string | undefined, san: string | undefined): boolean;
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

/** Anchors a user regular expression: `^(?:source)$`, without the stateful `g`/`y` flags. */
export function anchored(pattern: RegExp | string): RegExp {
  const source = typeof pattern === "string" ? pattern : pattern.source;
  const flags = typeof pattern === "string" ? "" : pattern.flags.replace(/[gy]/g, "");
  try {
    return new RegExp(`^(?:${source})$`, flags);
  } catch (error) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `invalid regular expression ${JSON.stringify(source)}`, {
      cause: error,
    });
  }
}

/** A glob whose only wildcard `*` matches any run of characters except `/`, as a regex source. */
export function globSource(glob: string): string {
  return glob.split("*").map(escapeRegExp).join("[^/]*");
}

function field(kind: string, exact: string | undefined, pattern: RegExp | string | undefined) {
  if (exact !== undefined) {
    if (typeof exact !== "string" || exact === "")
      throw new BlobError("ERR_INVALID_ARGUMENT", `identity ${kind} must be a non-empty string`);
    return { test: (value: string | undefined) => value === exact, text: `${kind} ${JSON.stringify(exact)}` };
  }
  if (pattern === undefined)
    throw new BlobError("ERR_INVALID_ARGUMENT", `identity needs ${kind} or ${kind}RegExp`);
  const regex = anchored(pattern);
  return {
    test: (value: string | undefined) => value !== undefined && regex.test(value),
    text: `${kind} =~ /${regex.source}/`,
  };
}

/** Compiles an {@link Identity}. */
export function identityMatcher(identity: Identity): IdentityMatcher {
  const i = identity as {
    issuer?: string;
    issuerRegExp?: RegExp | string;
    subject?: string;
    subjectRegExp?: RegExp | string;
  };
  if (i.issuer !== undefined && i.issuerRegExp !== undefined)
    throw new BlobError("ERR_INVALID_ARGUMENT", "identity has both issuer and issuerRegExp");
  if (i.subject !== undefined && i.subjectRegExp !== undefined)
    throw new BlobError("ERR_INVALID_ARGUMENT", "identity has both subject and subjectRegExp");
  const issuer = field("issuer", i.issuer, i.issuerRegExp);
  const subject = field("subject", i.subject, i.subjectRegExp);
  return {
    description: `${issuer.text} + ${subject.text}`,
    matches: (iss, san) => issuer.test(iss) && subject.test(san),
  };
}

const REPOSITORY = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

/** Compiles a {@link GitHubActionsIdentity} into an exact issuer + anchored SAN regex. */
export function githubActionsMatcher(gh: GitHubActionsIdentity): IdentityMatcher {
  if (typeof gh.repository !== "string" || !REPOSITORY.test(gh.repository))
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `githubActions.repository must be "owner/name", got ${JSON.stringify(gh.repository)}`,
    );
  const refs = [
    ...(gh.refs ?? []).map((g) => {
      if (!g.startsWith("refs/"))
        throw new BlobError(
          "ERR_INVALID_ARGUMENT",
          `githubActions.refs entries are full refs (refs/…): ${g}`,
        );
      return globSource(g);
    }),
    ...(gh.branches ?? []).map((g) => `refs/heads/${globSource(g)}`),
    ...(gh.tags ?? []).map((g) => `refs/tags/${globSource(g)}`),
  ];
  const ref = refs.length === 0 ? "refs/[^@]+" : `(?:${refs.join("|")})`;
  const workflow = gh.workflow === undefined ? "[^/@]+" : globSource(gh.workflow);
  const san = new RegExp(
    `^https://github\\.com/${escapeRegExp(gh.repository)}/\\.github/workflows/${workflow}@${ref}$`,
  );
  return {
    description: `GitHub Actions ${gh.repository}${refs.length === 0 ? "" : ` at ${[...(gh.refs ?? []), ...(gh.branches ?? []).map((b) => `refs/heads/${b}`), ...(gh.tags ?? []).map((t) => `refs/tags/${t}`)].join(", ")}`} (issuer ${JSON.stringify(GITHUB_ACTIONS_ISSUER)} + subject =~ /${san.source}/)`,
    matches: (iss, value) => iss === GITHUB_ACTIONS_ISSUER && value !== undefined && san.test(value),
  };
}
