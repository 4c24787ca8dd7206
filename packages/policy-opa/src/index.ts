/**
 * @blobkit/policy-opa — Rego policies over an archive's manifest, index summary and verified attestations,
 * evaluated by a compiled OPA wasm module (in process) or a remote OPA server (REST Data API).
 *
 * @packageDocumentation
 */

export type { ReadWasmBundleOptions, WasmBundle } from "./bundle.ts";
export { DEFAULT_MAX_BUNDLE_BYTES, readWasmBundle } from "./bundle.ts";
export { opaDecision } from "./decision.ts";
export type { BuildOpaInputOptions } from "./input.ts";
export { buildOpaInput } from "./input.ts";
export type { OpaPolicyOptions } from "./policy.ts";
export { DEFAULT_OPA_ENTRYPOINT, DEFAULT_OPA_TIMEOUT_MS, opaPolicy } from "./policy.ts";
export type { RestEvaluatorOptions } from "./rest.ts";
export { DEFAULT_MAX_OPA_RESPONSE_BYTES, restEvaluator } from "./rest.ts";
export type * from "./types.ts";
export type { WasmEvaluator, WasmEvaluatorOptions } from "./wasm.ts";
export { DEFAULT_MAX_WASM_MEMORY_BYTES, wasmEvaluator } from "./wasm.ts";
