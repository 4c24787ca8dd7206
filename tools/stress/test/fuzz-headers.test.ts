import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isBlobError } from "@blobkit/core";
import { HttpSource, parseContentRange } from "@blobkit/http-source";
import { formatReference, parseReference, parseWwwAuthenticate } from "@blobkit/registry";
import fc from "fast-check";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FUZZ_RUNS, fuzz, InvariantError, SEED } from "./support/fuzz.ts";
import { envInt, recordResult } from "./support/results.ts";

// Fuzzing of the header and reference parsers: WWW-Authenticate (registry auth/challenge.ts), Content-Range
// (http-source, the parser and end to end through HttpSource) and image references
// (registry parseReference). Structured generators mix the valid grammar with junk, plus raw strings and long
// repetitive inputs aimed at regex backtracking.

const fail = (what: string): never => {
  throw new InvariantError(what);
};

/** Concatenation of generated pieces. */
const cat = (...parts: fc.Arbitrary<string>[]): fc.Arbitrary<string> =>
  fc.tuple(...parts).map((p) => p.join(""));
const maybe = (a: fc.Arbitrary<string>): fc.Arbitrary<string> => fc.oneof(fc.constant(""), a);
const ws = fc.constantFrom("", "", " ", "  ", "\t", " \t ");
const junk = fc.string({ maxLength: 6, unit: "binary" });
/** Long repetitive strings: ReDoS and quadratic-scan probes. */
const longRepeat = (pieces: string[]): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.constantFrom(...pieces),
      fc.integer({ min: 100, max: 20_000 }),
      fc.constantFrom("", "!", "\0", "=", '"', ","),
    )
    .map(([p, n, tail]) => p.repeat(n) + tail);

// ---- WWW-Authenticate --------------------------------------------------------------------------------------
const token = fc.oneof(
  fc.constantFrom(
    "Bearer",
    "bearer",
    "Basic",
    "Negotiate",
    "realm",
    "service",
    "scope",
    "error",
    "REALM",
    "x-y",
    "a!#$%&'*+-.^_`|~",
  ),
  fc.string({ minLength: 1, maxLength: 6, unit: fc.constantFrom(..."abcXYZ019!#$%&'*+-.^_`|~") }),
);
const quoted = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        "a",
        "b",
        ",",
        " ",
        "=",
        "https://auth/token",
        '\\"',
        "\\\\",
        "\\",
        "repository:a:pull,push",
        "\u00e9",
        "\t",
      ),
      junk,
    ),
    {
      maxLength: 5,
    },
  )
  .map((parts) => `"${parts.join("")}"`);
const unclosed = quoted.map((q) => q.slice(0, -1));
const value = fc.oneof(
  { weight: 4, arbitrary: quoted },
  { weight: 2, arbitrary: token },
  { weight: 1, arbitrary: unclosed },
  { weight: 1, arbitrary: fc.constantFrom("https://auth.example/token?x=1", "", "=") },
);
const param = cat(token, ws, fc.constantFrom("=", "=", "==", ""), ws, value);
const token68 = fc
  .string({ minLength: 1, maxLength: 12, unit: fc.constantFrom(..."AZaz09-._~+/") })
  .chain((t) => fc.constantFrom(t, `${t}=`, `${t}==`));
const challenge = cat(
  token,
  fc.oneof(
    fc.constant(""),
    cat(fc.constantFrom(" ", "  ", "\t"), token68),
    cat(
      fc.constantFrom(" ", "  "),
      fc
        .array(param, { minLength: 1, maxLength: 5 })
        .chain((ps) => fc.constantFrom(ps.join(","), ps.join(", "), ps.join(" ,"), ps.join(",,"))),
    ),
  ),
);
const wwwAuthenticateArb: fc.Arbitrary<string | string[]> = fc.oneof(
  { weight: 8, arbitrary: fc.array(challenge, { minLength: 1, maxLength: 4 }).map((cs) => cs.join(", ")) },
  {
    weight: 2,
    arbitrary: fc.array(
      fc.array(challenge, { minLength: 1, maxLength: 3 }).map((cs) => cs.join(",")),
      { maxLength: 20 },
    ),
  },
  {
    weight: 2,
    arbitrary: cat(
      fc.array(challenge, { maxLength: 3 }).map((c) => c.join(",")),
      junk,
      maybe(challenge),
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 64, unit: "binary" }) },
  {
    weight: 1,
    arbitrary: longRepeat(['a="b",', "Bearer ", "a=", '"', "\\", " ", ",", "a", 'x="\\"', "Basic abc=, "]),
  },
);

