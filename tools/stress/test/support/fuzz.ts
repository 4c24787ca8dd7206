import { isBlobError } from "@blobkit/core";
import fc from "fast-check";
import { envInt, recordResult } from "./results.ts";

/** Inputs per parser: `STRESS_FUZZ_RUNS` (default one million). */
export const FUZZ_RUNS: number = envInt("STRESS_FUZZ_RUNS", 1_000_000);
/** An input that takes longer than this is a hang. `STRESS_FUZZ_MAX_INPUT_MS`, default 1000. */
export const MAX_INPUT_MS: number = envInt("STRESS_FUZZ_MAX_INPUT_MS", 1000);
/** fast-check seed: `STRESS_SEED` to replay a run; otherwise random and printed. */
export const SEED: number = envInt("STRESS_SEED", Math.floor(Math.random() * 0x7fff_ffff) + 1);

/** One distinct crash (or invariant violation): its signature, how often it happened, the smallest input. */
export interface CrashRecord {
  signature: string;
  count: number;
  input: string;
  stack: string;
}

/** What a fuzz run measured. */
export interface FuzzReport {
  parser: string;
  inputs: number;
  /** Inputs the parser accepted (returned a result). */
  accepted: number;
  /** Inputs rejected with a typed `BlobError`, by code. */
  rejected: Record<string, number>;
  /** Inputs that threw anything else, or broke an invariant of an accepted result. */
  crashes: number;
  distinctCrashes: CrashRecord[];
  /** Crashes / violations matching {@link FuzzTarget.known} (reported, regression-tested, not yet fixed). */
  knownFindings: CrashRecord[];
  /** Inputs slower than {@link MAX_INPUT_MS}. */
  hangs: number;
  slowestInputMs: number;
  slowestInput: string;
  seconds: number;
  inputsPerSecond: number;
  seed: number;
}

/** How a parser is called and judged. */
export interface FuzzTarget<T> {
  /** Name in reports (e.g. `decodeIndex`). */
  parser: string;
  arbitrary: fc.Arbitrary<T>;
  /**
   * Calls the parser. Return normally when the input was accepted (and check invariants of the result: throw
   * an `InvariantError` for a broken one); a `BlobError` thrown from here is a typed rejection.
   */
  call: (input: T) => void;
  /**
   * Parsers documented never to throw (`parseWwwAuthenticate`, `parseContentRange`): any throw is a crash.
   */
  neverThrows?: boolean;
  /** Inputs to run; default {@link FUZZ_RUNS}. */
  runs?: number;
  /**
   * Signatures of findings already reported (each has a regression test in regressions.test.ts): counted in
   * `knownFindings`, not failing the run. Anything else fails it.
   */
  known?: readonly RegExp[];
}

/** Thrown by `call` when an accepted result breaks a documented invariant. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

/** Renders an input for a report (hex for bytes, JSON for the rest), capped at `max` characters. */
export function show(input: unknown, max = 2000): string {
  let text: string;
  if (input instanceof Uint8Array) text = `hex:${Buffer.from(input).toString("hex")}`;
  else {
    try {
      text = JSON.stringify(input, (_k, v: unknown) =>
        typeof v === "bigint"
          ? `${v}n`
          : v instanceof Uint8Array
            ? `hex:${Buffer.from(v).toString("hex")}`
            : v,
      );
    } catch {
      text = String(input);
    }
  }
  return text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
}

function sizeOf(input: unknown): number {
  if (input instanceof Uint8Array || typeof input === "string") return input.length;
  return show(input, 1e9).length;
}

/**
 * Runs `target.call` on `runs` generated inputs (fast-check, never stopping at a failure so that every crash
 * is counted) and measures each call. Returns the report; the caller asserts on it.
 */
export function fuzz<T>(target: FuzzTarget<T>): FuzzReport {
  const runs = target.runs ?? FUZZ_RUNS;
  const crashes = new Map<string, CrashRecord & { size: number }>();
  const rejected: Record<string, number> = {};
  let accepted = 0;
  let crashCount = 0;
  let hangs = 0;
  let slowest = 0;
  let slowestInput = "";
  let inputs = 0;
  const noteCrash = (error: unknown, input: T): void => {
    crashCount++;
    const e = error as { name?: unknown; message?: unknown; stack?: unknown };
    const message = typeof e?.message === "string" ? e.message : String(error);
    // One signature per error class and message shape (numbers folded so offsets do not split a bug in two).
    const signature = `${String(e?.name ?? typeof error)}: ${message.replace(/\d+/g, "N").slice(0, 120)}`;
    const size = sizeOf(input);
    const known = crashes.get(signature);
    if (known === undefined) {
      crashes.set(signature, {
        signature,
        count: 1,
        input: show(input),
        stack: String(e?.stack ?? "")
          .split("\n")
          .slice(0, 6)
          .join("\n"),
        size,
      });
    } else {
      known.count++;
      if (size < known.size) {
        known.size = size;
        known.input = show(input);
      }
    }
  };
  const started = performance.now();
  fc.check(
    fc.property(target.arbitrary, (input) => {
      inputs++;
      const t0 = performance.now();
      try {
        target.call(input);
        accepted++;
      } catch (error) {
        if (!target.neverThrows && !(error instanceof InvariantError) && isBlobError(error)) {
          rejected[error.code] = (rejected[error.code] ?? 0) + 1;
        } else {
          noteCrash(error, input);
        }
      }
      const ms = performance.now() - t0;
      if (ms > slowest) {
        slowest = ms;
        slowestInput = show(input, 300);
      }
      if (ms > MAX_INPUT_MS) hangs++;
      return true;
    }),
    { numRuns: runs, seed: SEED },
  );
  const seconds = (performance.now() - started) / 1000;
  const report: FuzzReport = {
    parser: target.parser,
    inputs,
    accepted,
    rejected,
    crashes: crashCount,
    distinctCrashes: [...crashes.values()]
      .filter((c) => !(target.known ?? []).some((re) => re.test(c.signature)))
      .map(({ size: _size, ...rest }) => rest),
    knownFindings: [...crashes.values()]
      .filter((c) => (target.known ?? []).some((re) => re.test(c.signature)))
      .map(({ size: _size, stack: _stack, ...rest }) => ({ ...rest, stack: "" })),
    hangs,
    slowestInputMs: Math.round(slowest * 1000) / 1000,
    slowestInput,
    seconds: Math.round(seconds * 10) / 10,
    inputsPerSecond: Math.round(inputs / seconds),
    seed: SEED,
  };
  recordResult("fuzz", target.parser, report);
  printReport(report);
  return report;
}

