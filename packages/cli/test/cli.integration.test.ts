import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../../registry/test/registry-server.ts";
import {
  blob,
  expectJson,
  expectJsonError,
  expectSameTree,
  isolatedEnv,
  pseudoRandomBytes,
  type TreeFile,
  writeTraversalArchive,
  writeTree,
} from "./support.ts";

// The CLI as a child process (node --conditions=source packages/cli/src/bin.ts) against the real
// docker-registry and oci: layouts on disk.

let registry: RunningRegistry;
let work: string;
let env: Record<string, string>;
let src: string;

const FILES: TreeFile[] = [
  { path: "README.md", content: "# hello\n".repeat(300) },
  { path: "bin/run.sh", content: "#!/bin/sh\necho hi\n", mode: 0o755 },
  { path: "config/app.json", content: JSON.stringify({ a: 1, b: [1, 2, 3] }) },
  { path: "config/empty", content: "" },
  { path: "data/random.bin", content: pseudoRandomBytes(300 * 1024 + 7, 3) },
  { path: "docs.md", content: "x" },
  { path: "docs/private.txt", content: "secret-ish\n", mode: 0o600 },
  { path: "odd/a:b.txt", content: "colon in the name\n" },
];

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "blobkit-cli-"));
  env = await isolatedEnv(work);
  src = join(work, "src");
  await writeTree(src, FILES);
});

