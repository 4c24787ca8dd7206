/**
 * One challenge of a `WWW-Authenticate` header (RFC 7235 §2.1).
 *
 * @public
 */
export interface AuthChallenge {
  /** Authentication scheme, lower-cased (`"bearer"`, `"basic"`…): schemes are case-insensitive. */
  scheme: string;
  /** Parameters by lower-cased name (names are case-insensitive); values unquoted and unescaped. */
  params: Record<string, string>;
  /** The `token68` form (`Negotiate abc==`), when the challenge carries one instead of parameters. */
  token68?: string | undefined;
}

/** Longest header value parsed; longer (hostile) values yield no challenges. */
const MAX_HEADER_LENGTH = 16 * 1024;
/** Most challenges / parameters kept: a registry sends one or two of each, a hostile server millions. */
const MAX_CHALLENGES = 16;
const MAX_PARAMS = 32;

// RFC 7230 tchar and RFC 7235 token68 character classes.
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/**
 * Parses `WWW-Authenticate` header values into challenges: several challenges per value, several values,
 * quoted strings with `\` escapes and commas inside quotes, `token68` forms, optional whitespace around `=`.
 * It never throws: a malformed challenge (unclosed quote, stray characters) is dropped together with
 * everything after it in that value, challenges parsed before it are kept, and a value longer than 16 KiB
 * yields nothing. Parameter names are lower-cased; for duplicated names the first wins.
 *
 * @example
 * ```ts
 * parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"');
 * // → [{ scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry", scope: "repository:a:pull" } }]
 * ```
 *
 * @public
 */
export function parseWwwAuthenticate(header: string | readonly string[] | undefined | null): AuthChallenge[] {
  if (header === undefined || header === null) return [];
  const values = typeof header === "string" ? [header] : Array.isArray(header) ? header : [];
  const out: AuthChallenge[] = [];
  for (const value of values) {
    if (typeof value !== "string" || value.length > MAX_HEADER_LENGTH) continue;
    for (const challenge of parseValue(value)) {
      if (out.length >= MAX_CHALLENGES) return out;
      out.push(challenge);
    }
  }
  return out;
}

/** A small cursor-based scanner: linear in the input, no regex backtracking on attacker-controlled text. */
function parseValue(input: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let i = 0;
  const n = input.length;
  const skipWs = (): void => {
    while (i < n && (input[i] === " " || input[i] === "\t")) i++;
  };
  const skipListSeparators = (): void => {
    while (i < n && (input[i] === " " || input[i] === "\t" || input[i] === ",")) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TCHAR.test(input[i]!)) i++;
    return input.slice(start, i);
  };
  /** Reads a quoted string at `i` (which is `"`); undefined when unterminated. */
  const readQuoted = (): string | undefined => {
    i++;
    let value = "";
    while (i < n) {
      const c = input[i]!;
      if (c === '"') {
        i++;
        return value;
      }
      if (c === "\\") {
        if (i + 1 >= n) return undefined;
        value += input[i + 1];
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    return undefined;
  };

  let current: AuthChallenge | undefined;
  let paramCount = 0;
  skipListSeparators();
  while (i < n) {
    const start = i;
    const token = readToken();
    if (token === "") return challenges; // stray character: malformed from here on
    const afterToken = i;
    skipWs();
    if (input[i] === "=" && current !== undefined) {
      // Either `name=value` or a token68 ending in '=' padding. A token68 is followed by ws*/,/end after
      // its '='s, a parameter by a value.
      let j = i;
      while (j < n && input[j] === "=") j++;
      let k = j;
      while (k < n && (input[k] === " " || input[k] === "\t")) k++;
      const endsHere = k >= n || input[k] === ",";
      if (
        endsHere &&
        current.token68 === undefined &&
        paramCount === 0 &&
        afterToken === i &&
        isToken68(token)
      ) {
        current.token68 = input.slice(start, j);
        i = j;
        skipListSeparators();
        continue;
      }
      if (j - i !== 1) return dropCurrent(challenges, current);
      i = j;
      skipWs();
      let value: string | undefined;
      if (input[i] === '"') {
        value = readQuoted();
        if (value === undefined) return dropCurrent(challenges, current);
      } else {
        // Unquoted values should be tokens, but servers send `realm=https://…` unquoted: be lenient and take
        // everything up to the next separator.
        const begin = i;
        while (i < n && input[i] !== "," && input[i] !== " " && input[i] !== "\t" && input[i] !== '"') i++;
        value = input.slice(begin, i);
        if (value === "") return dropCurrent(challenges, current);
      }
      const name = token.toLowerCase();
      if (paramCount < MAX_PARAMS && !Object.hasOwn(current.params, name)) {
        current.params[name] = value;
        paramCount++;
      }
      skipWs();
      if (i < n && input[i] !== ",") return dropCurrent(challenges, current);
      skipListSeparators();
      continue;
    }
    // A new challenge: `scheme` followed by a token68, parameters, or nothing.
    i = afterToken;
    current = { scheme: token.toLowerCase(), params: Object.create(null) as Record<string, string> };
    paramCount = 0;
    challenges.push(current);
    if (i < n && input[i] !== " " && input[i] !== "\t" && input[i] !== ",")
      return dropCurrent(challenges, current);
    skipWs();
    // A token68 right after the scheme (`Negotiate abc==`, `Basic dXNlcg`): token chars with '=' padding,
    // then end or a comma, and no '=' followed by a value.
    const t = i;
    while (i < n && TOKEN68_CHAR.test(input[i]!)) i++;
    if (i > t) {
      let j = i;
      while (j < n && input[j] === "=") j++;
      let k = j;
      while (k < n && (input[k] === " " || input[k] === "\t")) k++;
      if (k >= n || input[k] === ",") {
        // `scheme token68`, with or without padding (`scheme name=` with nothing after is read this way too).
        current.token68 = input.slice(t, j);
        i = j;
        skipListSeparators();
        continue;
      }
      i = t; // it is a parameter name: re-read it in the loop
    }
    skipListSeparators();
  }
  return challenges;
}

function isToken68(token: string): boolean {
  for (const c of token) if (!TOKEN68_CHAR.test(c)) return false;
  return token.length > 0;
}

/** Drops the challenge being parsed (it is malformed) and ends parsing of this value. */
function dropCurrent(challenges: AuthChallenge[], current: AuthChallenge | undefined): AuthChallenge[] {
  if (current !== undefined && challenges[challenges.length - 1] === current) challenges.pop();
  return challenges;
}