// ---- Content-Range -------------------------------------------------------------------------------------------
const num = fc.oneof(
  { weight: 4, arbitrary: fc.nat(2000).map(String) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "0",
      "00",
      "007",
      "9007199254740991",
      "9007199254740992",
      "99999999999999999999",
      "1e3",
      "-1",
      "+1",
      "0x10",
      " 1",
      "",
    ),
  },
  {
    weight: 1,
    arbitrary: fc.string({ minLength: 1, maxLength: 400, unit: fc.constantFrom(..."0123456789") }),
  },
);
const contentRangeArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 8,
    arbitrary: cat(
      ws,
      fc.constantFrom("bytes", "BYTES", "Bytes", "byte", "bytes=", "items"),
      fc.constantFrom(" ", "  ", "\t", "", "\n"),
      num,
      fc.constantFrom("-", "-", "–", ""),
      num,
      fc.constantFrom("/", "/", "//", ""),
      fc.oneof(num, fc.constant("*")),
      ws,
    ),
  },
  {
    weight: 2,
    arbitrary: cat(
      ws,
      fc.constantFrom("bytes ", "bytes  "),
      fc.constantFrom("*", "*/", "* "),
      fc.constantFrom("/", ""),
      num,
      ws,
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: longRepeat([" ", "1", "bytes ", "1-", "\t"]) },
);

// ---- references --------------------------------------------------------------------------------------------
const hex64 = fc.string({ minLength: 64, maxLength: 64, unit: fc.constantFrom(..."0123456789abcdef") });
const host = fc.oneof(
  fc.constantFrom(
    "",
    "localhost",
    "localhost:5000",
    "127.0.0.1:5000",
    "ghcr.io",
    "Ghcr.IO",
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "[::1]:5000",
    "[::1]",
    "[::1",
    "[zz]:1",
    "a..b",
    "-bad.com",
    "host:0",
    "host:65536",
    "host:99999",
    "host:",
    "h_st.io",
    "xn--bcher-kva.example",
    "a.b.c.d.e:1",
  ),
  fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom(..."abc.-:[]09_") }),
);
const repoComponent = fc.oneof(
  fc.constantFrom(
    "library",
    "a",
    "foo-bar",
    "foo__bar",
    "foo___bar",
    "foo.bar",
    "Foo",
    "..",
    ".",
    "",
    "x_y",
    "-a",
    "a-",
    "a--b",
    "ubuntu",
    "é",
  ),
  fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom(..."az09._-") }),
);
const repo = fc.array(repoComponent, { minLength: 1, maxLength: 4 }).map((c) => c.join("/"));
const tag = fc.oneof(
  fc.constantFrom("v1", "latest", "", "-x", ".x", "_x", "a".repeat(128), "a".repeat(129), "v1:v2", "sha256"),
  fc.string({ maxLength: 10, unit: "grapheme-ascii" }),
);
const digest = fc.oneof(
  hex64.map((h) => `sha256:${h}`),
  hex64.map((h) => `SHA256:${h}`),
  hex64.map((h) => `sha256:${h.toUpperCase()}`),
  hex64.map((h) => `sha512:${h}${h}`),
  hex64.map((h) => `sha256:${h.slice(1)}`),
  fc.constantFrom("sha256:", ":", "sha256", "md5:abc", "a+b.c:x=y"),
);
const referenceArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 10,
    arbitrary: cat(
      fc.constantFrom("", "", "", "oci:", "oci:./", "http://", "https://", " "),
      maybe(host.map((h) => `${h}/`)),
      repo,
      maybe(tag.map((t) => `:${t}`)),
      maybe(digest.map((d) => `@${d}`)),
      fc.constantFrom("", "", "", "\n", "@", ":", "/"),
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 40, unit: "grapheme-ascii" }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40, unit: "binary" }) },
  { weight: 1, arbitrary: longRepeat(["a", "a-", "a.", "a/", "a__", "0", "oci:", ":", "@", "a.b"]) },
);

