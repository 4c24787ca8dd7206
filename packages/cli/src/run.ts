import { COMMANDS } from "./commands/index.ts";
import { type GlobalFlags, loadConfig } from "./config.ts";
import { Context } from "./context.ts";
import { CliError, EXIT, errorCodeOf, exitCodeFor } from "./exit-codes.ts";
import type { CliIo } from "./io.ts";
import { buildProgram, CommanderError } from "./program.ts";

/** Whether the command line / environment asks for JSON output (decided before parsing, for usage errors). */
function wantsJson(argv: readonly string[], env: CliIo["env"]): boolean {
  let json = env.BLOB_OUTPUT === "json";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (a === "--json" || a === "--output=json") json = true;
    else if (a === "--output") json = argv[i + 1] === "json";
    else if (a === "--output=text") json = false;
  }
  return json;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * Runs the `blob` command line `argv` (without `node` and the script) against `io` and resolves to the exit
 * code. Never throws and never calls `process.exit`: usable in-process (tests) and by `bin.ts`.
 *
 * Errors: text mode prints `blob: <message>` on stderr; JSON mode prints one error document
 * `{"error": {"code", "message", "exitCode"}}` on **stderr** (stdout only ever carries a successful result).
 *
 * @public
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let json = wantsJson(argv, io.env);
  let ctx: Context | undefined;
  let usageMessage: string | undefined;
  const printError = (code: string, message: string, exitCode: number): void => {
    if (json) io.stderr.write(`${JSON.stringify({ error: { code, message, exitCode } }, null, 2)}\n`);
    else io.stderr.write(`blob: ${message}\n`);
  };
  const program = buildProgram(
    COMMANDS,
    async (spec, args, opts, globals) => {
      const flags: GlobalFlags = {
        config: globals.config as string | undefined,
        output: globals.output as string | undefined,
        json: globals.json as boolean | undefined,
        quiet: globals.quiet as boolean | undefined,
        verbose: globals.verbose as number | undefined,
        color: globals.color as boolean | undefined,
        plainHttp: globals.plainHttp as boolean | undefined,
        cache: globals.cache as string | boolean | undefined,
      };
      const loaded = await loadConfig(flags, io.env, io.cwd);
      json = loaded.config.output === "json";
      ctx = new Context(io, loaded);
      for (const warning of loaded.warnings) ctx.warn(warning);
      if (spec.action === undefined)
        throw new CliError(`${spec.name} needs a subcommand`, EXIT.USAGE, "ERR_USAGE");
      await spec.action(ctx, args, opts);
    },
    {
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => {
        // commander's help after an error goes to stderr; in JSON mode only the error document is printed.
        if (!json) io.stderr.write(text);
      },
      usageError: (message) => {
        usageMessage = message;
        // Text mode: the message comes before commander's "(add --help for usage)" line.
        if (!json) io.stderr.write(`blob: ${message}\n`);
      },
    },
  );
  try {
    if (argv.length === 0) {
      io.stderr.write(program.helpInformation());
      return EXIT.USAGE;
    }
    await program.parseAsync(argv, { from: "user" });
    return EXIT.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return EXIT.OK;
      // A command group without a subcommand: commander printed its help on stderr.
      if (error.code === "commander.help") {
        printError("ERR_USAGE", "missing subcommand", EXIT.USAGE);
        return EXIT.USAGE;
      }
      if (json || usageMessage === undefined)
        printError("ERR_USAGE", usageMessage ?? error.message.replace(/^error: /, ""), EXIT.USAGE);
      return EXIT.USAGE;
    }
    const interrupted = io.signal?.aborted === true;
    const exitCode = interrupted ? EXIT.INTERRUPTED : exitCodeFor(error, io.signal);
    const code = interrupted ? "ERR_INTERRUPTED" : errorCodeOf(error, io.signal);
    printError(code, interrupted ? "interrupted" : messageOf(error), exitCode);
    if (ctx !== undefined && ctx.config.verbose >= 2 && error instanceof Error && error.stack !== undefined)
      io.stderr.write(`${error.stack}\n`);
    return exitCode;
  } finally {
    await ctx?.close();
  }
}
