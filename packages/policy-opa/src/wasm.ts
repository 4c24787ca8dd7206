import { readFile, stat } from "node:fs/promises";
import { BlobError } from "@blobkit/core";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { DEFAULT_MAX_BUNDLE_BYTES, readWasmBundle } from "./bundle.ts";
import type { OpaEvaluateOptions, OpaEvaluator, OpaInput } from "./types.ts";

/** Default {@link WasmEvaluatorOptions.maxMemoryBytes}. @public */
export const DEFAULT_MAX_WASM_MEMORY_BYTES: number = 256 * 1024 * 1024;

const PAGE = 65536;
/** The opa-wasm SDK's default initial memory, in pages. */
const SDK_INITIAL_PAGES = 5;

/** Options of {@link wasmEvaluator}. @public */
export interface WasmEvaluatorOptions {
  /**
   * The compiled policy: the bytes or the path of a `policy.wasm`, or of a bundle tarball built by
   * `opa build -t wasm` (told apart by their first bytes).
   */
  wasm: Uint8Array | string;
  /** The `data` document. Replaces the bundle's `/data.json` when given. Default: the bundle's, or `{}`. */
  data?: unknown;
  /** Largest policy file / decompressed bundle, in bytes. Default 64 MiB. */
  maxBundleBytes?: number | undefined;
  /** Largest linear memory the policy may grow to, in bytes (input, data and evaluation). Default 256 MiB. */
  maxMemoryBytes?: number | undefined;
  /** Implementations of built-in functions the compiled policy needs and the SDK does not provide. */
  builtins?: Record<string, (...args: unknown[]) => unknown> | undefined;
}

/** An {@link OpaEvaluator} running a compiled policy in process. @public */
export interface WasmEvaluator extends OpaEvaluator {
  /** Loads and compiles the policy now (it is loaded on first use otherwise), so configuration errors surface early. */
  ready(): Promise<void>;
  /** The entrypoints the module exports (name → id), once loaded. */
  entrypoints(): Promise<Record<string, number>>;
}

interface Loaded {
  module: WebAssembly.Module;
  data: unknown;
  initialPages: number;
}

/**
 * Evaluates a policy compiled to WebAssembly by `opa build -t wasm`, in process, with the
 * `@open-policy-agent/opa-wasm` SDK. The module is compiled once; an instance is reused across evaluations
 * and replaced after any failure (a trap may leave its heap inconsistent). Evaluation is synchronous: it cannot
 * be interrupted by a timeout, only judged afterwards (see {@link OpaPolicyOptions.timeoutMs}); Rego itself
 * always terminates.
 *
 * The raw decision is the `result` of the single element of the result set; an empty result set is
 * `undefined`. An unknown entrypoint, a trap, an `opa_abort`, a memory limit or a malformed result set reject.
 *
 * @example
 * ```ts
 * const evaluator = wasmEvaluator({ wasm: "bundle.tar.gz" }); // opa build -t wasm -e blob/policy policy.rego
 * await evaluator.ready();
 * ```
 * @public
 */