describe("header and reference parsers", () => {
  it("parseWwwAuthenticate never throws and returns well-formed challenges", () => {
    const report = fuzz({
      parser: "parseWwwAuthenticate",
      arbitrary: wwwAuthenticateArb,
      neverThrows: true,
      call: (header) => {
        const challenges = parseWwwAuthenticate(header);
        if (!Array.isArray(challenges) || challenges.length > 16) fail("more than 16 challenges");
        for (const c of challenges) {
          if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(c.scheme))
            fail(`scheme ${JSON.stringify(c.scheme)} is not a lower-case token`);
          const params = Object.entries(c.params);
          if (params.length > 32) fail("more than 32 params");
          for (const [k, v] of params) {
            if (k !== k.toLowerCase() || typeof v !== "string")
              fail("param name not lower-case or value not a string");
          }
          if (c.token68 !== undefined && !/^[A-Za-z0-9\-._~+/]+=*$/.test(c.token68))
            fail(`bad token68 ${c.token68}`);
        }
      },
    });
    expect(report.distinctCrashes).toEqual([]);
    expect(report.hangs).toBe(0);
  });

  it("parseContentRange never throws and returns consistent ranges", () => {
    expect(parseContentRange("bytes 0-9/10")).toEqual({ start: 0, end: 9, total: 10 });
    const report = fuzz({
      parser: "parseContentRange",
      arbitrary: contentRangeArb,
      neverThrows: true,
      // Reported: a 416 total above 2^53 is returned unchecked (regressions.test.ts).
      call: (value) => {
        const r = parseContentRange(value);
        if (r === undefined) return;
        if ("unsatisfied" in r) {
          // The total of a 416 becomes the object's size in HttpSource.size(): it must be a safe integer.
          if (!Number.isSafeInteger(r.unsatisfied) || r.unsatisfied < 0)
            fail("unsatisfied total is not a safe integer");
          return;
        }
        if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start > r.end)
          fail("bad start/end");
        if (r.total !== undefined && (!Number.isSafeInteger(r.total) || r.end >= r.total)) fail("bad total");
      },
    });
    expect(report.distinctCrashes).toEqual([]);
    expect(report.hangs).toBe(0);
  });

  it("parseReference: a reference that formats back to itself, or a typed BlobError", () => {
    const report = fuzz({
      parser: "parseReference",
      arbitrary: referenceArb,
      // Found here and fixed: an upper-case one-label registry ("H/r6") was lower-cased into a Docker Hub name.
      call: (input) => {
        const ref = parseReference(input, { cwd: "/work" });
        if (ref.kind !== "registry") return;
        const again = parseReference(formatReference(ref), { cwd: "/work" });
        if (JSON.stringify(again) !== JSON.stringify(ref)) fail("parse ∘ format is not the identity");
        if (ref.digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(ref.digest))
          fail(`digest ${ref.digest} accepted`);
      },
    });
    expect(report.distinctCrashes).toEqual([]);
    expect(report.hangs).toBe(0);
  });
});