afterAll(async () => {
  await registry?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("registry round trip", () => {
  it("push → ls/tree/inspect → cat → pull gives back the same tree (bytes and modes)", async () => {
    const ref = `${registry.host}/cli/site:v1`;
    const pushed = expectJson<{ digest: string; tags: string[]; fileCount: number }>(
      await blob(["push", ref, src, "--json", "-t", "stable"], { env }),
      "push",
    );
    expect(pushed.tags).toEqual(["v1", "stable"]);
    expect(pushed.fileCount).toBe(FILES.length);

    const ls = expectJson<{ digest: string; entries: { name: string; type: string }[] }>(
      await blob(["ls", ref, "--json"], { env }),
      "ls",
    );
    expect(ls.digest).toBe(pushed.digest);
    expect(ls.entries.map((e) => `${e.name}${e.type === "directory" ? "/" : ""}`)).toEqual([
      "README.md",
      "bin/",
      "config/",
      "data/",
      "docs/",
      "docs.md",
      "odd/",
    ]);
    const long = await blob(["ls", "-lh", "--digest", ref, "/bin"], { env });
    expect(long.code).toBe(0);
    expect(long.stdout).toMatch(/^-rwxr-xr-x\s+18B\s+\S+ \S+\s+sha256:[0-9a-f]{12}\s+run\.sh\n$/);

    const tree = expectJson<{ fileCount: number; directoryCount: number }>(
      await blob(["tree", ref, "--json"], { env }),
      "tree",
    );
    expect(tree).toMatchObject({ fileCount: FILES.length, directoryCount: 5 });
    const treeText = await blob(["tree", ref, "config"], { env });
    expect(treeText.stdout).toBe("config\n├── app.json\n└── empty\n\n0 directories, 2 files\n");

    const inspect = expectJson<{ digest: string; fileCount: number; compression: string }>(
      await blob(["inspect", `${registry.host}/cli/site:stable`, "--json"], { env }),
      "inspect",
    );
    expect(inspect).toMatchObject({ digest: pushed.digest, fileCount: FILES.length, compression: "zstd" });

    const cat = await blob(["cat", ref, "config/app.json", "/bin/run.sh"], { env });
    expect(cat.code).toBe(0);
    expect(cat.stdout).toBe(`${FILES[2]?.content}${FILES[1]?.content}`);
    const catBinary = await blob(["cat", ref, "data/random.bin"], { env });
    expect(Buffer.compare(catBinary.stdoutBytes, Buffer.from(FILES[4]?.content as Uint8Array))).toBe(0);
    const catJson = expectJson<{ files: { encoding: string; content: string }[] }>(
      await blob(["cat", ref, "README.md", "data/random.bin", "--json"], { env }),
      "cat",
    );
    expect(catJson.files.map((f) => f.encoding)).toEqual(["utf8", "base64"]);
    expect(
      Buffer.from(catJson.files[1]?.content ?? "", "base64").equals(
        Buffer.from(FILES[4]?.content as Uint8Array),
      ),
    ).toBe(true);

    const out = join(work, "pulled");
    const pulled = expectJson<{ fileCount: number; digest: string }>(
      await blob(["pull", ref, out, "--json"], { env }),
      "pull",
    );
    expect(pulled).toMatchObject({ fileCount: FILES.length, digest: pushed.digest });
    await expectSameTree(out, src);
    // A non-empty destination is refused unless --force.
    const again = await blob(["pull", ref, out], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not empty; use --force/);
    await writeFile(join(out, "config/app.json"), "changed");
    expect((await blob(["pull", ref, out, "--force", "-q"], { env })).code).toBe(0);
    await expectSameTree(out, src);
  });

  it("oci: layouts work the same, relative to the working directory", async () => {
    const pushed = await blob(["push", "oci:./layout:v1", src], { env, cwd: work });
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toMatch(/^Pushed oci:.*layout:v1@sha256:[0-9a-f]{64}\n/);
    const ls = await blob(["ls", "oci:./layout:v1", "docs"], { env, cwd: work });
    expect(ls.stdout).toBe("private.txt\n");
    // Streaming (above the buffer limit) gives the same verified bytes.
    const streamed = await blob(["cat", "--buffer-limit", "0", "oci:./layout:v1", "data/random.bin"], {
      env,
      cwd: work,
    });
    expect(streamed.code).toBe(0);
    expect(streamed.stdoutBytes.equals(Buffer.from(FILES[4]?.content as Uint8Array))).toBe(true);
    const pulled = await blob(["pull", "oci:./layout:v1", "layout-out"], { env, cwd: work });
    expect(pulled.code, pulled.stderr).toBe(0);
    await expectSameTree(join(work, "layout-out"), src);
  });

  it("cp copies a file and a directory (verified, archived modes)", async () => {
    const ref = `${registry.host}/cli/site:v1`;
    const dest = join(work, "cp");
    await mkdir(dest);
    const file = expectJson<{ fileCount: number; destination: string }>(
      await blob(["cp", `${ref}:/bin/run.sh`, join(dest, "run"), "--json"], { env }),
      "cp",
    );
    expect(file.fileCount).toBe(1);
    expect(await readFile(join(dest, "run"), "utf8")).toBe(FILES[1]?.content);
    expect((await stat(join(dest, "run"))).mode & 0o777).toBe(0o755);
    // Refused without --force, allowed with it.
    expect((await blob(["cp", `${ref}:/bin/run.sh`, join(dest, "run")], { env })).code).toBe(1);
    expect((await blob(["cp", "-f", `${ref}:/bin/run.sh`, join(dest, "run")], { env })).code).toBe(0);
    // A directory keeps its archive path under the destination.
    const dir = await blob(["cp", `${ref}:/config/`, `${dest}/`], { env });
    expect(dir.code, dir.stderr).toBe(0);
    expect(await readFile(join(dest, "config/app.json"), "utf8")).toBe(FILES[2]?.content);
    expect(await readFile(join(dest, "config/empty"), "utf8")).toBe("");
    // Several files into a directory; an archive path with a colon; an oci: source with a tag.
    await blob(["push", `oci:${join(work, "cp-layout")}:t1`, src], { env });
    const many = await blob(
      ["cp", `oci:${join(work, "cp-layout")}:t1:/odd/a:b.txt`, `${ref}:/docs.md`, join(dest, "many")],
      { env },
    );
    expect(many.code, many.stderr).toBe(0);
    expect(await readFile(join(dest, "many/a:b.txt"), "utf8")).toBe(FILES[7]?.content);
    expect(await readFile(join(dest, "many/docs.md"), "utf8")).toBe("x");
    expect((await stat(join(dest, "many/a:b.txt"))).mode & 0o777).toBe(0o644);
  });

  it("copy registry → layout → registry keeps the digest; tag points more tags at it", async () => {
    const ref = `${registry.host}/cli/site:v1`;
    const { digest } = expectJson<{ digest: string }>(
      await blob(["inspect", ref, "--json"], { env }),
      "inspect",
    );
    const mirror = `oci:${join(work, "mirror")}:v1`;
    const toLayout = expectJson<{ digest: string }>(
      await blob(["copy", ref, mirror, "--json"], { env }),
      "copy",
    );
    expect(toLayout.digest).toBe(digest);
    const back = `${registry.host}/cli/copied:v1`;
    expect(
      expectJson<{ digest: string }>(await blob(["copy", mirror, back, "--json"], { env }), "copy").digest,
    ).toBe(digest);
    expect(
      expectJson<{ digest: string }>(
        await blob(["inspect", back, "--json", "--no-cache"], { env }),
        "inspect",
      ).digest,
    ).toBe(digest);
    const tagged = expectJson<{ tags: string[]; digest: string }>(
      await blob(["tag", back, "v2", `${registry.host}/cli/other:v9`, "--json"], { env }),
      "tag",
    );
    expect(tagged.digest).toBe(digest);
    expect(tagged.tags).toEqual([
      `${registry.host}/cli/copied:v2@${digest}`,
      `${registry.host}/cli/other:v9@${digest}`,
    ]);
    expect(
      expectJson<{ digest: string }>(
        await blob(["inspect", `${registry.host}/cli/other:v9`, "--json"], { env }),
        "inspect",
      ).digest,
    ).toBe(digest);
  });
});

describe("exit codes", () => {
  it("3: missing tag, repository, layout or path", async () => {
    expect(
      expectJsonError(await blob(["inspect", `${registry.host}/cli/site:nope`, "--json"], { env }), 3).code,
    ).toBe("ERR_NOT_FOUND");
    expect((await blob(["ls", `${registry.host}/cli/nothing:v1`], { env })).code).toBe(3);
    expect((await blob(["ls", `oci:${join(work, "no-layout")}:v1`], { env })).code).toBe(3);
    const path = await blob(["cat", `${registry.host}/cli/site:v1`, "no/such.txt"], { env });
    expect(path.code).toBe(3);
    expect(path.stderr).toMatch(/^blob: .*no\/such\.txt/);
  });

  it("2: usage errors (unknown option, bad reference, bad cp source, traversal path typed by the user)", async () => {
    const unknown = await blob(["ls", "--frobnicate", "oci:x"], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^blob: unknown option '--frobnicate'/);
    expect(expectJsonError(await blob(["--json", "push"], { env }), 2).code).toBe("ERR_USAGE");
    expect((await blob(["inspect", "Bad Ref"], { env })).code).toBe(2);
    expect((await blob(["cp", `${registry.host}/cli/site:v1/bin/run.sh`, "x"], { env })).code).toBe(2);
    expect((await blob(["cat", `${registry.host}/cli/site:v1`, "../etc/passwd"], { env })).code).toBe(2);
    expect((await blob([], { env })).code).toBe(2);
  });

  it("4: a tampered blob in the registry's storage — cat prints nothing unverified; streaming says the output is invalid", async () => {
    const tamperSrc = join(work, "tamper-src");
    const content = pseudoRandomBytes(256 * 1024, 11);
    await writeTree(tamperSrc, [{ path: "f.bin", content }]);
    const ref = `${registry.host}/cli/tampered:v1`;
    expect((await blob(["push", ref, tamperSrc, "-c", "none"], { env })).code).toBe(0);
    const { data } = expectJson<{ data: { digest: string } }>(
      await blob(["inspect", ref, "--json"], { env }),
      "inspect",
    );
    const path = registry.blobPath(data.digest);
    const bytes = await readFile(path);
    bytes[200 * 1024] = (bytes[200 * 1024] ?? 0) ^ 0xff;
    await writeFile(path, bytes);

    const buffered = await blob(["cat", "--no-cache", ref, "f.bin"], { env });
    expect(buffered.code).toBe(4);
    expect(buffered.stdoutBytes.length).toBe(0);
    expect(buffered.stderr).toMatch(/SHA-256/);
    const streamed = await blob(["cat", "--no-cache", "--buffer-limit", "64K", ref, "f.bin"], { env });
    expect(streamed.code).toBe(4);
    expect(streamed.stderr).toMatch(/the output is invalid/);
    expect(streamed.stdoutBytes.length).toBeLessThan(content.length);
    const out = join(work, "tampered-out");
    expect((await blob(["pull", "--no-cache", ref, out], { env })).code).toBe(4);
    expect(await readdir(out).catch(() => [])).not.toContain("f.bin");
  });

  it("4: an index with a traversal path (../evil) is refused on load", async () => {
    const layout = join(work, "evil-layout");
    await writeTraversalArchive(layout, "evil");
    const result = await blob(["--json", "ls", `oci:${layout}:evil`], { env });
    expect(expectJsonError(result, 4).code).toBe("ERR_INVALID_INDEX");
    const pull = await blob(["pull", `oci:${layout}:evil`, join(work, "evil-out")], { env });
    expect(pull.code).toBe(4);
    expect(await readdir(work)).not.toContain("evil");
    expect(await readdir(join(work, "evil-out")).catch(() => [])).toEqual([]);
  });

  it("1: a signing service that cannot be reached; 6: keyless signing without any OIDC token", async () => {
    const token = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(
      JSON.stringify({ iss: "https://issuer.example", sub: "https://example.com/me", aud: "sigstore" }),
    ).toString("base64url")}.`;
    const dir = join(work, "sign-src");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "a.txt"), "a");
    expect((await blob(["push", `${registry.host}/cli/to-sign:v1`, dir], { env })).code).toBe(0);
    const unreachable = await blob(
      [
        "sign",
        `${registry.host}/cli/to-sign:v1`,
        "--fulcio-url",
        "http://127.0.0.1:1",
        "--rekor-url",
        "http://127.0.0.1:1",
      ],
      { env: { ...env, SIGSTORE_ID_TOKEN: token } },
    );
    expect(unreachable.code, unreachable.stderr).toBe(1);
    expect(unreachable.stderr).not.toContain(token);
    const noToken = await blob(["sign", `${registry.host}/cli/to-sign:v1`], { env });
    expect(noToken.code, noToken.stderr).toBe(6);
  });

  it("130: Ctrl-C aborts a hanging request, removes the push spool and exits 130", async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket); // accept, never answer
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const tmp = join(work, "tmp-interrupt");
    await mkdir(tmp);
    try {
      let sent = false;
      const started = Date.now();
      const result = await blob(["-v", "push", `127.0.0.1:${port}/cli/hang:v1`, src], {
        env: { ...env, TMPDIR: tmp },
        onStderr: (text, pid) => {
          if (!sent && text.includes("packing")) {
            sent = true;
            setTimeout(() => process.kill(pid, "SIGINT"), 300);
          }
        },
      });
      expect(result.code, result.stderr).toBe(130);
      expect(result.stderr).toMatch(/blob: interrupted/);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("JSON of the other commands", () => {
  it("cache status/path/prune/clear, config show/path, version, logout match their schemas", async () => {
    const status = expectJson<{ kind: string; sizeBytes: number; entries: number }>(
      await blob(["cache", "status", "--json"], { env }),
      "cache status",
    );
    expect(status.kind).toBe("disk");
    expect(status.sizeBytes).toBeGreaterThan(0); // the registry reads above went through the default disk cache
    expect(
      expectJson<{ location: string }>(await blob(["cache", "path", "--json"], { env }), "cache path")
        .location,
    ).toBe(join(env.XDG_CACHE_HOME as string, "blob"));
    expectJson(await blob(["cache", "prune", "--max-size", "1MiB", "--json"], { env }), "cache prune");
    expectJson(await blob(["cache", "clear", "--json"], { env }), "cache clear");
    expect(
      expectJson<{ sizeBytes: number }>(await blob(["cache", "status", "--json"], { env }), "cache status")
        .sizeBytes,
    ).toBe(0);
    const redis = await blob(["--cache", "redis://user:hunter2@127.0.0.1:1/0", "cache", "path"], { env });
    expect(redis.stdout).not.toMatch(/hunter2/);
    const config = expectJson<{ config: { cache: { location: string } } }>(
      await blob(["config", "show", "--json"], { env: { ...env, BLOB_CACHE: "redis://u:hunter2@h:6379" } }),
      "config show",
    );
    expect(JSON.stringify(config)).not.toMatch(/hunter2/);
    expectJson(await blob(["config", "path", "--json"], { env }), "config path");
    const version = expectJson<{ packages: Record<string, string> }>(
      await blob(["version", "--json"], { env }),
      "version",
    );
    expect(Object.keys(version.packages)).toContain("@blobkit/registry");
    const logout = await blob(["logout", "127.0.0.1:1", "--json"], { env });
    expect(JSON.parse(logout.stdout)).toMatchObject({ removed: false });
  });
});
