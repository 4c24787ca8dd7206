import type { BlobError } from "@blobkit/core";
import { Client, type Policy } from "@blobkit/registry";
import { type OpenCache, openCache } from "./cache.ts";
import type { BlobConfig, LoadedConfig } from "./config.ts";
import type { CliIo } from "./io.ts";
import { writeAll } from "./io.ts";
import { createProgress, type Progress } from "./progress.ts";
import { resolveReference } from "./refs.ts";

const ANSI = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  yellow: [33, 39],
  blue: [34, 39],
  green: [32, 39],
} as const;

/** Per-run state handed to every command action. */
export class Context {
  readonly io: CliIo;
  readonly config: BlobConfig;
  readonly loaded: LoadedConfig;
  readonly signal: AbortSignal;
  #cache: Promise<OpenCache | undefined> | undefined;
  readonly #clients: Client[] = [];
  readonly #cleanups: (() => Promise<void>)[] = [];

  constructor(io: CliIo, loaded: LoadedConfig) {
    this.io = io;
    this.loaded = loaded;
    this.config = loaded.config;
    this.signal = io.signal ?? new AbortController().signal;
  }

  get json(): boolean {
    return this.config.output === "json";
  }

  /** Whether progress bars are drawn: stderr is a TTY, not quiet, not JSON, not CI. */
  get progressEnabled(): boolean {
    const ci = this.io.env.CI;
    return (
      this.io.stderr.isTTY === true &&
      !this.config.quiet &&
      !this.json &&
      (ci === undefined || ci === "" || ci === "false")
    );
  }

  /** ANSI style for `stream` when colour is on (no `--no-color`, no `NO_COLOR`, a TTY). */
  style(text: string, style: keyof typeof ANSI, stream: "stdout" | "stderr" = "stdout"): string {
    if (!this.config.color || this.io[stream].isTTY !== true || this.io.env.TERM === "dumb") return text;
    const [open, close] = ANSI[style];
    return `\u001b[${open}m${text}\u001b[${close}m`;
  }

  /** Data on stdout (text mode). */
  async out(text: string): Promise<void> {
    await writeAll(this.io.stdout, text.endsWith("\n") || text === "" ? text : `${text}\n`, this.signal);
  }

  /** Raw bytes on stdout (cat). */
  async outBytes(bytes: Uint8Array): Promise<void> {
    await writeAll(this.io.stdout, bytes, this.signal);
  }

  /**
   * The command's result: its JSON document in JSON mode, else `text()` (skipped with `-q` when the text is
   * a confirmation rather than requested data, i.e. `quietable`).
   */
  async result(document: unknown, text: () => string, options: { quietable?: boolean } = {}): Promise<void> {
    if (this.json) {
      await this.out(`${JSON.stringify(document, null, 2)}\n`);
      return;
    }
    if (this.config.quiet && options.quietable !== false) return;
    const rendered = text();
    if (rendered !== "") await this.out(rendered);
  }

  /** A warning on stderr (not with `-q`). */
  warn(message: string): void {
    if (this.config.quiet) return;
    this.io.stderr.write(`${this.style("blob: warning:", "yellow", "stderr")} ${message}\n`);
  }

  /** A log line on stderr with `-v` (level 1) or `-vv` (level 2). */
  log(message: string, level = 1): void {
    if (this.config.verbose >= level)
      this.io.stderr.write(`${this.style("blob:", "dim", "stderr")} ${message}\n`);
  }

  /** What the user typed, with aliases and relative `oci:` directories resolved. */
  ref(input: string): string {
    const resolved = resolveReference(input, this.config.aliases, this.io.cwd);
    if (resolved !== input) this.log(`${input} → ${resolved}`, 2);
    return resolved;
  }

  /** The configured cache (opened once per run). */
  cache(): Promise<OpenCache | undefined> {
    this.#cache ??= openCache(
      this.config,
      (error: BlobError) => this.log(`cache: ${error.message}`),
      this.signal,
    ).then((cache) => {
      if (cache !== undefined) {
        this.log(`cache: ${cache.kind} ${cache.location}`, 2);
        this.#cleanups.push(() => cache.close());
      }
      return cache;
    });
    return this.#cache;
  }

  /** A registry/layout client with the configured cache, plain-HTTP rule and the given policies. */
  async client(options: { policies?: readonly Policy[]; cache?: boolean } = {}): Promise<Client> {
    const cache = options.cache === false ? undefined : await this.cache();
    const client = new Client({
      plainHttp: this.config.plainHttp ? true : "auto",
      cache: cache?.cache,
      refTtlMs: this.config.cache.refTtlMs,
      policies: options.policies,
      onCacheError: (error) => this.log(`cache: ${(error as Error).message ?? String(error)}`),
    });
    this.#clients.push(client);
    return client;
  }

  progress(label: string): Progress {
    const progress = createProgress(this.progressEnabled, this.io.stderr, label);
    this.#cleanups.push(async () => progress.stop());
    return progress;
  }

  /** Something to undo / close at the end of the run (also on errors and interrupts). */
  defer(cleanup: () => Promise<void>): void {
    this.#cleanups.push(cleanup);
  }

  async close(): Promise<void> {
    for (const client of this.#clients.splice(0)) await client.close().catch(() => {});
    for (const cleanup of this.#cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  }
}
