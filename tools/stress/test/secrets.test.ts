import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { isBlobError } from "@blobkit/core";
import { Client, staticCredentials } from "@blobkit/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blob, isolatedEnv } from "../../../packages/cli/test/support.ts";
import { type RunningRegistry, startRegistry } from "../../../packages/registry/test/registry-server.ts";
import { pseudoRandomBytes, RecordingAgent, writeTree } from "../../../packages/registry/test/support.ts";
import { startWildProxy, type WildProxy } from "../../../packages/registry/test/wild-proxy.ts";
import { recordResult } from "./support/results.ts";

// Credentials, tokens and Authorization headers must never appear in error messages (message, stack, cause
// chain, reason, subject, util.inspect), CLI stdout/stderr (text and --json, with -vv), or in requests that
// reach another origin (a blob redirect target). Secrets are collected from what the client really sent:
// every Authorization header value seen by a recording dispatcher, plus the passwords and identity token.

const WRONG = `Wr0ng-${Math.random().toString(36).slice(2)}-secret`;
let basic: RunningRegistry;
let token: RunningRegistry;
let proxy: WildProxy;
let work: string;
let src: string;
const secrets = new Map<string, string>(); // value → name
const checks = {
  errorsInspected: 0,
  cliOutputsInspected: 0,
  mirrorRequestsInspected: 0,
  leaks: [] as string[],
};

function addSecret(name: string, value: string | undefined): void {
  if (value === undefined || value.length < 6) return;
  secrets.set(value, name);
  if (/^(basic|bearer) /i.test(value)) secrets.set(value.slice(value.indexOf(" ") + 1), `${name} (value)`);
}
function addBasic(name: string, user: string, password: string): void {
  addSecret(`${name} password`, password);
  addSecret(`${name} Basic value`, Buffer.from(`${user}:${password}`).toString("base64"));
}
function harvest(agent: RecordingAgent, name: string): void {
  for (const r of agent.requests) addSecret(`${name} Authorization header`, r.headers.authorization);
}
function leaksIn(text: string): string[] {
  const found: string[] = [];
  for (const [value, name] of secrets) if (text.includes(value)) found.push(name);
  return found;
}
/** Everything an error exposes: message, stack, own properties, the cause chain, util.inspect. */
function errorText(error: unknown): string {
  const parts: string[] = [inspect(error, { depth: 20, showHidden: true })];
  let e: unknown = error;
  for (let i = 0; i < 20 && e !== undefined && e !== null; i++) {
    const x = e as { message?: unknown; stack?: unknown; cause?: unknown };
    parts.push(String(x.message), String(x.stack));
    try {
      parts.push(JSON.stringify(e, Object.getOwnPropertyNames(e)));
    } catch {}
    e = x.cause;
  }
  return parts.join("\n");
}
function assertNoLeak(where: string, text: string): void {
  const found = leaksIn(text);
  if (found.length > 0) checks.leaks.push(`${where}: ${found.join(", ")}`);
  expect(found, `${where} leaks a secret`).toEqual([]);
}
async function expectFailureWithoutLeak(where: string, op: Promise<unknown>): Promise<unknown> {
  const error = await op.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `${where} should fail`).toBeDefined();
  expect(isBlobError(error), `${where}: ${String(error)}`).toBe(true);
  checks.errorsInspected++;
  assertNoLeak(where, errorText(error));
  return error;
}

beforeAll(async () => {
  [basic, token] = await Promise.all([startRegistry({ auth: "htpasswd" }), startRegistry({ auth: "token" })]);
  proxy = await startWildProxy(
    basic.origin,
    { redirectBlobs: true },
    `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString("base64")}`,
  );
  work = await mkdtemp(join(tmpdir(), "blobkit-stress-secrets-"));
  src = join(work, "src");
  await writeTree(src, [
    { path: "a.txt", content: "alpha\n".repeat(50) },
    { path: "b/c.bin", content: pseudoRandomBytes(200_000, 3) },
  ]);
  addBasic("htpasswd", basic.username, basic.password);
  addBasic("token-registry", token.username, token.password);
  addBasic("wrong", basic.username, WRONG);
  addSecret("identity token", token.tokenIssuer?.refreshToken);
}, 120_000);

