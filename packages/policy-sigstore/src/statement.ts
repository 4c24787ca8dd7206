import { IN_TOTO_STATEMENT_V1, IN_TOTO_STATEMENT_V01 } from "./constants.ts";

/** One subject of an in-toto statement. @public */
export interface StatementSubject {
  name?: string | undefined;
  digest: Record<string, string>;
  annotations?: Record<string, unknown> | undefined;
}

/** An in-toto statement (v1, or v0.1 for SLSA v0.2 provenance). @public */
export interface InTotoStatement {
  _type: string;
  subject: StatementSubject[];
  predicateType: string;
  predicate?: unknown;
}

/**
 * The statement cosign signs for an OCI manifest: `subject` = the manifest digest (no name), `predicate` = `{}`
 * unless given. Key order matches cosign's protojson output.
 */
export function manifestStatement(
  digest: string,
  predicateType: string,
  predicate: unknown = {},
  annotations?: Record<string, unknown>,
): InTotoStatement {
  const [algorithm, hex] = splitDigest(digest);
  const subject: StatementSubject = { digest: { [algorithm]: hex } };
  if (annotations !== undefined && Object.keys(annotations).length > 0) subject.annotations = annotations;
  return { _type: IN_TOTO_STATEMENT_V1, subject: [subject], predicateType, predicate };
}

/** `sha256:<hex>` → `["sha256", "<hex>"]`. */
export function splitDigest(digest: string): [string, string] {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-f0-9]{32,})$/.exec(digest);
  if (match === null) throw new Error(`not a digest: ${JSON.stringify(digest)}`);
  return [match[1] as string, match[2] as string];
}

/** Parses and shape-checks an in-toto statement; throws with the reason. */
export function parseStatement(payload: Uint8Array): InTotoStatement {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw new Error("the DSSE payload is not JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new Error("the in-toto statement is not an object");
  const s = json as Record<string, unknown>;
  if (s._type !== IN_TOTO_STATEMENT_V1 && s._type !== IN_TOTO_STATEMENT_V01)
    throw new Error(`unknown in-toto statement type ${JSON.stringify(s._type)}`);
  if (typeof s.predicateType !== "string") throw new Error("the in-toto statement has no predicateType");
  if (!Array.isArray(s.subject) || s.subject.length === 0)
    throw new Error("the in-toto statement has no subject");
  for (const subject of s.subject) {
    const digest = (subject as { digest?: unknown } | null)?.digest;
    if (typeof digest !== "object" || digest === null || Array.isArray(digest))
      throw new Error("an in-toto subject has no digest");
  }
  return json as InTotoStatement;
}

/** True when some subject of `statement` carries `digest` (`sha256:<hex>`; hex compared case-insensitively). */
export function statementCovers(statement: InTotoStatement, digest: string): boolean {
  const [algorithm, hex] = splitDigest(digest);
  return statement.subject.some((subject) => {
    const value = subject.digest[algorithm];
    return typeof value === "string" && value.toLowerCase() === hex.toLowerCase();
  });
}

/** The subjects' digests, for messages: `sha256:ab12…, sha256:cd34…`. */
export function describeSubjects(statement: InTotoStatement): string {
  return statement.subject
    .flatMap((subject) => Object.entries(subject.digest).map(([alg, hex]) => `${alg}:${hex}`))
    .join(", ");
}
