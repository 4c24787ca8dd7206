import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { CliError, EXIT } from "./exit-codes.ts";
import { parseDuration, parseSize, redactUrl } from "./format.ts";

/** Default size up to which `cat` buffers a file and verifies it before printing it: 64 MiB. @public */
export const DEFAULT_CAT_BUFFER_LIMIT: number = 64 * 1024 * 1024;
/** Default size bound of the disk cache: 1 GiB. @public */
export const DEFAULT_CACHE_MAX_SIZE: number = 1024 * 1024 * 1024;
/** Default time a tag → digest resolution stays cached: 60 s. @public */
export const DEFAULT_REF_TTL_MS = 60_000;

/** A rule of `policies:` in the config file (evaluated by `policies.ts`). @public */
export interface PolicyRule {
  /** Regular expression that must match the whole alias-resolved reference (anchored). */
  match: string;
  /** The policy (see the policy YAML in the README). */
  policy: unknown;
}

/** The effective configuration of one run. @public */
export interface BlobConfig {
  output: "text" | "json";
  quiet: boolean;
  verbose: number;
  color: boolean;
  plainHttp: boolean;
  compression: "zstd" | "none";
  cache: {
    enabled: boolean;
    /** A directory, or a `redis://` / `rediss://` URL. Default `$XDG_CACHE_HOME/blob` (else `~/.cache/blob`). */
    location: string;
    /** Size bound of the disk cache (and of `cache prune`), bytes. */
    maxSize: number;
    /** How long tag resolutions are cached, ms (0 = never). */
    refTtlMs: number;
  };
  /** `cat` buffers and verifies files up to this size before printing them. */
  catBufferLimit: number;
  aliases: Record<string, string>;
  policies: PolicyRule[];
}

/** Where each value of the configuration came from, and which file was read. @public */
export interface LoadedConfig {
  config: BlobConfig;
  /** The config file path looked at. */
  path: string;
  /** Whether it existed. */
  exists: boolean;
  /** Warnings (unknown keys); printed on stderr unless quiet. */
  warnings: string[];
}

/** Global options as given on the command line (commander's names). */
export interface GlobalFlags {
  config?: string | undefined;
  output?: string | undefined;
  json?: boolean | undefined;
  quiet?: boolean | undefined;
  verbose?: number | undefined;
  color?: boolean | undefined;
  plainHttp?: boolean | undefined;
  /** `--cache <loc>` → string, `--no-cache` → false. */
  cache?: string | boolean | undefined;
}

type Env = Record<string, string | undefined>;

/** `$XDG_CONFIG_HOME/blob/config.yaml`, else `~/.config/blob/config.yaml`. @public */
export function defaultConfigPath(env: Env): string {
  const xdg = env.XDG_CONFIG_HOME;
  return xdg !== undefined && xdg !== ""
    ? join(xdg, "blob", "config.yaml")
    : join(home(env), ".config", "blob", "config.yaml");
}

/** `$XDG_CACHE_HOME/blob`, else `~/.cache/blob`. @public */
export function defaultCacheDir(env: Env): string {
  const xdg = env.XDG_CACHE_HOME;
  return xdg !== undefined && xdg !== "" ? join(xdg, "blob") : join(home(env), ".cache", "blob");
}

function home(env: Env): string {
  return env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir();
}

function defaults(env: Env): BlobConfig {
  return {
    output: "text",
    quiet: false,
    verbose: 0,
    color: true,
    plainHttp: false,
    compression: "zstd",
    cache: {
      enabled: true,
      location: defaultCacheDir(env),
      maxSize: DEFAULT_CACHE_MAX_SIZE,
      refTtlMs: DEFAULT_REF_TTL_MS,
    },
    catBufferLimit: DEFAULT_CAT_BUFFER_LIMIT,
    aliases: {},
    policies: [],
  };
}

/** `plain-http`, `plain_http`, `plainHttp` → `plainHttp`. */
function camel(key: string): string {
  return key.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
}

function bad(where: string, key: string, why: string): CliError {
  return new CliError(`${where}: ${key} ${why}`, EXIT.USAGE, "ERR_CONFIG");
}

function bool(where: string, key: string, value: unknown): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "string") {
    const v = value.trim().toLowerCase();
    if (["1", "true", "yes", "on"].includes(v)) return true;
    if (["0", "false", "no", "off", ""].includes(v)) return false;
  }
  if (value === 1 || value === 0) return value === 1;
  throw bad(where, key, `must be a boolean, got ${JSON.stringify(value)}`);
}

