import { BlobError, isBlobError } from "@blobkit/core";
import type { Policy, PolicyContext, PolicyDecision } from "@blobkit/registry";
import { clip, opaDecision } from "./decision.ts";
import { buildOpaInput } from "./input.ts";
import type { OpaEvaluator, OpaIndexInput, VerifiedAttestation } from "./types.ts";

/** Default {@link OpaPolicyOptions.entrypoint}: the package document `data.blob.policy`. @public */
export const DEFAULT_OPA_ENTRYPOINT = "blob/policy";
/** Default {@link OpaPolicyOptions.timeoutMs}. @public */
export const DEFAULT_OPA_TIMEOUT_MS = 30_000;

/** Options of {@link opaPolicy}. @public */
export interface OpaPolicyOptions {
  /** Where Rego runs: {@link wasmEvaluator} (compiled policy, in process) or {@link restEvaluator} (OPA server). */
  evaluator: OpaEvaluator;
  /** Name shown in denials. Default `"opa"`. */
  name?: string | undefined;
  /**
   * The rule whose value is the decision, as a path: `blob/policy` (default) is `data.blob.policy`, the whole
   * package document of `package blob.policy` — so its `allow` and `deny` rules are read together. For a wasm
   * policy, build it with this entrypoint (`opa build -t wasm -e blob/policy`).
   */
  entrypoint?: string | undefined;
  /**
   * Supplies the **verified** attestations of the manifest (for example `@blobkit/policy-sigstore`'s verifier:
   * signature checked, statement bound to the manifest digest). Never pass unverified referrers: anyone who can
   * push to the repository can attach those. Without it `input.attestations` is empty. A throw denies.
   */
  attestations?: ((context: PolicyContext) => Promise<readonly VerifiedAttestation[]>) | undefined;
  /**
   * An attestation whose in-toto `subject[].digest.sha256` is not this manifest's digest (or whose statement
   * disagrees with its `predicateType`): `"deny"` (default) denies the manifest, `"drop"` leaves it out.
   */
  unboundAttestations?: "deny" | "drop" | undefined;
  /**
   * Summarise the index blob into `input.index` (default `true`). The index is fetched through the policy
   * context's store, bounded by `maxIndexBytes`; summaries are kept per index digest, so a manifest evaluated
   * again costs no fetch. `false` sets `input.index` to `null`.
   */
  index?: boolean | undefined;
  /** Largest index fetched for the summary, in bytes. Default 256 MiB (core's `maxIndexSize`). */
  maxIndexBytes?: number | undefined;
  /**
   * Time allowed for one evaluation — gathering attestations, the index summary and the Rego evaluation — in
   * ms. Past it the policy denies ("timed out"). Default 30 000. A wasm evaluation runs synchronously and cannot
   * be interrupted: one that overran is still a denial once it returns.
   */
  timeoutMs?: number | undefined;
}

class PolicyTimeout extends Error {
  override name = "TimeoutError";
}

/**
 * A registry {@link Policy} that evaluates a Rego decision over the manifest, its index summary and its
 * verified attestations (the input document is described in the README and by {@link OpaInput}).
 *
 * Decision rule ({@link opaDecision}): a non-empty `deny` set denies with its messages as reasons; otherwise
 * `allow` must be `true`. Everything else — an undefined decision, a malformed one, an evaluator error, a wasm
 * trap, an HTTP error, an unreachable server, a timeout, an attestation not bound to the manifest — denies with
 * a reason. When the caller's signal aborts, `evaluate` rejects with `signal.reason`.
 *
 * @example
 * ```ts
 * const client = new Client({
 *   policies: [opaPolicy({ evaluator: wasmEvaluator({ wasm: "policy/bundle.tar.gz" }) })],
 * });
 * ```
 * @public
 */
export function opaPolicy(options: OpaPolicyOptions): Policy {
  const evaluator = options.evaluator;
  if (typeof evaluator?.evaluate !== "function") {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      "opaPolicy needs an evaluator (wasmEvaluator or restEvaluator)",
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_OPA_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `timeoutMs must be a positive number, got ${String(timeoutMs)}`,
    );
  }
  const maxIndexBytes = options.maxIndexBytes;
  if (maxIndexBytes !== undefined && (!Number.isSafeInteger(maxIndexBytes) || maxIndexBytes <= 0)) {
    throw new BlobError(
      "ERR_INVALID_ARGUMENT",
      `maxIndexBytes must be a positive integer, got ${String(maxIndexBytes)}`,
    );
  }
  const entrypoint = options.entrypoint ?? DEFAULT_OPA_ENTRYPOINT;
  if (typeof entrypoint !== "string" || entrypoint === "") {
    throw new BlobError("ERR_INVALID_ARGUMENT", "entrypoint must be a non-empty string");
  }
  const unbound = options.unboundAttestations ?? "deny";
  if (unbound !== "deny" && unbound !== "drop") {
    throw new BlobError("ERR_INVALID_ARGUMENT", `unboundAttestations must be "deny" or "drop"`);
  }
  const indexCache = new Map<string, OpaIndexInput>();
  const name = options.name ?? "opa";

  async function decide(context: PolicyContext, signal: AbortSignal): Promise<PolicyDecision> {
    const attestations = options.attestations === undefined ? [] : await options.attestations(context);
    if (!Array.isArray(attestations)) throw new Error("the attestation provider did not return an array");
    const input = await buildOpaInput(context, {
      index: options.index,
      maxIndexBytes,
      attestations,
      unboundAttestations: unbound,
      indexCache,
      signal,
    });
    signal.throwIfAborted();
    const result = await evaluator.evaluate(input, { entrypoint, signal });
    return opaDecision(result);
  }

  return {
    name,
    async evaluate(context: PolicyContext): Promise<PolicyDecision> {
      const outer = context.signal;
      outer?.throwIfAborted();
      const controller = new AbortController();
      const onAbort = (): void => controller.abort(outer?.reason);
      outer?.addEventListener("abort", onAbort, { once: true });
      const timer = setTimeout(
        () => controller.abort(new PolicyTimeout(`timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const started = performance.now();
      try {
        const work = decide(context, controller.signal);
        // A late rejection of an abandoned evaluation must not surface as an unhandled rejection.
        work.catch(() => {});
        const decision = await Promise.race([work, rejectOnAbort(controller.signal)]);
        if (performance.now() - started > timeoutMs) {
          return { allow: false, reasons: [`${evaluator.name}: timed out after ${timeoutMs} ms`] };
        }
        return decision;
      } catch (error) {
        if (outer?.aborted) throw outer.reason;
        if (controller.signal.reason instanceof PolicyTimeout) {
          return { allow: false, reasons: [`${evaluator.name}: ${controller.signal.reason.message}`] };
        }
        return { allow: false, reasons: [`${evaluator.name}: evaluation failed: ${message(error)}`] };
      } finally {
        clearTimeout(timer);
        outer?.removeEventListener("abort", onAbort);
      }
    },
  };
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** A bounded, single-line description of a thrown value. @internal */
export function message(error: unknown): string {
  let text: string;
  if (isBlobError(error)) text = error.message;
  else if (error instanceof Error)
    text = error.name === "Error" ? error.message : `${error.name}: ${error.message}`;
  else if (typeof error === "string") text = error;
  else text = String(error);
  return clip(text.replace(/\s+/g, " ").trim(), 500);
}
