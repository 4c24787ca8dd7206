import { spawn } from "node:child_process";
import { BlobError } from "@blobkit/core";
import type { Credential } from "./credentials.ts";

/** Default time a credential helper may take before it is killed, in milliseconds. @public */
export const DEFAULT_HELPER_TIMEOUT_MS = 10_000;

/** Output a helper may print; a credential is a few KiB at most. */
const MAX_OUTPUT_BYTES = 64 * 1024;

/** The message docker-credential-helpers print (exit 1) when they hold nothing for the server. */
const NOT_FOUND_MESSAGE = "credentials not found";

/** Options of {@link runCredentialHelper}. @public */
export interface CredentialHelperOptions {
  /** Environment of the helper (its `PATH` also locates `docker-credential-<name>`). Default `process.env`. */
  env?: NodeJS.ProcessEnv | undefined;
  /** The helper is killed and the lookup fails (`ERR_IO`, reason `"timeout"`) after this many ms. Default 10 s. */
  timeoutMs?: number | undefined;
  /** Kills the helper; the lookup rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
}

/**
 * Runs `docker-credential-<name> get` (the docker-credential-helpers protocol): writes `serverUrl` to its
 * stdin and reads `{"ServerURL","Username","Secret"}` from its stdout. A `Username` of `<token>` means
 * `Secret` is an identity token (an OAuth2 refresh token). Resolves `undefined` when the helper reports
 * "credentials not found". Every other failure is `ERR_IO` (reasons `credential-helper-missing`,
 * `credential-helper-failed`, `invalid-output`, `timeout`); messages name the helper and never include its
 * output, which may hold the secret.
 *
 * @public
 */
export async function runCredentialHelper(
  name: string,
  serverUrl: string,
  options: CredentialHelperOptions = {},
): Promise<Credential | undefined> {
  // The name comes from a config file: it must not be able to name a path (`../../bin/sh`).
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new BlobError("ERR_INVALID_ARGUMENT", "Invalid credential helper name in the Docker config", {
      reason: "invalid-helper-name",
    });
  }
  const signal = options.signal;
  signal?.throwIfAborted();
  const program = `docker-credential-${name}`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS;
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(program, ["get"], {
        env: options.env ?? process.env,
        stdio: ["pipe", "pipe", "pipe"],
        windowsHide: true,
      });
      let stdout = "";
      let stderr = "";
      let bytes = 0;
      let settled = false;
      const finish = (
        error: unknown,
        value?: { code: number | null; stdout: string; stderr: string },
      ): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        if (error !== undefined) reject(error);
        else resolve(value!);
      };
      const onAbort = (): void => finish(signal!.reason);
      const timer = setTimeout(
        () =>
          finish(
            new BlobError("ERR_IO", `Credential helper ${program} did not answer within ${timeoutMs} ms`, {
              reason: "timeout",
            }),
          ),
        timeoutMs,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      const collect = (target: "stdout" | "stderr") => (chunk: Buffer) => {
        bytes += chunk.byteLength;
        if (bytes > MAX_OUTPUT_BYTES) {
          finish(
            new BlobError("ERR_IO", `Credential helper ${program} printed too much output`, {
              reason: "invalid-output",
            }),
          );
          return;
        }
        if (target === "stdout") stdout += chunk.toString("utf8");
        else stderr += chunk.toString("utf8");
      };
      child.stdout.on("data", collect("stdout"));
      child.stderr.on("data", collect("stderr"));
      child.once("error", (error: NodeJS.ErrnoException) => {
        const missing = error.code === "ENOENT";
        finish(
          new BlobError(
            "ERR_IO",
            missing
              ? `Credential helper ${program} is configured in the Docker config but not installed (not on PATH)`
              : `Credential helper ${program} could not be started (${error.code ?? "error"})`,
            { reason: missing ? "credential-helper-missing" : "credential-helper-failed", cause: error },
          ),
        );
      });
      child.once("close", (code) => finish(undefined, { code, stdout, stderr }));
      // A helper that exits without reading stdin makes the write fail with EPIPE: that is its exit status's
      // business, not an error of ours.
      child.stdin.on("error", () => {});
      child.stdin.end(serverUrl);
    },
  );
  if (result.code !== 0) {
    const text = `${result.stdout}\n${result.stderr}`.toLowerCase();
    if (text.includes(NOT_FOUND_MESSAGE)) return undefined;
    throw new BlobError(
      "ERR_IO",
      `Credential helper ${program} failed (exit code ${result.code ?? "none"})`,
      {
        reason: "credential-helper-failed",
      },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    // Never the parse error's message: V8 quotes the input, which may contain the secret.
    throw new BlobError("ERR_IO", `Credential helper ${program} printed something that is not JSON`, {
      reason: "invalid-output",
    });
  }
  if (typeof parsed !== "object" || parsed === null) {
    throw new BlobError("ERR_IO", `Credential helper ${program} printed an unexpected answer`, {
      reason: "invalid-output",
    });
  }
  const { Username: username, Secret: secret } = parsed as { Username?: unknown; Secret?: unknown };
  if (
    (username !== undefined && typeof username !== "string") ||
    (secret !== undefined && typeof secret !== "string")
  ) {
    throw new BlobError("ERR_IO", `Credential helper ${program} printed an unexpected answer`, {
      reason: "invalid-output",
    });
  }
  if (secret === undefined || secret === "") return undefined;
  if (username === "<token>") return { identityToken: secret };
  return { username: username ?? "", password: secret };
}