export function wasmEvaluator(options: WasmEvaluatorOptions): WasmEvaluator {
  const source = options.wasm;
  if (!(source instanceof Uint8Array) && typeof source !== "string") {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      "wasm must be the bytes or the path of a policy.wasm or bundle",
    );
  }
  const maxBundleBytes = positive("maxBundleBytes", options.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES);
  const maxMemoryBytes = positive("maxMemoryBytes", options.maxMemoryBytes ?? DEFAULT_MAX_WASM_MEMORY_BYTES);
  const maxPages = Math.max(1, Math.floor(maxMemoryBytes / PAGE));
  const name = typeof source === "string" ? `opa-wasm ${source}` : "opa-wasm";

  let loading: Promise<Loaded> | undefined;
  let instance: LoadedPolicy | undefined;

  function load(): Promise<Loaded> {
    loading ??= compile().catch((error: unknown) => {
      loading = undefined; // a missing file may appear later: retry on next use
      throw error;
    });
    return loading;
  }

  async function compile(): Promise<Loaded> {
    let bytes: Uint8Array;
    if (typeof source === "string") {
      const info = await stat(source).catch((error: unknown) => {
        throw new BlobError("ERR_IO", `cannot read OPA policy ${source}: ${(error as Error).message}`, {
          cause: error,
          subject: source,
        });
      });
      if (info.size > maxBundleBytes) {
        throw new BlobError(
          "ERR_LIMIT_EXCEEDED",
          `OPA policy ${source} is ${info.size} bytes, more than ${maxBundleBytes}`,
          { reason: "bundle-too-large", subject: source },
        );
      }
      bytes = new Uint8Array(await readFile(source));
    } else {
      bytes = source;
    }
    let wasm: Uint8Array;
    let data = options.data;
    if (isWasm(bytes)) {
      if (bytes.length > maxBundleBytes) {
        throw new BlobError("ERR_LIMIT_EXCEEDED", `policy.wasm is larger than ${maxBundleBytes} bytes`, {
          reason: "bundle-too-large",
        });
      }
      wasm = bytes;
    } else if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
      const bundle = await readWasmBundle(bytes, { maxBytes: maxBundleBytes });
      wasm = bundle.wasm;
      if (data === undefined) data = bundle.data;
    } else {
      throw new BlobError(
        "ERR_INVALID_ARGUMENT",
        "the OPA policy is neither a wasm module nor a gzip-compressed bundle",
        { reason: "not-wasm" },
      );
    }
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>);
    } catch (error) {
      throw new BlobError("ERR_INVALID_ARGUMENT", `invalid policy.wasm: ${(error as Error).message}`, {
        reason: "not-wasm",
        cause: error,
      });
    }
    const minimum = memoryImportMinimum(wasm) ?? 0;
    if (minimum > maxPages) {
      throw new BlobError(
        "ERR_LIMIT_EXCEEDED",
        `the policy needs ${minimum * PAGE} bytes of memory, more than maxMemoryBytes (${maxMemoryBytes})`,
        { reason: "memory-limit" },
      );
    }
    return {
      module,
      data: data ?? {},
      initialPages: Math.min(maxPages, Math.max(minimum, SDK_INITIAL_PAGES)),
    };
  }

  async function policy(): Promise<LoadedPolicy> {
    const loaded = await load();
    if (instance !== undefined) return instance;
    const created = await sdk(() =>
      loadPolicy(
        loaded.module,
        { initial: loaded.initialPages, maximum: maxPages },
        (options.builtins ?? {}) as Record<string, Function>,
      ),
    );
    await sdk(async () => created.setData(loaded.data as object));
    instance ??= created;
    return instance;
  }

  return {
    name,
    async ready() {
      await policy();
    },
    async entrypoints() {
      return { ...((await policy()).entrypoints as Record<string, number>) };
    },
    async evaluate(input: OpaInput, evaluateOptions: OpaEvaluateOptions): Promise<unknown> {
      evaluateOptions.signal.throwIfAborted();
      const loadedPolicy = await policy();
      evaluateOptions.signal.throwIfAborted();
      const { entrypoint } = evaluateOptions;
      const entrypoints = loadedPolicy.entrypoints as Record<string, number>;
      if (!Object.hasOwn(entrypoints, entrypoint)) {
        const known = Object.keys(entrypoints).slice(0, 20).join(", ");
        throw new BlobError(
          "ERR_INVALID_ARGUMENT",
          `the wasm policy has no entrypoint "${entrypoint}" (it has: ${known}); build it with opa build -t wasm -e ${entrypoint}`,
          { reason: "unknown-entrypoint" },
        );
      }
      let resultSet: unknown;
      try {
        resultSet = await sdk(async () => loadedPolicy.evaluate(input, entrypoint));
      } catch (error) {
        if (instance === loadedPolicy) instance = undefined;
        throw error;
      }
      return resultOf(resultSet);
    },
  };
}

/** Runs an SDK call, turning the strings it throws (`opa_abort`, parse failures) into errors. */
async function sdk<T>(call: () => Promise<T> | T): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof Error) throw error;
    const text = typeof error === "string" ? error : JSON.stringify(error);
    throw new Error(`opa wasm: ${text}`);
  }
}

/** `[{result: X}]` → X; `[]` → undefined; anything else is malformed. */
function resultOf(resultSet: unknown): unknown {
  if (!Array.isArray(resultSet))
    throw new Error("the wasm policy returned a malformed result set (not an array)");
  if (resultSet.length === 0) return undefined;
  const [first] = resultSet;
  if (
    resultSet.length !== 1 ||
    typeof first !== "object" ||
    first === null ||
    !Object.hasOwn(first, "result")
  ) {
    throw new Error(`the wasm policy returned a malformed result set (${resultSet.length} elements)`);
  }
  return (first as { result: unknown }).result;
}

function isWasm(bytes: Uint8Array): boolean {
  return bytes[0] === 0x00 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
}

function positive(what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `${what} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * The minimum size, in pages, of the module's `env.memory` import (OPA policies import their memory), read
 * from the import section; `undefined` when the module imports no memory or cannot be read.
 */
function memoryImportMinimum(bytes: Uint8Array): number | undefined {
  let p = 8;
  const leb = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = bytes[p++];
      if (byte === undefined || shift > 28) throw new RangeError("truncated LEB128");
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
  };
  const limits = (): number => {
    const flags = bytes[p++] ?? 0;
    const min = leb();
    if ((flags & 1) !== 0) leb();
    return min;
  };
  try {
    while (p < bytes.length) {
      const id = bytes[p++];
      const size = leb();
      const end = p + size;
      if (id === 2) {
        const count = leb();
        for (let i = 0; i < count; i++) {
          p += leb(); // module name
          p += leb(); // field name
          const kind = bytes[p++];
          if (kind === 0) leb();
          else if (kind === 1) {
            p++;
            limits();
          } else if (kind === 2) return limits();
          else if (kind === 3) p += 2;
          else if (kind === 4) {
            p++;
            leb();
          } else return undefined;
        }
        return undefined;
      }
      p = end;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
