import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, blob, isolatedEnv, pseudoRandomBytes, ROOT, writeTree } from "./support.ts";

// Progress bars in a real pseudo-terminal (util-linux `script`): drawn on a TTY, absent when piped, with -q,
// with --json and under CI.

const SCRIPT = "/usr/bin/script";
let work: string;
let env: Record<string, string>;
let src: string;

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI inside a pseudo-terminal; resolves to everything the terminal showed (stdout and stderr). */
function inPty(
  args: readonly string[],
  extraEnv: Record<string, string> = {},
): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, "--conditions=source", BIN, ...args].map(quote).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, ["-qefc", command, "/dev/null"], {
      cwd: ROOT,
      env: { ...env, TERM: "xterm", ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let screen = "";
    child.stdout.on("data", (chunk: Buffer) => {
      screen += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      screen += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, screen }));
  });
}

const BAR = /\[#*-*\] \d+% \| .*B\/.*B.* \| .*\/s \| ETA/;

beforeAll(async () => {
  if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: apt-get install -y util-linux`);
  work = await mkdtemp(join(tmpdir(), "blobkit-cli-progress-"));
  env = await isolatedEnv(work);
  src = join(work, "src");
  await writeTree(src, [
    { path: "a.bin", content: pseudoRandomBytes(3 * 1024 * 1024, 5) },
    { path: "b/c.txt", content: "c\n".repeat(5000) },
  ]);
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("progress bars", () => {
  it("are drawn on a terminal for push and pull (bytes, files, rate, ETA)", async () => {
    const layout = `oci:${join(work, "store")}:v1`;
    const push = await inPty(["push", layout, src]);
    expect(push.code, push.screen).toBe(0);
    expect(push.screen).toMatch(BAR);
    expect(push.screen).toMatch(/packing .* \| \d+\/\d+ files \|/);
    expect(push.screen).toMatch(/uploading/);
    const pull = await inPty(["pull", layout, join(work, "out")]);
    expect(pull.code, pull.screen).toBe(0);
    expect(pull.screen).toMatch(/pulling .*\| \d+\/\d+ files \|/);
    expect(pull.screen).toMatch(BAR);
  });

  it("are absent when piped, with -q, with --json and under CI", async () => {
    const layout = `oci:${join(work, "store2")}:v1`;
    const piped = await blob(["push", layout, src], { env });
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe("");
    const quiet = await inPty(["pull", "-q", layout, join(work, "out-q")]);
    expect(quiet.code).toBe(0);
    expect(quiet.screen).not.toMatch(/ETA/);
    expect(quiet.screen.trim()).toBe("");
    const json = await inPty(["pull", "--json", layout, join(work, "out-json")]);
    expect(json.code).toBe(0);
    expect(json.screen).not.toMatch(/ETA/);
    expect(JSON.parse(json.screen)).toMatchObject({ fileCount: 2 });
    const ci = await inPty(["copy", layout, `oci:${join(work, "store3")}:v1`], { CI: "true" });
    expect(ci.code).toBe(0);
    expect(ci.screen).not.toMatch(/ETA/);
  });
});
