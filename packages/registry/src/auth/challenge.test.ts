import { describe, expect, it } from "vitest";
import { parseWwwAuthenticate } from "./challenge.ts";

describe("parseWwwAuthenticate", () => {
  it("parses a distribution Bearer challenge", () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/alpine:pull",
        },
      },
    ]);
  });

  it("parses Basic, case-insensitive schemes and names, whitespace around '=' and unquoted values", () => {
    expect(parseWwwAuthenticate('BASIC Realm = "registry"')).toEqual([
      { scheme: "basic", params: { realm: "registry" } },
    ]);
    expect(parseWwwAuthenticate("Bearer realm=https://x.example/token, service=reg")).toEqual([
      { scheme: "bearer", params: { realm: "https://x.example/token", service: "reg" } },
    ]);
  });

  it("keeps commas and escapes inside quoted strings", () => {
    const [challenge] = parseWwwAuthenticate(
      'Bearer realm="https://a.example/t",scope="repository:a:pull,push repository:b:pull",error="x \\"quoted\\" \\\\ y"',
    );
    expect(challenge?.params.scope).toBe("repository:a:pull,push repository:b:pull");
    expect(challenge?.params.error).toBe('x "quoted" \\ y');
  });

  it("parses several challenges in one value and across values", () => {
    const parsed = parseWwwAuthenticate([
      'Basic realm="a", Bearer realm="https://b.example/token", service="svc"',
      'Negotiate abc+/==, Digest realm="d", qop="auth,auth-int", nonce=xyz',
    ]);
    expect(parsed.map((c) => c.scheme)).toEqual(["basic", "bearer", "negotiate", "digest"]);
    expect(parsed[1]?.params).toEqual({ realm: "https://b.example/token", service: "svc" });
    expect(parsed[2]?.token68).toBe("abc+/==");
    expect(parsed[3]?.params).toEqual({ realm: "d", qop: "auth,auth-int", nonce: "xyz" });
  });

  it("accepts schemes without parameters and empty list elements", () => {
    expect(parseWwwAuthenticate(" ,, Bearer ,, Basic realm=r ,")).toEqual([
      { scheme: "bearer", params: {} },
      { scheme: "basic", params: { realm: "r" } },
    ]);
  });

  it("keeps the first of duplicated parameters and never pollutes prototypes", () => {
    const [challenge] = parseWwwAuthenticate(
      'Bearer realm="one", REALM="two", __proto__="x", constructor="y"',
    );
    expect(challenge?.params.realm).toBe("one");
    expect(Object.getOwnPropertyDescriptor(challenge?.params, "__proto__")?.value).toBe("x");
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it("drops a malformed challenge but keeps the ones before it", () => {
    expect(parseWwwAuthenticate('Basic realm="ok", Bearer realm="unterminated')).toEqual([
      { scheme: "basic", params: { realm: "ok" } },
    ]);
    expect(parseWwwAuthenticate('Bearer realm="a" junk')).toEqual([]);
    expect(parseWwwAuthenticate('Bearer realm="a\\')).toEqual([]);
    expect(parseWwwAuthenticate("Bearer realm=")).toEqual([
      { scheme: "bearer", params: {}, token68: "realm=" },
    ]);
    expect(parseWwwAuthenticate('Bearer realm=="x"')).toEqual([]);
  });

  it("never throws on hostile input and stays fast", () => {
    const inputs: unknown[] = [
      "",
      "   ",
      '"',
      "=",
      "==,==",
      "\u0000\u0001",
      "Bearer \r\n realm=x",
      '"'.repeat(10_000),
      "a=".repeat(5_000),
      `Bearer ${"x=1,".repeat(3_000)}`,
      `${"Basic, ".repeat(2_000)}`,
      `Bearer realm="${"\\".repeat(9_999)}`,
      "x".repeat(100_000),
      undefined,
      null,
      42,
      ["Basic realm=a", 7, null],
    ];
    const started = performance.now();
    for (const input of inputs) {
      const result = parseWwwAuthenticate(input as string);
      expect(Array.isArray(result)).toBe(true);
      expect(result.length).toBeLessThanOrEqual(16);
      for (const c of result) expect(Object.keys(c.params).length).toBeLessThanOrEqual(32);
    }
    expect(performance.now() - started).toBeLessThan(500);
    expect(parseWwwAuthenticate("x".repeat(100_000))).toEqual([]);
  });
});