function output(where: string, key: string, value: unknown): "text" | "json" {
  if (value === "text" || value === "json") return value;
  throw bad(where, key, `must be "text" or "json", got ${JSON.stringify(value)}`);
}

function size(where: string, key: string, value: unknown): number {
  const parsed = typeof value === "string" || typeof value === "number" ? parseSize(value) : undefined;
  if (parsed === undefined)
    throw bad(where, key, `must be a size such as 64MiB, got ${JSON.stringify(value)}`);
  return parsed;
}

function duration(where: string, key: string, value: unknown): number {
  const parsed = typeof value === "string" || typeof value === "number" ? parseDuration(value) : undefined;
  if (parsed === undefined)
    throw bad(where, key, `must be a duration such as 5m, got ${JSON.stringify(value)}`);
  return parsed;
}

function nonNegativeInt(where: string, key: string, value: unknown): number {
  const n = typeof value === "string" ? Number(value) : value;
  if (typeof n === "number" && Number.isSafeInteger(n) && n >= 0) return n;
  throw bad(where, key, `must be a non-negative integer, got ${JSON.stringify(value)}`);
}

function compression(where: string, key: string, value: unknown): "zstd" | "none" {
  if (value === "zstd" || value === "none") return value;
  throw bad(where, key, `must be "zstd" or "none", got ${JSON.stringify(value)}`);
}

function cacheLocation(location: string, base: string): string {
  return /^rediss?:\/\//.test(location) ? location : resolve(base, location);
}

/** Applies a parsed YAML document onto `config`; unknown keys become warnings. */
function applyFile(config: BlobConfig, doc: unknown, where: string, warnings: string[], base: string): void {
  if (doc === null || doc === undefined) return;
  if (typeof doc !== "object" || Array.isArray(doc)) throw bad(where, "the document", "must be a mapping");
  for (const [rawKey, value] of Object.entries(doc as Record<string, unknown>)) {
    const key = camel(rawKey);
    switch (key) {
      case "output":
        config.output = output(where, rawKey, value);
        break;
      case "quiet":
        config.quiet = bool(where, rawKey, value);
        break;
      case "verbose":
        config.verbose = typeof value === "boolean" ? Number(value) : nonNegativeInt(where, rawKey, value);
        break;
      case "color":
        config.color = bool(where, rawKey, value);
        break;
      case "noColor":
        config.color = !bool(where, rawKey, value);
        break;
      case "plainHttp":
        config.plainHttp = bool(where, rawKey, value);
        break;
      case "compression":
        config.compression = compression(where, rawKey, value);
        break;
      case "catBufferLimit":
        config.catBufferLimit = size(where, rawKey, value);
        break;
      case "cache": {
        if (value === false || value === true) {
          config.cache.enabled = value;
          break;
        }
        if (typeof value !== "object" || value === null || Array.isArray(value))
          throw bad(where, rawKey, "must be a mapping");
        for (const [rawSub, sub] of Object.entries(value as Record<string, unknown>)) {
          const subKey = camel(rawSub);
          const name = `${rawKey}.${rawSub}`;
          if (subKey === "enabled") config.cache.enabled = bool(where, name, sub);
          else if (subKey === "dir" || subKey === "url" || subKey === "location") {
            if (typeof sub !== "string" || sub === "") throw bad(where, name, "must be a non-empty string");
            config.cache.location = cacheLocation(sub, base);
          } else if (subKey === "maxSize") config.cache.maxSize = size(where, name, sub);
          else if (subKey === "refTtl") config.cache.refTtlMs = duration(where, name, sub);
          else warnings.push(`${where}: unknown key ${name} (ignored)`);
        }
        break;
      }
      case "aliases": {
        if (typeof value !== "object" || value === null || Array.isArray(value))
          throw bad(where, rawKey, "must be a mapping of name → reference");
        for (const [name, target] of Object.entries(value as Record<string, unknown>)) {
          if (typeof target !== "string" || target === "")
            throw bad(where, `${rawKey}.${name}`, "must be a reference");
          if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
            throw bad(where, `${rawKey}.${name}`, "alias names are letters, digits, '.', '_' and '-'");
          config.aliases[name] = target;
        }
        break;
      }
      case "policies": {
        if (!Array.isArray(value)) throw bad(where, rawKey, "must be a list of {match, policy}");
        value.forEach((rule, i) => {
          const r = rule as { match?: unknown; policy?: unknown } | null;
          if (typeof r?.match !== "string" || r.match === "")
            throw bad(where, `${rawKey}[${i}].match`, "must be a non-empty regex");
          try {
            new RegExp(r.match);
          } catch {
            throw bad(where, `${rawKey}[${i}].match`, "is not a valid regular expression");
          }
          if (r.policy === undefined) throw bad(where, `${rawKey}[${i}].policy`, "is required");
          config.policies.push({ match: r.match, policy: r.policy });
        });
        break;
      }
      default:
        warnings.push(`${where}: unknown key ${rawKey} (ignored)`);
    }
  }
}

