import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createArchive,
  createManifest,
  EMPTY_CONFIG_DIGEST,
  EMPTY_CONFIG_SIZE,
  MEDIA_TYPE_DATA,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  sha256Digest,
} from "@blobkit/core";
import { OciLayoutStore } from "@blobkit/registry";
import { expect } from "vitest";
import { readTree } from "../../registry/test/support.ts";
import { COMMANDS, type CommandSpec, errorSchema, type JsonSchema, validateJson } from "../src/index.ts";

/** The repository root (the CLI runs from there, as `pnpm blob` does). */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const BIN = join(ROOT, "packages/cli/src/bin.ts");

export interface BlobResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
}

/** An isolated HOME / XDG / DOCKER_CONFIG for child processes. */
export async function isolatedEnv(root: string): Promise<Record<string, string>> {
  const home = join(root, "home");
  await mkdir(home, { recursive: true });
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_CACHE_HOME: join(home, ".cache"),
    DOCKER_CONFIG: join(home, ".docker"),
    TMPDIR: process.env.TMPDIR ?? tmpdir(),
  };
}

export interface BlobOptions {
  env: Record<string, string>;
  cwd?: string;
  input?: string;
  /** Called with each stderr chunk (e.g. to send a signal at the right moment). */
  onStderr?: (text: string, pid: number) => void;
  timeoutMs?: number;
}

/** Runs the CLI as a child process: `node --conditions=source packages/cli/src/bin.ts …args`. */
export function blob(args: readonly string[], options: BlobOptions): Promise<BlobResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=source", BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      options.onStderr?.(chunk.toString(), child.pid as number);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** The spec of `blob <path…>` in the command table. */
export function specOf(path: string): CommandSpec {
  let specs: readonly CommandSpec[] = COMMANDS;
  let found: CommandSpec | undefined;
  for (const name of path.split(" ")) {
    found = specs.find((s) => s.name === name);
    if (found === undefined) throw new Error(`no command ${path}`);
    specs = found.subcommands ?? [];
  }
  return found as CommandSpec;
}

/** Parses stdout as the command's JSON document and checks it against the documented schema. */
export function expectJson<T = Record<string, unknown>>(result: BlobResult, command: string): T {
  expect(result.stderr, `stderr of ${command}`).toBe("");
  expect(result.code, `exit code of ${command}: ${result.stderr}`).toBe(0);
  const document = JSON.parse(result.stdout) as unknown;
  const schema = specOf(command).json as JsonSchema;
  expect(validateJson(document, schema), `${command} JSON vs schema`).toEqual([]);
  return document as T;
}

/** Checks a JSON-mode failure: nothing on stdout, one error document on stderr. */
export function expectJsonError(result: BlobResult, exitCode: number): { code: string; message: string } {
  expect(result.code, result.stderr).toBe(exitCode);
  expect(result.stdout).toBe("");
  const document = JSON.parse(result.stderr) as {
    error: { code: string; message: string; exitCode: number };
  };
  expect(validateJson(document, errorSchema)).toEqual([]);
  expect(document.error.exitCode).toBe(exitCode);
  return document.error;
}

export {
  pseudoRandomBytes,
  readTree,
  type TreeFile,
  writeTree,
} from "../../registry/test/support.ts";

export async function expectSameTree(actual: string, expected: string): Promise<void> {
  const a = await readTree(actual);
  const b = await readTree(expected);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [path, file] of b) {
    expect(a.get(path)?.bytes.equals(file.bytes), `bytes of ${path}`).toBe(true);
    expect(a.get(path)?.mode, `mode of ${path}`).toBe(file.mode);
  }
}

/**
 * Writes an archive whose index holds a traversal path (`../evil`) into an OCI layout, under `tag`: the index
 * is encoded with a harmless same-length path that is then patched in the bytes (the encoder refuses `..`).
 */
export async function writeTraversalArchive(layoutDir: string, tag: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "blobkit-cli-evil-"));
  const dataPath = join(work, "data");
  const out = createWriteStream(dataPath);
  const created = await createArchive(
    [
      { path: "zz/evil", content: "pwned\n" },
      { path: "ok.txt", content: "ok\n" },
    ],
    out,
    {
      compression: "none",
    },
  );
  await new Promise<void>((resolve, reject) => {
    if (out.closed) resolve();
    else out.once("close", resolve).once("error", reject);
  });
  const index = Buffer.from(created.index);
  const at = index.indexOf("zz/evil");
  if (at < 0) throw new Error("path not found in the encoded index");
  index.write("../evil", at);
  const indexDigest = sha256Digest(index);
  const store = await OciLayoutStore.open(layoutDir, { create: true });
  try {
    await store.pushBlob(
      { mediaType: MEDIA_TYPE_DATA, digest: created.dataDigest, size: created.dataSize },
      { path: dataPath },
    );
    await store.pushBlob({ mediaType: MEDIA_TYPE_INDEX, digest: indexDigest, size: index.length }, index);
    await store.pushBlob(
      { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_CONFIG_DIGEST, size: EMPTY_CONFIG_SIZE },
      new TextEncoder().encode("{}"),
    );
    const manifest = createManifest({
      index: { digest: indexDigest, size: index.length },
      data: { digest: created.dataDigest, size: created.dataSize },
    });
    await store.pushManifest(manifest.bytes, MEDIA_TYPE_OCI_MANIFEST, { tag });
  } finally {
    await store.close();
    await rm(work, { recursive: true, force: true });
  }
}