// ---- Content-Range end to end: HttpSource against a server answering fuzzed headers --------------------------
describe("HttpSource against fuzzed Content-Range / Content-Length answers", () => {
  const content = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 31 + 7) & 0xff));
  type Answer = {
    status: number;
    /** "exact": the right header; "delta": the right numbers shifted; "fuzz": a generated header. */
    mode: "exact" | "delta" | "fuzz";
    contentRange: string | undefined;
    deltas: [number, number, number];
    spelling: [string, string];
    contentLength: string | undefined;
    bodyDelta: number;
  };
  let next: Answer = {
    status: 206,
    mode: "exact",
    contentRange: undefined,
    deltas: [0, 0, 0],
    spelling: ["bytes ", ""],
    contentLength: undefined,
    bodyDelta: 0,
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? "");
    const start = m === null ? 0 : Number(m[1]);
    const end = m === null ? content.length - 1 : Math.min(Number(m[2]), content.length - 1);
    const body = content.subarray(start, Math.max(start, end + 1 + next.bodyDelta));
    const headers: Record<string, string> = { etag: '"fixed"' };
    let contentRange = next.contentRange;
    if (next.mode !== "fuzz") {
      const [ds, de, dt] = next.mode === "exact" ? [0, 0, 0] : next.deltas;
      contentRange = `${next.spelling[0]}${start + ds}-${end + de}/${content.length + dt}${next.spelling[1]}`;
    }
    if (contentRange !== undefined) headers["content-range"] = contentRange;
    headers["content-length"] = next.contentLength ?? String(body.length);
    try {
      res.writeHead(req.method === "HEAD" ? 405 : next.status, headers);
      res.end(req.method === "HEAD" ? undefined : body);
    } catch {
      res.destroy();
    }
  });
  let url = "";
  const dispatcher = new Agent({ connections: 4 });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`;
  });
  afterAll(async () => {
    await dispatcher.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("every read returns the right bytes or a typed error; size() is a safe integer or a typed error", async () => {
    const runs = envInt("STRESS_HTTP_FUZZ_RUNS", Math.min(FUZZ_RUNS, 5_000));
    const answer = fc.record({
      status: fc.constantFrom(206, 206, 206, 206, 206, 206, 200, 416),
      mode: fc.constantFrom("exact" as const, "exact" as const, "delta" as const, "fuzz" as const),
      deltas: fc.tuple(
        fc.integer({ min: -2, max: 2 }),
        fc.integer({ min: -2, max: 2 }),
        fc.integer({ min: -2, max: 2 }),
      ),
      spelling: fc.tuple(
        fc.constantFrom("bytes ", "BYTES ", " bytes\t", "bytes=", "bytes  "),
        fc.constantFrom("", " ", "\t", "x"),
      ),
      contentRange: fc.oneof(
        {
          weight: 6,
          arbitrary: contentRangeArb.filter(
            (s) => !/[\r\n\0]/.test(s) && /^[\x20-\x7e\t]*$/.test(s) && s.length < 8000,
          ),
        },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      contentLength: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom("0", "1", "16", "abc", "99999999999999999999") },
      ),
      bodyDelta: fc.oneof(
        { weight: 6, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }) },
      ),
      offset: fc.nat(4200),
      length: fc.integer({ min: 1, max: 64 }),
      probeSize: fc.boolean(),
    });
    const samples = fc.sample(answer, { numRuns: runs, seed: SEED });
    let wrongBytes = 0;
    let ok = 0;
    let typed = 0;
    let sized = 0;
    const crashes: string[] = [];
    const started = performance.now();
    for (const s of samples) {
      next = s;
      const source = new HttpSource(url, {
        dispatcher,
        retries: 0,
        idleTimeoutMs: 100,
        timeoutMs: 1000,
        ...(s.probeSize ? {} : { size: content.length }),
      });
      try {
        if (s.probeSize) {
          const size = await source.size();
          sized++;
          if (!Number.isSafeInteger(size) || size < 0)
            crashes.push(`size() returned ${size} for ${JSON.stringify(s)}`);
        } else {
          const bytes = await source.read(s.offset, s.length);
          ok++;
          if (!Buffer.from(bytes).equals(content.subarray(s.offset, s.offset + s.length))) wrongBytes++;
        }
      } catch (error) {
        if (isBlobError(error)) typed++;
        else crashes.push(`${String(error)} for ${JSON.stringify(s)}`);
      } finally {
        await source.close();
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const result = {
      inputs: samples.length,
      readsOk: ok,
      sizesOk: sized,
      typed,
      wrongBytes,
      crashes: crashes.length,
      firstCrashes: crashes.slice(0, 5),
      seconds: Math.round(seconds * 10) / 10,
    };
    recordResult("fuzz", "HttpSource(Content-Range e2e)", result);
    console.log(`[fuzz] HttpSource Content-Range e2e ${JSON.stringify(result)}`);
    expect(wrongBytes).toBe(0);
    expect(ok).toBeGreaterThan(0);
    // Known, reported (regressions.test.ts): size() trusts a 416 total above 2^53.
    expect(crashes.filter((c) => !/^size\(\) returned \d{16,}/.test(c))).toEqual([]);
  });
});
