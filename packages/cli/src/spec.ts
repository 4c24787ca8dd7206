import type { Context } from "./context.ts";
import type { JsonSchema } from "./json-schema.ts";

/** A positional argument of a command. @public */
export interface ArgSpec {
  name: string;
  description: string;
  required?: boolean;
  variadic?: boolean;
}

/** An option of a command (commander flag syntax). @public */
export interface OptionSpec {
  /** e.g. `-c, --compression <mode>`, `--force`, `--no-preserve-mode`. */
  flags: string;
  description: string;
  /** Default value (also shown in help and the reference). */
  defaultValue?: unknown;
  choices?: readonly string[];
  /** `repeatable` collects every occurrence into an array; `int` parses an integer; `count` counts. */
  parser?: "repeatable" | "int" | "count";
  /** Shown in help but not worth a column in the reference. */
  hidden?: boolean;
}

/** One example of `blob <cmd> --help` and the reference. @public */
export interface Example {
  command: string;
  description: string;
}

/** Parsed positional arguments, by name (`string[]` for variadic ones). */
export type Args = Record<string, string | string[] | undefined>;
/** Parsed options, by commander's camelCase name. */
export type Opts = Record<string, unknown>;

/** One entry of the command table: help, the reference doc and the parser are all built from it. @public */
export interface CommandSpec {
  name: string;
  /** One line. */
  summary: string;
  /** Paragraphs for `--help` and the reference (what it does, defaults, safety rules). */
  description?: string;
  args?: readonly ArgSpec[];
  options?: readonly OptionSpec[];
  examples: readonly Example[];
  /** Schema of the JSON document printed with `--output json`. */
  json?: JsonSchema;
  /** Only `--help` (not `-h`) shows help: `-h` is taken by an option (`ls -h`). */
  longHelpOnly?: boolean;
  subcommands?: readonly CommandSpec[];
  action?: (ctx: Context, args: Args, opts: Opts) => Promise<void>;
}
