import { normalizeHost } from "@blobkit/registry";
import { eraseCredential, readPasswordFromStdin, storeCredential, verifyCredential } from "../credentials.ts";
import { usageError } from "../exit-codes.ts";
import { boolean, object, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg } from "./common.ts";

export const login: CommandSpec = {
  name: "login",
  summary: "Log in to a registry (Docker's credential storage)",
  description:
    "Checks the credentials against the registry (GET /v2/, answering its Basic or Bearer challenge), then stores them like `docker login`: with the credential helper the Docker config names (credHelpers / credsStore), else base64 in `auths` of $DOCKER_CONFIG/config.json (default ~/.docker/config.json), written atomically with mode 0600. Docker, podman, skopeo and the Go blob CLI read the same entry.",
  args: [
    { name: "registry", required: true, description: "registry host[:port] (docker.io for Docker Hub)" },
  ],
  options: [
    { flags: "-u, --username <name>", description: "user name (required)" },
    {
      flags: "-p, --password <password>",
      description:
        "password (insecure: visible in the process list and shell history; prefer --password-stdin)",
    },
    { flags: "--password-stdin", description: "read the password (or token) from stdin" },
  ],
  examples: [
    { command: 'echo "$TOKEN" | blob login ghcr.io -u me --password-stdin', description: "token from stdin" },
    {
      command: "blob login localhost:5000 -u admin --password-stdin < pw.txt",
      description: "a local registry (plain HTTP)",
    },
  ],
  json: object({
    registry: string(),
    username: string(),
    store: string("config.json path or docker-credential-<helper>"),
    status: string(),
  }),
  async action(ctx, args, opts) {
    const host = normalizeHost(arg(args, "registry"));
    const username = typeof opts.username === "string" ? opts.username : undefined;
    if (username === undefined || username === "") throw usageError("login needs --username");
    let password: string;
    if (opts.passwordStdin === true) {
      if (typeof opts.password === "string")
        throw usageError("--password and --password-stdin are exclusive");
      password = await readPasswordFromStdin(ctx.io.stdin);
    } else if (typeof opts.password === "string") {
      ctx.warn("--password is insecure (process list, shell history); use --password-stdin");
      password = opts.password;
    } else throw usageError("login needs --password-stdin (or --password)");
    await verifyCredential(host, username, password, { plainHttp: ctx.config.plainHttp, signal: ctx.signal });
    const stored = await storeCredential(host, username, password, ctx.io.env);
    await ctx.result(
      { registry: host, username, store: stored.store, status: "logged-in" },
      () => `Login Succeeded (${host}, stored in ${stored.store})`,
    );
  },
};

export const logout: CommandSpec = {
  name: "logout",
  summary: "Remove a registry's stored credentials",
  args: [{ name: "registry", required: true, description: "registry host[:port]" }],
  examples: [{ command: "blob logout ghcr.io", description: "forget the ghcr.io credentials" }],
  json: object({ registry: string(), removed: boolean(), store: string() }),
  async action(ctx, args) {
    const host = normalizeHost(arg(args, "registry"));
    const result = await eraseCredential(host, ctx.io.env);
    if (!result.removed) ctx.warn(`not logged in to ${host}`);
    await ctx.result({ registry: host, removed: result.removed, store: result.store }, () =>
      result.removed ? `Removed login credentials for ${host}` : "",
    );
  },
};