afterAll(async () => {
  await Promise.all([proxy?.stop(), basic?.stop(), token?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
  recordResult("secrets", "summary", { ...checks, distinctSecretsTracked: secrets.size });
  console.log(
    `[secrets] ${secrets.size} secret values tracked; ${checks.errorsInspected} errors, ${checks.cliOutputsInspected} CLI outputs, ${checks.mirrorRequestsInspected} redirect-target requests inspected; leaks: ${checks.leaks.length}`,
  );
});

describe("secrets never leak", () => {
  it("the detector finds planted secrets (sanity check)", () => {
    expect(leaksIn(`x ${basic.password} y`)).not.toEqual([]);
    expect(
      leaksIn(
        errorText(
          new Error("outer", {
            cause: new Error(`Basic ${Buffer.from(`${basic.username}:${WRONG}`).toString("base64")}`),
          }),
        ),
      ),
    ).not.toEqual([]);
  });

  it("htpasswd registry: wrong and right credentials, errors carry no secret", async () => {
    const agent = new RecordingAgent();
    const wrong = new Client({
      credentials: staticCredentials({ [basic.host]: { username: basic.username, password: WRONG } }),
      dispatcher: agent,
    });
    const ref = `${basic.host}/secrets/app:v1`;
    await expectFailureWithoutLeak("push with a wrong password", wrong.push(ref, src));
    await expectFailureWithoutLeak("pull with a wrong password", wrong.pull(ref));
    await wrong.close();
    const right = new Client({
      credentials: staticCredentials({
        [basic.host]: { username: basic.username, password: basic.password },
      }),
      dispatcher: agent,
    });
    await right.push(ref, src);
    const archive = await right.pull(ref, { skipCache: true });
    await archive.readFile("a.txt");
    await archive.close();
    harvest(agent, "htpasswd");
    await expectFailureWithoutLeak("pull of a missing tag", right.pull(`${basic.host}/secrets/app:missing`));
    await expectFailureWithoutLeak(
      "pull of a missing repository",
      right.pull(`${basic.host}/secrets/none:v1`),
    );
    await expectFailureWithoutLeak(
      "read of a missing file",
      (async () => {
        const a = await right.pull(ref);
        try {
          await a.readFile("nope");
        } finally {
          await a.close();
        }
      })(),
    );
    await right.close();
    await agent.close();
    expect(agent.requests.some((r) => r.headers.authorization?.startsWith("Basic "))).toBe(true);
  });

  it("token registry: bearer tokens and the identity token never appear in errors", async () => {
    const agent = new RecordingAgent();
    const ref = `${token.host}/secrets/app:v1`;
    const right = new Client({
      credentials: staticCredentials({
        [token.host]: { username: token.username, password: token.password },
      }),
      dispatcher: agent,
    });
    await right.push(ref, src);
    const archive = await right.pull(ref, { skipCache: true });
    await archive.readFile("b/c.bin");
    await archive.close();
    await expectFailureWithoutLeak(
      "token: pull of a missing tag",
      right.pull(`${token.host}/secrets/app:missing`),
    );
    await right.close();
    const identity = new Client({
      credentials: staticCredentials({
        [token.host]: { identityToken: token.tokenIssuer?.refreshToken ?? "" },
      }),
      dispatcher: agent,
    });
    await identity.pull(ref).then((a) => a.close());
    await identity.close();
    harvest(agent, "token");
    expect([...secrets.values()].some((n) => n.startsWith("token Authorization"))).toBe(true);
    const wrong = new Client({
      credentials: staticCredentials({ [token.host]: { username: token.username, password: WRONG } }),
      dispatcher: agent,
    });
    await expectFailureWithoutLeak("token: push with a wrong password", wrong.push(ref, src));
    await expectFailureWithoutLeak("token: pull with a wrong password", wrong.pull(ref));
    await wrong.close();
    const badIdentity = new Client({
      credentials: staticCredentials({ [token.host]: { identityToken: `bad-${WRONG}` } }),
      dispatcher: agent,
    });
    addSecret("bad identity token", `bad-${WRONG}`);
    await expectFailureWithoutLeak("token: pull with a bad identity token", badIdentity.pull(ref));
    await badIdentity.close();
    await agent.close();
  });

  it("a blob redirect to another origin gets no Authorization", async () => {
    const client = new Client({
      credentials: staticCredentials({
        [proxy.host]: { username: basic.username, password: basic.password },
      }),
    });
    const ref = `${proxy.host}/secrets/redirect:v1`;
    await client.push(ref, src);
    const archive = await client.pull(ref, { skipCache: true });
    expect((await archive.readFile("b/c.bin")).length).toBe(200_000);
    await archive.extract(join(work, "redirect-out"));
    await archive.close();
    await client.close();
    expect(proxy.seenByMirror.length).toBeGreaterThan(0);
    for (const r of proxy.seenByMirror) {
      checks.mirrorRequestsInspected++;
      expect(r.authorization, `${r.method} ${r.url} on the redirect target`).toBeUndefined();
      assertNoLeak(`redirect target URL ${r.url}`, r.url);
    }
  });

  it("CLI: text and --json, -vv, wrong and right credentials: no secret on stdout or stderr", async () => {
    const root = await mkdtemp(join(work, "cli-"));
    const env = await isolatedEnv(root);
    const ref = `${basic.host}/secrets/app:v1`;
    const config = (password: string) =>
      JSON.stringify({
        auths: { [basic.host]: { auth: Buffer.from(`${basic.username}:${password}`).toString("base64") } },
      });
    await mkdir(env.DOCKER_CONFIG as string, { recursive: true });
    const runs: [string, string[], string | undefined][] = [];
    for (const password of [WRONG, basic.password]) {
      await writeFile(join(env.DOCKER_CONFIG as string, "config.json"), config(password));
      for (const mode of [[], ["--json"]]) {
        runs.push([
          `ls (${password === WRONG ? "wrong" : "right"})`,
          ["ls", "--no-cache", ref, "-vv", ...mode],
          undefined,
        ]);
        runs.push([
          `cat (${password === WRONG ? "wrong" : "right"})`,
          ["cat", ref, "a.txt", "-vv", ...mode],
          undefined,
        ]);
        runs.push([
          `push (${password === WRONG ? "wrong" : "right"})`,
          ["push", `${basic.host}/secrets/cli:v1`, src, "-vv", ...mode],
          undefined,
        ]);
        runs.push([
          `cat missing (${password === WRONG ? "wrong" : "right"})`,
          ["cat", ref, "missing.txt", "-vv", ...mode],
          undefined,
        ]);
      }
    }
    for (const mode of [[], ["--json"]]) {
      runs.push([
        "login wrong (stdin)",
        ["login", basic.host, "-u", basic.username, "--password-stdin", "-vv", ...mode],
        WRONG,
      ]);
      runs.push([
        "login right (stdin)",
        ["login", basic.host, "-u", basic.username, "--password-stdin", "-vv", ...mode],
        basic.password,
      ]);
      runs.push([
        "login wrong (-p)",
        ["login", basic.host, "-u", basic.username, "-p", WRONG, "-vv", ...mode],
        undefined,
      ]);
    }
    const codes: Record<string, number | null> = {};
    for (const [name, args, input] of runs) {
      const result = await blob(args, { env, input, timeoutMs: 120_000 });
      codes[`${name} ${args.includes("--json") ? "json" : "text"}`] = result.code;
      checks.cliOutputsInspected += 2;
      assertNoLeak(`blob ${name} stdout`, result.stdout);
      assertNoLeak(`blob ${name} stderr`, result.stderr);
    }
    // The runs exercised both outcomes.
    expect(Object.values(codes)).toContain(0);
    expect(Object.values(codes).some((c) => c !== 0)).toBe(true);
  });
});
