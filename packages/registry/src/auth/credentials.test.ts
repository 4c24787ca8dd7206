import { isBlobError } from "@blobkit/core";
import { describe, expect, it } from "vitest";
import {
  anonymousCredentials,
  type CredentialStore,
  chainCredentials,
  staticCredentials,
} from "./credentials.ts";
import { isLoopbackHost, normalizeHost } from "./host.ts";

describe("normalizeHost", () => {
  it("strips scheme, user info and path, keeps the port, lower-cases", () => {
    expect(normalizeHost("https://Registry.Example:5000/v2/")).toBe("registry.example:5000");
    expect(normalizeHost("ghcr.io")).toBe("ghcr.io");
    expect(normalizeHost("ghcr.io/acme/app")).toBe("ghcr.io");
    expect(normalizeHost("http://user:secret@localhost:5000")).toBe("localhost:5000");
    expect(normalizeHost("[::1]:5000")).toBe("[::1]:5000");
  });

  it("rejects garbage with ERR_INVALID_ARGUMENT and does not echo it", () => {
    for (const bad of ["", "   ", "https://", "a b", "host:port:x", "hunter2 secret"]) {
      let caught: unknown;
      try {
        normalizeHost(bad);
      } catch (error) {
        caught = error;
      }
      expect(isBlobError(caught, "ERR_INVALID_ARGUMENT")).toBe(true);
      expect(String(caught)).not.toContain("hunter2");
    }
  });

  it("knows loopback hosts", () => {
    expect(isLoopbackHost("127.0.0.1:5000")).toBe(true);
    expect(isLoopbackHost("127.1.2.3")).toBe(true);
    expect(isLoopbackHost("localhost")).toBe(true);
    expect(isLoopbackHost("[::1]:80")).toBe(true);
    expect(isLoopbackHost("127.0.0.1.evil.example")).toBe(false);
    expect(isLoopbackHost("10.0.0.1")).toBe(false);
    expect(isLoopbackHost("localhost.evil.example")).toBe(false);
  });
});

describe("staticCredentials", () => {
  it("normalizes keys and folds the Docker Hub aliases", async () => {
    const store = staticCredentials({
      "https://ghcr.io/v2/": { username: "u", password: "p" },
      "localhost:5000": { registryToken: "t" },
      "https://index.docker.io/v1/": { identityToken: "id" },
    });
    expect(await store.get("ghcr.io")).toEqual({ username: "u", password: "p" });
    expect(await store.get("GHCR.io:443")).toBeUndefined();
    expect(await store.get("localhost:5000")).toEqual({ registryToken: "t" });
    expect(await store.get("localhost")).toBeUndefined();
    for (const hub of ["docker.io", "registry-1.docker.io", "index.docker.io"]) {
      expect(await store.get(hub)).toEqual({ identityToken: "id" });
    }
  });

  it("rejects invalid credentials without echoing them", () => {
    let caught: unknown;
    try {
      staticCredentials({ "ghcr.io": { username: "u", password: 42 } as never });
    } catch (error) {
      caught = error;
    }
    expect(isBlobError(caught, "ERR_INVALID_ARGUMENT")).toBe(true);
    expect(() => staticCredentials({ "": { registryToken: "x" } })).toThrow(/registry host/);
  });
});

describe("chainCredentials / anonymousCredentials", () => {
  it("returns the first hit and propagates failures", async () => {
    const calls: string[] = [];
    const named = (name: string, value?: { registryToken: string }): CredentialStore => ({
      get: async () => {
        calls.push(name);
        return value;
      },
    });
    const chain = chainCredentials(
      anonymousCredentials,
      named("a"),
      named("b", { registryToken: "b" }),
      named("c"),
    );
    expect(await chain.get("x.example")).toEqual({ registryToken: "b" });
    expect(calls).toEqual(["a", "b"]);
    const failing = chainCredentials({
      get: async () => {
        throw new Error("boom");
      },
    });
    await expect(failing.get("x.example")).rejects.toThrow("boom");
    expect(await anonymousCredentials.get("x.example")).toBeUndefined();
  });
});
