/**
 * `@blobkit/cli` — the `blob` command. The executable is `bin.ts`; `run(argv, io)` runs a command line
 * in-process (tests, embedding), `COMMANDS` is the command table the parser and docs/cli.md come from.
 *
 * @packageDocumentation
 */
export { COMMANDS } from "./commands/index.ts";
export type { BlobConfig, GlobalFlags, LoadedConfig, PolicyRule } from "./config.ts";
export { DEFAULT_CAT_BUFFER_LIMIT, defaultCacheDir, defaultConfigPath, loadConfig } from "./config.ts";
export { CliError, EXIT, EXIT_CODE_TABLE, type ExitCode, exitCodeFor, InterruptError } from "./exit-codes.ts";
export type { CliIo, CliWritable } from "./io.ts";
export { errorSchema, type JsonSchema, validateJson } from "./json-schema.ts";
export {
  buildPolicies,
  matchingRules,
  type PolicySources,
  type PolicySpec,
  parsePolicySpec,
} from "./policies.ts";
export { GLOBAL_OPTIONS } from "./program.ts";
export { generateReference } from "./reference.ts";
export { parseCopySource, resolveReference } from "./refs.ts";
export { run } from "./run.ts";
export type { ArgSpec, CommandSpec, Example, OptionSpec } from "./spec.ts";
