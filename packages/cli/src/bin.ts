#!/usr/bin/env node
import { InterruptError } from "./exit-codes.ts";
import { run } from "./run.ts";

// The `blob` executable: process streams, SIGINT → abort every in-flight operation (temp files are removed
// by the operations themselves), exit 130; a second Ctrl-C exits at once.
const controller = new AbortController();
const onSignal = (): void => {
  if (controller.signal.aborted) process.exit(130);
  controller.abort(new InterruptError());
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
// A closed pipe (`blob cat … | head`) ends the command quietly.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
  signal: controller.signal,
});
process.exitCode = code;
// Sockets and timers are closed by then; this only guards against a stray handle keeping the process alive.
setTimeout(() => process.exit(code), 2000).unref();