/** One line per parser, plus the distinct crashes. */
export function printReport(r: FuzzReport): void {
  const codes = Object.entries(r.rejected)
    .map(([code, n]) => `${code}=${n}`)
    .join(" ");
  console.log(
    `[fuzz] ${r.parser.padEnd(28)} inputs=${r.inputs} accepted=${r.accepted} crashes=${r.crashes} hangs=${r.hangs} ` +
      `slowest=${r.slowestInputMs}ms time=${r.seconds}s (${r.inputsPerSecond}/s) seed=${r.seed} rejected: ${codes}`,
  );
  for (const c of r.knownFindings) {
    console.log(`[fuzz]   known finding ×${c.count} ${c.signature} — smallest input: ${c.input}`);
  }
  for (const c of r.distinctCrashes) {
    console.log(`[fuzz]   CRASH ×${c.count} ${c.signature}\n    input: ${c.input}\n    ${c.stack}`);
  }
}

// ---- generic mutation arbitraries --------------------------------------------------------------------------

const INTERESTING_U32 = [
  0, 1, 2, 3, 4, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff,
];

/** One byte-level edit of a buffer. */
type Edit =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "u32"; at: number; value: number }
  | { kind: "u32-rel"; at: number; delta: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "copy"; from: number; at: number; count: number }
  | { kind: "truncate"; at: number };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.nat(255) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("u32" as const),
      at: fc.nat(),
      value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.nat(), fc.nat(4096)),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("u32-rel" as const),
      at: fc.nat(),
      delta: fc.integer({ min: -64, max: 64 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("delete" as const),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 16 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("copy" as const),
      from: fc.nat(),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 32 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
);

/** Applies edits to a copy of `base`; positions are taken modulo the current length. */
export function applyEdits(base: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = base.slice();
  for (const e of edits) {
    const n = b.length;
    if (n === 0 && e.kind !== "insert") continue;
    switch (e.kind) {
      case "flip":
        b[e.at % n]! ^= 1 << e.bit;
        break;
      case "set":
        b[e.at % n] = e.value;
        break;
      case "u32": {
        if (n < 4) break;
        const at = (e.at % (n - 3)) & ~0; // unaligned on purpose too
        new DataView(b.buffer, b.byteOffset).setUint32(at, e.value >>> 0, true);
        break;
      }
      case "u32-rel": {
        if (n < 4) break;
        const at = (e.at % ((n - 3) >> 2 || 1)) * 4;
        if (at + 4 > n) break;
        const dv = new DataView(b.buffer, b.byteOffset);
        dv.setUint32(at, (dv.getUint32(at, true) + e.delta) >>> 0, true);
        break;
      }
      case "insert": {
        const at = n === 0 ? 0 : e.at % (n + 1);
        const out = new Uint8Array(n + e.bytes.length);
        out.set(b.subarray(0, at));
        out.set(e.bytes, at);
        out.set(b.subarray(at), at + e.bytes.length);
        b = out;
        break;
      }
      case "delete": {
        const at = e.at % n;
        const out = new Uint8Array(n - Math.min(e.count, n - at));
        out.set(b.subarray(0, at));
        out.set(b.subarray(at + e.count), at);
        b = out;
        break;
      }
      case "copy": {
        const from = e.from % n;
        const chunk = b.slice(from, from + e.count);
        const at = e.at % n;
        b.set(chunk.subarray(0, Math.min(chunk.length, n - at)), at);
        break;
      }
      case "truncate":
        b = b.slice(0, e.at % n);
        break;
    }
  }
  return b;
}

/** Mutations of one of `seeds`: 1–8 edits (byte flips, u32 overwrites with interesting values, splices). */
export function mutatedBytes(seeds: readonly Uint8Array[], maxEdits = 8): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.nat(seeds.length - 1), fc.array(editArb, { minLength: 1, maxLength: maxEdits }))
    .map(([i, edits]) => applyEdits(seeds[i]!, edits));
}
