import { stringify } from "yaml";
import { displayConfig } from "../config.ts";
import { array, boolean, integer, object, oneOf, string, stringMap } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";

const show: CommandSpec = {
  name: "show",
  summary: "Print the effective configuration (defaults < file < BLOB_* env < flags), secrets redacted",
  examples: [
    { command: "blob config show", description: "as YAML" },
    { command: "blob --json config show | jq .config.cache", description: "as JSON" },
  ],
  json: object({
    path: string("config file looked at"),
    exists: boolean(),
    config: object({
      output: oneOf(["text", "json"]),
      quiet: boolean(),
      verbose: integer(),
      color: boolean(),
      plainHttp: boolean(),
      compression: oneOf(["zstd", "none"]),
      cache: object({ enabled: boolean(), location: string(), maxSize: integer(), refTtlMs: integer() }),
      catBufferLimit: integer(),
      aliases: stringMap(),
      policies: array({
        type: "object",
        properties: { match: string(), policy: {} },
        required: ["match", "policy"],
      }),
    }),
  }),
  async action(ctx) {
    const config = displayConfig(ctx.config);
    await ctx.result(
      { path: ctx.loaded.path, exists: ctx.loaded.exists, config },
      () =>
        `# ${ctx.loaded.path}${ctx.loaded.exists ? "" : " (not present; defaults)"}\n${stringify(config).trimEnd()}`,
      { quietable: false },
    );
  },
};

const path: CommandSpec = {
  name: "path",
  summary: "Print the config file path (--config, else $BLOB_CONFIG, else $XDG_CONFIG_HOME/blob/config.yaml)",
  examples: [{ command: '$EDITOR "$(blob config path)"', description: "edit the config file" }],
  json: object({ path: string(), exists: boolean() }),
  async action(ctx) {
    await ctx.result({ path: ctx.loaded.path, exists: ctx.loaded.exists }, () => ctx.loaded.path, {
      quietable: false,
    });
  },
};

export const config: CommandSpec = {
  name: "config",
  summary: "Show the effective configuration and where it comes from",
  subcommands: [show, path],
  examples: [
    { command: "blob config show", description: "the effective configuration" },
    { command: "blob config path", description: "the file it is read from" },
  ],
};
