import { mkdtempSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { BlobError, type BlobErrorCode } from "@blobkit/core";
import { Client, type Policy } from "@blobkit/registry";
import { afterAll, describe, expect, it } from "vitest";
import { REFERENCE_PATH, renderReference } from "../scripts/gen-reference.ts";
import { humanSize, parseDuration, parseSize } from "../src/format.ts";
import {
  buildPolicies,
  CliError,
  COMMANDS,
  type CommandSpec,
  EXIT,
  EXIT_CODE_TABLE,
  exitCodeFor,
  generateReference,
  InterruptError,
  loadConfig,
  matchingRules,
  parseCopySource,
  parsePolicySpec,
  resolveReference,
  run,
  validateJson,
} from "../src/index.ts";
import { CONFIG_EXAMPLE } from "../src/reference.ts";
import { ROOT } from "./support.ts";

/** A fresh, empty HOME for this file's runs (a fixed path would carry a cache over from earlier runs). */
const home = join(mkdtempSync(join(tmpdir(), "blobkit-cli-unit-")), "home");
afterAll(async () => {
  await rm(join(home, ".."), { recursive: true, force: true });
});

/** In-process run with captured stdout / stderr. */
async function runCaptured(argv: string[], env: Record<string, string> = {}, cwd = ROOT) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  stderr.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const code = await run(argv, {
    stdout,
    stderr,
    stdin: Readable.from([]),
    env: { HOME: home, XDG_CACHE_HOME: join(home, "cache"), XDG_CONFIG_HOME: join(home, "config"), ...env },
    cwd,
  });
  return { code, stdout: out, stderr: err };
}

function allCommands(
  specs: readonly CommandSpec[] = COMMANDS,
  prefix: string[] = [],
): { path: string[]; spec: CommandSpec }[] {
  return specs.flatMap((spec) => [
    { path: [...prefix, spec.name], spec },
    ...allCommands(spec.subcommands ?? [], [...prefix, spec.name]),
  ]);
}

