import { isBlobError } from "@blobkit/core";
import { describe, expect, it } from "vitest";
import { isLoopbackHost } from "./auth/index.ts";
import { formatReference, parseReference } from "./reference.ts";

const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("parseReference: registry references", () => {
  it.each([
    ["ghcr.io/acme/configs:v1", "ghcr.io", "ghcr.io", "acme/configs", "v1", undefined],
    ["ghcr.io/acme/configs", "ghcr.io", "ghcr.io", "acme/configs", "latest", undefined],
    [`ghcr.io/acme/configs@${DIGEST}`, "ghcr.io", "ghcr.io", "acme/configs", undefined, DIGEST],
    [`ghcr.io/acme/configs:v1@${DIGEST}`, "ghcr.io", "ghcr.io", "acme/configs", "v1", DIGEST],
    ["localhost:5000/a/b/c:x_Y.1-2", "localhost:5000", "localhost:5000", "a/b/c", "x_Y.1-2", undefined],
    ["localhost/app", "localhost", "localhost", "app", "latest", undefined],
    ["127.0.0.1:5000/app:1", "127.0.0.1:5000", "127.0.0.1:5000", "app", "1", undefined],
    ["[::1]:5000/app:1", "[::1]:5000", "[::1]:5000", "app", "1", undefined],
    // Host case is kept (Docker does): lower-casing `T/3`'s host would make it the Hub repository `t/3`.
    ["Registry.Example.COM/app", "Registry.Example.COM", "Registry.Example.COM", "app", "latest", undefined],
    ["T/3", "T", "T", "3", "latest", undefined],
    // Docker Hub normalization
    ["ubuntu", "docker.io", "registry-1.docker.io", "library/ubuntu", "latest", undefined],
    ["ubuntu:22.04", "docker.io", "registry-1.docker.io", "library/ubuntu", "22.04", undefined],
    ["acme/app:v1", "docker.io", "registry-1.docker.io", "acme/app", "v1", undefined],
    ["docker.io/ubuntu", "docker.io", "registry-1.docker.io", "library/ubuntu", "latest", undefined],
    ["index.docker.io/acme/app", "docker.io", "registry-1.docker.io", "acme/app", "latest", undefined],
    ["a.b/c__d/e-f/g.h/i--j", "a.b", "a.b", "c__d/e-f/g.h/i--j", "latest", undefined],
  ])("%s", (input, registry, apiHost, repository, tag, digest) => {
    const ref = parseReference(input);
    expect(ref).toEqual({ kind: "registry", registry, apiHost, repository, tag, digest });
  });

  it("leaves the tag undefined when asked not to default it", () => {
    expect(parseReference("ghcr.io/a/b", { defaultTag: null }).tag).toBeUndefined();
  });

  it.each([
    "",
    "ghcr.io/",
    "ghcr.io/Acme/app",
    "ghcr.io/acme//app",
    "ghcr.io/acme/app:",
    "ghcr.io/acme/app:-bad",
    `ghcr.io/acme/app:${"x".repeat(129)}`,
    "ghcr.io/acme/app@sha256:abc",
    "ghcr.io/acme/app@",
    "https://ghcr.io/acme/app",
    "ghcr.io/acme/app with space",
    "ghcr.io:99999/app",
    "ghcr.io:0/app",
    "-bad.host/app",
    "ghcr.io/acme/app_",
    "ghcr.io/acme/.app",
    `ghcr.io/${"a".repeat(256)}`,
    "[::1/app",
  ])("rejects %j with ERR_INVALID_ARGUMENT", (input) => {
    let error: unknown;
    try {
      parseReference(input);
    } catch (e) {
      error = e;
    }
    expect(isBlobError(error, "ERR_INVALID_ARGUMENT")).toBe(true);
    expect((error as { reason?: string }).reason).toBe("invalid-reference");
  });

  it("rejects digest algorithms other than sha256 as unsupported", () => {
    expect(() => parseReference(`ghcr.io/a@sha512:${"a".repeat(128)}`)).toThrow(
      expect.objectContaining({ code: "ERR_UNSUPPORTED" }),
    );
  });

  it("formats back to a reference that parses the same", () => {
    for (const input of ["T/3", "Registry.Example.COM:5000/a/b:v1", "ubuntu", `localhost/x@${DIGEST}`]) {
      const ref = parseReference(input);
      expect(parseReference(formatReference(ref))).toEqual(ref);
    }
  });

  it("formats back to the canonical form", () => {
    expect(formatReference(parseReference("ubuntu"))).toBe("docker.io/library/ubuntu:latest");
    expect(formatReference(parseReference(`ghcr.io/a/b:v1@${DIGEST}`))).toBe(`ghcr.io/a/b:v1@${DIGEST}`);
  });
});

describe("parseReference: oci: layout references", () => {
  it.each([
    ["oci:store", "/w/store", "latest", undefined],
    ["oci:./store:v1", "/w/store", "v1", undefined],
    ["oci:/abs/store:v1", "/abs/store", "v1", undefined],
    [`oci:store@${DIGEST}`, "/w/store", undefined, DIGEST],
    ["oci:a:b/c", "/w/a:b/c", "latest", undefined],
    ["oci:a:b/c:t", "/w/a:b/c", "t", undefined],
  ])("%s", (input, dir, tag, digest) => {
    expect(parseReference(input, { cwd: "/w" })).toEqual({ kind: "layout", dir, tag, digest });
  });

  it.each(["oci:", "oci::v1", "oci:store:bad tag", "oci:store:-x", `oci:a\0b`])("rejects %j", (input) => {
    expect(() => parseReference(input)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }));
  });
});

describe("isLoopbackHost", () => {
  it.each([
    ["localhost", true],
    ["localhost:5000", true],
    ["127.0.0.1:5000", true],
    ["127.8.9.10", true],
    ["[::1]:5000", true],
    ["[::1]", true],
    ["ghcr.io", false],
    ["localhost.evil.com", false],
    ["127.0.0.1.nip.io", false],
    ["10.0.0.1:5000", false],
  ])("%s → %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});
