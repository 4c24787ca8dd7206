import type { PolicyDecision } from "@blobkit/registry";

/** Most reasons a denial carries (further `deny` messages are summarised). */
const MAX_REASONS = 32;
/** Longest reason, in UTF-16 code units (longer ones are cut). */
const MAX_REASON_LENGTH = 1000;

/**
 * Applies the decision rule to a raw Rego decision (the value of the evaluated rule):
 *
 * 1. The decision must be an object; `undefined` (no such rule, or it was undefined), `null`, arrays and other
 *    values deny.
 * 2. When `deny` is present it must be a set (an array in JSON): a non-empty set denies, with its members as
 *    reasons (strings as they are, other values as JSON). Any other `deny` value (`true`, an object…) denies.
 * 3. Otherwise `allow` must be exactly `true`; anything else (`false`, missing, `"true"`, `1`) denies.
 *
 * It never throws: every malformed decision is a denial with a reason saying what was wrong.
 *
 * @public
 */
export function opaDecision(result: unknown): PolicyDecision {
  if (result === undefined) {
    return deny(["the policy decision is undefined (no such rule at the entrypoint, or it was undefined)"]);
  }
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    return deny([`the policy decision is ${describe(result)}, not an object with allow / deny`]);
  }
  const decision = result as { allow?: unknown; deny?: unknown };
  if (decision.deny !== undefined) {
    if (!Array.isArray(decision.deny)) {
      return deny([`deny is ${describe(decision.deny)}, not a set`]);
    }
    if (decision.deny.length > 0) {
      const reasons = decision.deny.slice(0, MAX_REASONS).map((message) => clip(asText(message)));
      if (decision.deny.length > MAX_REASONS) {
        reasons.push(`… and ${decision.deny.length - MAX_REASONS} more deny messages`);
      }
      return deny(reasons);
    }
  }
  if (decision.allow === true) return { allow: true, reasons: [] };
  if (decision.allow === undefined) return deny(["allow is undefined"]);
  return deny([`allow is ${describe(decision.allow)}, not true`]);
}

function deny(reasons: string[]): PolicyDecision {
  return { allow: false, reasons };
}

function asText(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `the string ${clip(JSON.stringify(value), 80)}`;
  return `${typeof value} ${String(value)}`;
}

/** Cuts a message to a bounded length. @internal */
export function clip(text: string, max: number = MAX_REASON_LENGTH): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