describe("exit codes: one mapping from BlobError codes", () => {
  const cases: [BlobErrorCode, number][] = [
    ["ERR_NOT_FOUND", 3],
    ["ERR_INTEGRITY", 4],
    ["ERR_DECOMPRESSION", 4],
    ["ERR_INVALID_INDEX", 4],
    ["ERR_INVALID_MANIFEST", 4],
    ["ERR_PATH_ESCAPE", 4],
    ["ERR_POLICY", 5],
    ["ERR_UNAUTHORIZED", 6],
    ["ERR_DENIED", 6],
    ["ERR_INVALID_ARGUMENT", 2],
    ["ERR_INVALID_PATH", 2],
    ["ERR_NETWORK", 1],
    ["ERR_IO", 1],
    ["ERR_EXISTS", 1],
  ];
  it.each(cases)("%s → %i", (code, exit) => {
    expect(exitCodeFor(new BlobError(code, "x"))).toBe(exit);
  });

  it("aborts → 130, CLI errors keep theirs, anything else → 1", () => {
    const controller = new AbortController();
    controller.abort(new InterruptError());
    expect(exitCodeFor(controller.signal.reason, controller.signal)).toBe(130);
    expect(exitCodeFor(new DOMException("x", "AbortError"))).toBe(130);
    expect(exitCodeFor(new CliError("u", EXIT.USAGE))).toBe(2);
    expect(exitCodeFor(new TypeError("boom"))).toBe(1);
    expect(EXIT_CODE_TABLE.map((r) => r.code)).toEqual([0, 1, 2, 3, 4, 5, 6, 130]);
  });

  it("a policy denial from the registry Client maps to exit 5 (e2e pending the policy packages)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "blobkit-cli-policy-"));
    try {
      await writeFile(join(dir, "f.txt"), "x");
      const client = new Client();
      await client.push(`oci:${join(dir, "layout")}:v1`, dir);
      await client.close();
      const deny: Policy = {
        name: "deny-all",
        evaluate: async () => ({ allow: false, reasons: ["unsigned"] }),
      };
      const guarded = new Client({ policies: [deny] });
      const error = await guarded.pull(`oci:${join(dir, "layout")}:v1`).then(
        () => undefined,
        (e: unknown) => e,
      );
      await guarded.close();
      expect((error as BlobError).code).toBe("ERR_POLICY");
      expect(exitCodeFor(error)).toBe(5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("cp sources: <ref>:/<path>, the reference ends at the first `:/` after an optional oci: prefix", () => {
  it.each([
    ["127.0.0.1:5000/repo:v1:/a/b.txt", "127.0.0.1:5000/repo:v1", "a/b.txt", false],
    ["localhost:5000/repo:/etc/", "localhost:5000/repo", "etc", true],
    [`ghcr.io/acme/app@sha256:${"a".repeat(64)}:/x`, `ghcr.io/acme/app@sha256:${"a".repeat(64)}`, "x", false],
    ["ghcr.io/acme/app:v1:/", "ghcr.io/acme/app:v1", "", true],
    ["ghcr.io/acme/app:v1:/dir/a:/b", "ghcr.io/acme/app:v1", "dir/a:/b", false],
    ["oci:./store:v1:/config/app.json", "oci:./store:v1", "config/app.json", false],
    ["oci:/abs/store:/a:b.txt", "oci:/abs/store", "a:b.txt", false],
  ])("%s", (spec, reference, path, directory) => {
    expect(parseCopySource(spec)).toEqual({ reference, path, directory });
  });

  it("rejects sources without :/ (exit 2)", () => {
    for (const bad of ["ghcr.io/acme/app:v1", "ghcr.io/acme/app:v1/x", "oci:/store", ":/x"]) {
      expect(() => parseCopySource(bad)).toThrow(expect.objectContaining({ exitCode: 2 }));
    }
  });
});

describe("references: aliases and oci: directories", () => {
  const aliases = { site: "ghcr.io/acme/site", pinned: "ghcr.io/acme/site:v3", local: "oci:./store" };
  it("resolves aliases with tag / digest overrides, for every command", () => {
    expect(resolveReference("site", aliases, "/w")).toBe("ghcr.io/acme/site:latest");
    expect(resolveReference("site:v1", aliases, "/w")).toBe("ghcr.io/acme/site:v1");
    expect(resolveReference("pinned", aliases, "/w")).toBe("ghcr.io/acme/site:v3");
    const digest = `sha256:${"b".repeat(64)}`;
    expect(resolveReference(`pinned@${digest}`, aliases, "/w")).toBe(`ghcr.io/acme/site@${digest}`);
    expect(resolveReference("local:v2", aliases, "/w")).toBe("oci:/w/store:v2");
  });
  it("makes oci: directories absolute and leaves registry references alone", () => {
    expect(resolveReference("oci:./a/b:t", {}, "/w")).toBe("oci:/w/a/b:t");
    expect(resolveReference("ghcr.io/x/y:1", {}, "/w")).toBe("ghcr.io/x/y:1");
    expect(() => resolveReference("Bad Ref", {}, "/w")).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
    );
  });
});

describe("config", () => {
  it("defaults < file < env < flags; Go-style keys accepted; the documented example is valid", async () => {
    const dir = await mkdtemp(join(tmpdir(), "blobkit-cli-config-"));
    try {
      const path = join(dir, "config.yaml");
      await writeFile(path, CONFIG_EXAMPLE);
      const example = await loadConfig({ config: path }, {}, dir);
      expect(example.warnings).toEqual([]);
      expect(example.config.aliases.site).toBe("ghcr.io/acme/site");
      expect(example.config.catBufferLimit).toBe(64 * 1024 * 1024);
      expect(example.config.policies).toHaveLength(1);

      await writeFile(
        path,
        "output: json\nplain-http: true\nno-color: true\ncache:\n  dir: ./c\n  ref_ttl: 5m\nbogus: 1\n",
      );
      const file = await loadConfig({ config: path }, {}, dir);
      expect(file.config).toMatchObject({ output: "json", plainHttp: true, color: false });
      expect(file.config.cache).toMatchObject({ location: join(dir, "c"), refTtlMs: 300_000 });
      expect(file.warnings).toEqual([`${path}: unknown key bogus (ignored)`]);
      const env = await loadConfig(
        { config: path },
        { BLOB_OUTPUT: "text", BLOB_CACHE: "redis://h:6379" },
        dir,
      );
      expect(env.config.output).toBe("text");
      expect(env.config.cache.location).toBe("redis://h:6379");
      const flags = await loadConfig(
        { config: path, json: true, cache: false },
        { BLOB_OUTPUT: "text" },
        dir,
      );
      expect(flags.config.output).toBe("json");
      expect(flags.config.cache.enabled).toBe(false);
      const viaEnv = await loadConfig({}, { BLOB_CONFIG: path, NO_COLOR: "1" }, dir);
      expect(viaEnv.path).toBe(path);

      await writeFile(path, "output: yaml\n");
      await expect(loadConfig({ config: path }, {}, dir)).rejects.toMatchObject({ exitCode: 2 });
      await expect(loadConfig({ config: join(dir, "missing.yaml") }, {}, dir)).rejects.toMatchObject({
        exitCode: 3,
      });
      const defaults = await loadConfig({}, { HOME: dir }, dir);
      expect(defaults.path).toBe(join(dir, ".config/blob/config.yaml"));
      expect(defaults.config.cache.location).toBe(join(dir, ".cache/blob"));
      expect(defaults.exists).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("parses sizes and durations", () => {
    expect(parseSize("64MiB")).toBe(64 * 1024 * 1024);
    expect(parseSize("5GB")).toBe(5_000_000_000);
    expect(parseSize("512K")).toBe(512 * 1024);
    expect(parseSize("0")).toBe(0);
    expect(parseSize("lots")).toBeUndefined();
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(humanSize(1536)).toBe("1.5K");
  });
});

describe("policies (plumbing; evaluation pending @blobkit/policy-sigstore / policy-opa)", () => {
  it("validates the Go policy YAML shape", () => {
    expect(parsePolicySpec({ signature: { keyless: { issuer: "https://i", identity: "me" } } }, "p")).toEqual(
      {
        signature: { keyless: { issuer: "https://i", identity: "me" } },
      },
    );
    expect(() =>
      parsePolicySpec({ signature: { keyless: { issuer: "i", identity: "x" }, key: { path: "k" } } }, "p"),
    ).toThrow(/exclusive/);
    expect(() => parsePolicySpec({ nonsense: 1 }, "p")).toThrow(/unknown key/);
  });
  it("matches config rules by anchored regex; none configured → no policies; a match → its policy", async () => {
    const rules = [
      {
        match: "ghcr\\.io/acme/.*",
        policy: { signature: { keyless: { issuer: "https://i", identity: "me" } } },
      },
    ];
    expect(matchingRules(rules, "ghcr.io/acme/site:v1")).toHaveLength(1);
    expect(matchingRules(rules, "ghcr.io/other/site:v1")).toHaveLength(0);
    // Anchored: a reference that merely contains the pattern does not match.
    expect(matchingRules(rules, "evil.example/ghcr.io/acme/site:v1")).toHaveLength(0);
    expect(
      await buildPolicies("ghcr.io/other/x:1", rules, { files: [], rego: [], noDefault: false }, "/"),
    ).toEqual([]);
    const policies = await buildPolicies(
      "ghcr.io/acme/x:1",
      rules,
      { files: [], rego: [], noDefault: false },
      "/",
    );
    expect(policies.map((p) => p.name)).toEqual(["signature (ghcr\\.io/acme/.*)"]);
    expect(
      await buildPolicies("ghcr.io/acme/x:1", rules, { files: [], rego: [], noDefault: true }, "/"),
    ).toEqual([]);
    // Every spelling of the same repository gets the rule: host case, :443, Docker Hub short names.
    for (const spelling of [
      "GHCR.io/acme/x:1",
      "ghcr.io:443/acme/x:1",
      `ghcr.io/acme/x@sha256:${"a".repeat(64)}`,
    ]) {
      const applied = await buildPolicies(spelling, rules, { files: [], rego: [], noDefault: false }, "/");
      expect(applied, spelling).toHaveLength(1);
    }
    const hub = [{ match: "docker\\.io/library/alpine:.*", policy: rules[0]!.policy }];
    for (const spelling of [
      "alpine:3",
      "docker.io/alpine:3",
      "index.docker.io/library/alpine:3",
      "Docker.IO/alpine:3",
    ]) {
      const applied = await buildPolicies(spelling, hub, { files: [], rego: [], noDefault: false }, "/");
      expect(applied, spelling).toHaveLength(1);
    }
    // provenance without a signer to trust is refused; Rego source must be compiled first.
    await expect(
      buildPolicies(
        "ghcr.io/acme/x:1",
        [{ match: ".*", policy: { provenance: { slsa: { repository: "https://github.com/acme/x" } } } }],
        { files: [], rego: [], noDefault: false },
        "/",
      ),
    ).rejects.toMatchObject({ exitCode: 2 });
    await expect(
      buildPolicies("ghcr.io/acme/x:1", [], { files: [], rego: ["policy.rego"], noDefault: false }, "/"),
    ).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/opa build -t wasm/) });
  });
});

describe("command table, help and reference", () => {
  it("every command has examples, a summary and (for leaf commands) a JSON schema", () => {
    for (const { path, spec } of allCommands()) {
      expect(spec.examples.length, path.join(" ")).toBeGreaterThan(0);
      expect(spec.summary, path.join(" ")).not.toBe("");
      if (spec.subcommands === undefined) expect(spec.json, path.join(" ")).toBeDefined();
    }
  });

  it("blob --help and every blob <cmd> --help print examples on stdout and exit 0", async () => {
    const root = await runCaptured(["--help"]);
    expect(root.code).toBe(0);
    expect(root.stdout).toMatch(/Examples:\n {2}\$ blob push/);
    expect(root.stdout).toMatch(/Exit codes: 0 success/);
    for (const { path } of allCommands()) {
      const help = await runCaptured([...path, "--help"]);
      expect(help.code, path.join(" ")).toBe(0);
      expect(help.stdout, path.join(" ")).toMatch(/\nExamples:\n {2}\$ /);
    }
  });

  it("ls -h means --human; only --help shows its help", async () => {
    const help = await runCaptured(["ls", "--help"]);
    expect(help.stdout).toMatch(/-h, --human/);
    expect(help.stdout).toMatch(/--help +display help/);
  });

  it("docs/cli.md is generated from the command table (run `pnpm --filter @blobkit/cli gen-reference`)", async () => {
    const committed = await readFile(REFERENCE_PATH, "utf8");
    expect(generateReference()).toMatch(/^# `blob` CLI reference/);
    expect(
      committed === renderReference(),
      "docs/cli.md is stale: run pnpm --filter @blobkit/cli gen-reference",
    ).toBe(true);
  });
});

describe("errors and usage", () => {
  it("text mode: `blob: <message>` on stderr, nothing on stdout, exit 2", async () => {
    const result = await runCaptured(["inspect"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^blob: missing required argument 'ref'/);
  });
  it("JSON mode: one error document on stderr, stdout empty", async () => {
    const result = await runCaptured(["--json", "frob"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(JSON.parse(result.stderr)).toEqual({
      error: { code: "ERR_USAGE", message: "unknown command 'frob'", exitCode: 2 },
    });
    const env = await runCaptured(["cat", "oci:/nonexistent-blobkit", "x"], { BLOB_OUTPUT: "json" });
    expect(env.code).toBe(3);
    expect(JSON.parse(env.stderr).error.code).toBe("ERR_NOT_FOUND");
  });
  it("sign with a missing key file exits 3; verify of a missing layout exits 3", async () => {
    const sign = await runCaptured(["sign", "oci:./x:v1", "--key", "no-such-key.pem"]);
    expect(sign.code).toBe(3);
    expect(sign.stderr).toMatch(/cannot read key/);
    expect((await runCaptured(["verify", "oci:./no-such-layout:v1"])).code).toBe(3);
  });
  it("unknown config keys warn on stderr; -q silences warnings", async () => {
    const dir = await mkdtemp(join(tmpdir(), "blobkit-cli-warn-"));
    try {
      await writeFile(join(dir, "c.yaml"), "bogus: 1\n");
      const result = await runCaptured(["--config", join(dir, "c.yaml"), "config", "path"]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${join(dir, "c.yaml")}\n`);
      expect(result.stderr).toMatch(/warning: .*unknown key bogus/);
      expect((await runCaptured(["-q", "--config", join(dir, "c.yaml"), "config", "path"])).stderr).toBe("");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("validateJson", () => {
  it("reports missing, extra and mistyped properties", () => {
    const schema = {
      type: "object",
      properties: { a: { type: "integer" }, b: { type: "string" } },
      required: ["a"],
    } as const;
    expect(validateJson({ a: 1 }, schema)).toEqual([]);
    expect(validateJson({ b: "x" }, schema)).toEqual(["$: missing required property a"]);
    expect(validateJson({ a: 1, c: 2 }, schema)).toEqual(["$: unexpected property c"]);
    expect(validateJson({ a: "1" }, schema)).toEqual(["$.a: expected integer, got string"]);
  });
});
