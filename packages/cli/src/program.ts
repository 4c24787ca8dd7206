import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { EXIT_CODE_TABLE } from "./exit-codes.ts";
import type { Args, CommandSpec, OptionSpec, Opts } from "./spec.ts";

/** Global options (before or after the command name). @public */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--output <format>",
    choices: ["text", "json"],
    description: "output format (default text; env BLOB_OUTPUT)",
  },
  { flags: "--json", description: "same as --output json" },
  {
    flags: "-q, --quiet",
    description: "no progress, warnings or confirmations; requested data is still printed",
  },
  { flags: "-v, --verbose", parser: "count", description: "log steps on stderr (-vv: more)" },
  { flags: "--no-color", description: "no ANSI colours (also NO_COLOR or BLOB_NO_COLOR)" },
  {
    flags: "--plain-http",
    description: "HTTP instead of HTTPS for every registry (automatic for localhost, 127.0.0.0/8 and ::1)",
  },
  {
    flags: "--config <file>",
    description: "config file (default $XDG_CONFIG_HOME/blob/config.yaml; env BLOB_CONFIG)",
  },
  {
    flags: "--cache <location>",
    description: "cache directory or redis://… URL (default $XDG_CACHE_HOME/blob; env BLOB_CACHE)",
  },
  { flags: "--no-cache", description: "no cache at all" },
];

export const ROOT_EXAMPLES: readonly { command: string; description: string }[] = [
  { command: "blob push oci:./store:v1 ./site", description: "pack a directory into a local OCI layout" },
  { command: "blob ls -l oci:./store:v1", description: "list it (index only, no content fetched)" },
  { command: "blob cat oci:./store:v1 index.html", description: "print one file, verified" },
  { command: "blob copy oci:./store:v1 ghcr.io/acme/site:v1", description: "publish it to a registry" },
  { command: "blob pull ghcr.io/acme/site:v1 ./out", description: "extract it elsewhere" },
];

function exampleText(examples: readonly { command: string; description: string }[]): string {
  return `\nExamples:\n${examples.map((e) => `  $ ${e.command}\n      ${e.description}`).join("\n")}\n`;
}

function toOption(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.description);
  if (spec.choices !== undefined) option.choices(spec.choices);
  if (spec.parser === "repeatable")
    option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
  else if (spec.parser === "int")
    option.argParser((value: string) => {
      const n = Number(value);
      if (!Number.isSafeInteger(n)) throw new InvalidArgumentError("not an integer");
      return n;
    });
  else if (spec.parser === "count")
    option.argParser((_: string, previous: number) => previous + 1).default(0);
  if (spec.defaultValue !== undefined) option.default(spec.defaultValue);
  if (spec.hidden === true) option.hideHelp();
  return option;
}

/** What a parsed command line asks for. */
export type Execute = (spec: CommandSpec, args: Args, opts: Opts, globals: Opts) => Promise<void>;

/** Output hooks for commander's own messages (help, usage errors). */
export interface ProgramOutput {
  writeOut(text: string): void;
  writeErr(text: string): void;
  /** A usage error message (without commander's `error: ` prefix). */
  usageError(message: string): void;
}

function addCommand(parent: Command, spec: CommandSpec, execute: Execute, output: ProgramOutput): void {
  const cmd = parent
    .command(spec.name)
    .summary(spec.summary)
    .description(spec.description ?? spec.summary);
  if (spec.longHelpOnly === true) cmd.helpOption("--help", "display help for command");
  for (const a of spec.args ?? []) {
    const name = `${a.name}${a.variadic === true ? "..." : ""}`;
    cmd.argument(a.required === true ? `<${name}>` : `[${name}]`, a.description);
  }
  for (const o of spec.options ?? []) cmd.addOption(toOption(o));
  let after = exampleText(spec.examples);
  if (spec.json?.properties !== undefined)
    after += `\nJSON output (--json): {${Object.keys(spec.json.properties).join(", ")}} — schema in docs/cli.md\n`;
  cmd.addHelpText("after", after);
  if (spec.subcommands !== undefined) {
    for (const sub of spec.subcommands) addCommand(cmd, sub, execute, output);
    return;
  }
  cmd.action(async (...params: unknown[]) => {
    const command = params[params.length - 1] as Command;
    const args: Args = {};
    (spec.args ?? []).forEach((a, i) => {
      args[a.name] = params[i] as string | string[] | undefined;
    });
    await execute(spec, args, command.opts(), command.optsWithGlobals());
  });
}

/** The commander program for the command table (a fresh one per run: commander keeps parse state). */
export function buildProgram(
  commands: readonly CommandSpec[],
  execute: Execute,
  output: ProgramOutput,
): Command {
  const program = new Command("blob");
  program
    .description(
      "Archives of files in OCI registries and oci: layouts, read lazily: one verified range request per file.",
    )
    .usage("[global options] <command> [options]")
    .exitOverride()
    .allowExcessArguments(false)
    .configureOutput({
      writeOut: (text) => output.writeOut(text),
      writeErr: (text) => output.writeErr(text),
      outputError: (text) => output.usageError(text.replace(/^error: /, "").trimEnd()),
    })
    .showHelpAfterError("(add --help for usage)");
  for (const o of GLOBAL_OPTIONS) program.addOption(toOption(o));
  program.addHelpText(
    "after",
    `${exampleText(ROOT_EXAMPLES)}\nReferences: host[:port]/repo[:tag][@digest] or oci:<dir>[:tag|@digest].\nExit codes: ${EXIT_CODE_TABLE.map((r) => `${r.code} ${r.meaning.split(" (")[0]}`).join(", ")}.\n`,
  );
  for (const spec of commands) addCommand(program, spec, execute, output);
  return program;
}

export { CommanderError };
