import { COMMANDS } from "./commands/index.ts";
import { EXIT_CODE_TABLE } from "./exit-codes.ts";
import { errorSchema } from "./json-schema.ts";
import { GLOBAL_OPTIONS, ROOT_EXAMPLES } from "./program.ts";
import type { CommandSpec, OptionSpec } from "./spec.ts";

/** Environment variables the CLI reads. @public */
export const ENV_VARS: readonly { name: string; meaning: string }[] = [
  { name: "BLOB_CONFIG", meaning: "config file (like --config)" },
  { name: "BLOB_OUTPUT", meaning: "`text` or `json`" },
  { name: "BLOB_QUIET", meaning: "`1`/`true`: like -q" },
  { name: "BLOB_VERBOSE", meaning: "verbosity level (like -v, -vv)" },
  { name: "BLOB_NO_COLOR, NO_COLOR", meaning: "no ANSI colours" },
  { name: "BLOB_PLAIN_HTTP", meaning: "`1`/`true`: like --plain-http" },
  { name: "BLOB_COMPRESSION", meaning: "default of push -c (`zstd`/`none`)" },
  { name: "BLOB_CACHE (BLOB_CACHE_DIR)", meaning: "cache directory or redis:// URL (like --cache)" },
  { name: "BLOB_NO_CACHE", meaning: "`1`/`true`: like --no-cache" },
  { name: "BLOB_CACHE_MAX_SIZE", meaning: "disk cache bound, e.g. `2GiB`" },
  { name: "BLOB_CAT_BUFFER_LIMIT", meaning: "cat's verify-before-print limit, e.g. `64MiB`" },
  { name: "XDG_CONFIG_HOME, XDG_CACHE_HOME, HOME", meaning: "default config and cache locations" },
  { name: "DOCKER_CONFIG", meaning: "Docker config directory (credentials; default ~/.docker)" },
  { name: "CI", meaning: "set (not `false`): no progress bars" },
  { name: "SOURCE_DATE_EPOCH", meaning: "push --deterministic: mtime and created time" },
];

/** A documented config file (parsed by a test, so it stays valid). @public */
export const CONFIG_EXAMPLE = `# $XDG_CONFIG_HOME/blob/config.yaml (keys also accepted in kebab-case / snake_case, as the Go CLI writes them)
output: text            # text | json
quiet: false
verbose: 0
color: true             # or no-color: true
plainHttp: false        # HTTP for every registry (loopback registries always use HTTP)
compression: zstd       # default of push -c: zstd | none
catBufferLimit: 64MiB   # cat verifies files up to this size before printing them
cache:
  enabled: true
  dir: ~/.cache/blob    # or url: redis://cache.internal:6379/0 (relative dirs are relative to this file)
  maxSize: 1GiB         # disk cache bound (LRU) and cache prune's default target
  refTtl: 60s           # how long tag → digest resolutions are cached (0 = never)
aliases:                # name[:tag|@digest] → reference, for every command (push included)
  site: ghcr.io/acme/site
policies:               # every rule whose regex matches the whole reference applies (AND)
  - match: ghcr\\.io/acme/.*
    policy:
      signature:
        keyless:
          issuer: https://token.actions.githubusercontent.com
          identity: https://github.com/acme/site/.github/workflows/release.yml@refs/heads/main
`;

function optionRows(options: readonly OptionSpec[]): string {
  const rows = options
    .filter((o) => o.hidden !== true)
    .map((o) => {
      const extra: string[] = [];
      if (o.choices !== undefined) extra.push(`one of ${o.choices.map((c) => `\`${c}\``).join(", ")}`);
      if (o.parser === "repeatable") extra.push("repeatable");
      if (o.defaultValue !== undefined) extra.push(`default \`${String(o.defaultValue)}\``);
      const description = `${o.description}${extra.length > 0 ? ` (${extra.join("; ")})` : ""}`;
      return `| \`${o.flags}\` | ${description.replace(/\|/g, "\\|")} |`;
    });
  return ["| option | description |", "| --- | --- |", ...rows].join("\n");
}

function usage(spec: CommandSpec, path: string): string {
  const args = (spec.args ?? []).map((a) => {
    const name = `${a.name}${a.variadic === true ? "…" : ""}`;
    return a.required === true ? `<${name}>` : `[${name}]`;
  });
  return [`blob ${path}`, (spec.options ?? []).length > 0 ? "[options]" : "", ...args]
    .filter((s) => s !== "")
    .join(" ");
}