function applyEnv(config: BlobConfig, env: Env, cwd: string): void {
  const where = "environment";
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === "" ? undefined : v;
  };
  const on = (name: string, apply: (value: string) => void): void => {
    const value = get(name);
    if (value !== undefined) apply(value);
  };
  on("BLOB_OUTPUT", (v) => (config.output = output(where, "BLOB_OUTPUT", v)));
  on("BLOB_QUIET", (v) => (config.quiet = bool(where, "BLOB_QUIET", v)));
  on("BLOB_VERBOSE", (v) => (config.verbose = nonNegativeInt(where, "BLOB_VERBOSE", v)));
  on("NO_COLOR", () => (config.color = false));
  on("BLOB_NO_COLOR", (v) => (config.color = !bool(where, "BLOB_NO_COLOR", v)));
  on("BLOB_PLAIN_HTTP", (v) => (config.plainHttp = bool(where, "BLOB_PLAIN_HTTP", v)));
  on("BLOB_COMPRESSION", (v) => (config.compression = compression(where, "BLOB_COMPRESSION", v)));
  on("BLOB_CACHE_DIR", (v) => (config.cache.location = cacheLocation(v, cwd)));
  on("BLOB_CACHE", (v) => (config.cache.location = cacheLocation(v, cwd)));
  on("BLOB_NO_CACHE", (v) => (config.cache.enabled = !bool(where, "BLOB_NO_CACHE", v)));
  on("BLOB_CACHE_MAX_SIZE", (v) => (config.cache.maxSize = size(where, "BLOB_CACHE_MAX_SIZE", v)));
  on("BLOB_CAT_BUFFER_LIMIT", (v) => (config.catBufferLimit = size(where, "BLOB_CAT_BUFFER_LIMIT", v)));
}

function applyFlags(config: BlobConfig, flags: GlobalFlags, cwd: string): void {
  if (flags.output !== undefined) config.output = output("--output", "value", flags.output);
  if (flags.json === true) config.output = "json";
  if (flags.quiet === true) config.quiet = true;
  if (flags.verbose !== undefined && flags.verbose > 0) config.verbose = flags.verbose;
  if (flags.color === false) config.color = false;
  if (flags.plainHttp === true) config.plainHttp = true;
  if (flags.cache === false) config.cache.enabled = false;
  else if (typeof flags.cache === "string") {
    config.cache.enabled = true;
    config.cache.location = cacheLocation(flags.cache, cwd);
  }
}

/**
 * The effective configuration: defaults, then the YAML file (`--config`, else `$BLOB_CONFIG`, else
 * {@link defaultConfigPath}; a missing default file is fine, a missing explicit one is an error), then
 * `BLOB_*` environment variables, then flags.
 *
 * @public
 */
export async function loadConfig(flags: GlobalFlags, env: Env, cwd: string): Promise<LoadedConfig> {
  const config = defaults(env);
  const warnings: string[] = [];
  const explicit = flags.config ?? (env.BLOB_CONFIG === "" ? undefined : env.BLOB_CONFIG);
  const path = explicit === undefined ? defaultConfigPath(env) : resolve(cwd, explicit);
  let exists = false;
  let text: string | undefined;
  try {
    text = await readFile(path, "utf8");
    exists = true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== "ENOENT" || explicit !== undefined) {
      throw new CliError(
        `cannot read config file ${path}: ${code ?? String(error)}`,
        code === "ENOENT" ? EXIT.NOT_FOUND : EXIT.ERROR,
        "ERR_CONFIG",
      );
    }
  }
  if (text !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (error) {
      throw new CliError(
        `config file ${path} is not valid YAML: ${(error as Error).message}`,
        EXIT.USAGE,
        "ERR_CONFIG",
      );
    }
    applyFile(config, doc, path, warnings, resolve(path, ".."));
  }
  applyEnv(config, env, cwd);
  applyFlags(config, flags, cwd);
  return { config, path, exists, warnings };
}

/** The configuration as `config show` prints it: secrets (Redis passwords) redacted. @public */
export function displayConfig(config: BlobConfig): BlobConfig {
  return {
    ...config,
    cache: { ...config.cache, location: redactUrl(config.cache.location) },
    aliases: { ...config.aliases },
    policies: config.policies.map((p) => ({ ...p })),
  };
}