function section(spec: CommandSpec, path: string, out: string[]): void {
  if (spec.subcommands !== undefined) {
    out.push(`### blob ${path}`, "", `${spec.summary}.`, "");
    if (spec.description !== undefined) out.push(spec.description, "");
    for (const sub of spec.subcommands) section(sub, `${path} ${sub.name}`, out);
    return;
  }
  out.push(`### \`${usage(spec, path)}\``, "", `${spec.summary}.`, "");
  if (spec.description !== undefined) out.push(spec.description, "");
  if ((spec.args ?? []).length > 0) {
    out.push("| argument | description |", "| --- | --- |");
    for (const a of spec.args ?? [])
      out.push(`| \`${a.name}\`${a.required === true ? "" : " (optional)"} | ${a.description} |`);
    out.push("");
  }
  if ((spec.options ?? []).length > 0) out.push(optionRows(spec.options ?? []), "");
  out.push("Examples:", "", "```sh");
  for (const e of spec.examples) out.push(`# ${e.description}`, e.command);
  out.push("```", "");
  if (spec.json !== undefined) {
    out.push(
      "JSON output (`--json`), JSON Schema:",
      "",
      "```json",
      JSON.stringify(spec.json, null, 2),
      "```",
      "",
    );
  }
}

/**
 * docs/cli.md, generated from the command table (`pnpm --filter @blobkit/cli gen-reference`); a unit test
 * fails when the file differs, so the reference cannot drift from the parser.
 *
 * @public
 */
export function generateReference(): string {
  const out: string[] = [
    "# `blob` CLI reference",
    "",
    "<!-- Generated from packages/cli/src/commands by packages/cli/scripts/gen-reference.ts. Do not edit: run `pnpm --filter @blobkit/cli gen-reference`. -->",
    "",
    "`blob` pushes directories as archives to OCI registries or `oci:<dir>` image layouts and reads them lazily: one verified range request per file. Its command surface mirrors the Go `blob` CLI (meigma/blob-cli v1.1.0), with the fixes listed in packages/cli/README.md.",
    "",
    "References are `host[:port]/repository[:tag][@digest]` (Docker's rules; `localhost`, `127.0.0.0/8` and `::1` registries use plain HTTP automatically) or `oci:<dir>[:tag|@digest]` (an OCI image layout directory, created by push/copy when missing). Aliases from the config file apply to every command.",
    "",
    "```sh",
    ...ROOT_EXAMPLES.flatMap((e) => [`# ${e.description}`, e.command]),
    "```",
    "",
    "## Global options",
    "",
    "Accepted before or after the command name. Precedence: flags > `BLOB_*` environment > config file > defaults.",
    "",
    optionRows(GLOBAL_OPTIONS),
    "",
    "## Output",
    "",
    "- stdout carries data only: listings, file contents, result summaries, or — with `--output json` / `--json` — exactly one JSON document (2-space indented, camelCase keys) per command, described by the schema under each command.",
    "- Logs (`-v`), warnings and progress bars go to stderr. Progress bars (bytes, files, rate, ETA) are drawn by push, pull, cp and copy only when stderr is a terminal and neither `-q`, JSON output nor `CI` is set.",
    "- `-q` drops confirmations (push, pull, cp, copy, tag, login, logout, cache prune/clear), warnings and progress; commands whose output is the requested data (cat, ls, tree, inspect, cache status/path, config, version) still print it.",
    "- Errors: `blob: <message>` on stderr; in JSON mode one error document on **stderr** (stdout stays empty), never containing credentials:",
    "",
    "```json",
    JSON.stringify(errorSchema, null, 2),
    "```",
    "",
    "## Exit codes",
    "",
    "| code | meaning | from |",
    "| --- | --- | --- |",
    ...EXIT_CODE_TABLE.map((r) => `| ${r.code} | ${r.meaning} | ${r.errorCodes} |`),
    "",
    "## Environment",
    "",
    "| variable | meaning |",
    "| --- | --- |",
    ...ENV_VARS.map((e) => `| \`${e.name}\` | ${e.meaning} |`),
    "",
    "## Config file",
    "",
    "YAML at `--config`, else `$BLOB_CONFIG`, else `$XDG_CONFIG_HOME/blob/config.yaml` (`~/.config/blob/config.yaml`). Unknown keys are warned about; invalid values are usage errors (exit 2).",
    "",
    "```yaml",
    CONFIG_EXAMPLE.trimEnd(),
    "```",
    "",
    "## Commands",
    "",
  ];
  for (const spec of COMMANDS) section(spec, spec.name, out);
  return `${out.join("\n").trimEnd()}\n`;
}
