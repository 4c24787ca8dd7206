import { expect } from "vitest";

/**
 * Deterministic pseudo-random bytes (xorshift32), so a failure reproduces and fixtures never look periodic
 * (a source that reads the wrong offset cannot return matching bytes by accident).
 */
export function patternBytes(size: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A small deterministic random number generator: integers in `[0, max)`. */
export function randomInts(seed: number): (max: number) => number {
  let x = seed >>> 0 || 1;
  return (max) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % max;
  };
}

/** Index of the first byte where `a` and `b` differ, or -1 when they are equal (length included). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * Asserts that `actual` is a Uint8Array holding exactly `expected`. Compares with `Buffer.equals` (fast on
 * megabytes, where a generic deep equality is slow) and reports the first differing offset.
 */
export function expectBytes(actual: unknown, expected: Uint8Array, what: string): void {
  expect(actual, `${what}: not a Uint8Array`).toBeInstanceOf(Uint8Array);
  const a = actual as Uint8Array;
  const equal =
    a.length === expected.length &&
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
    );
  if (!equal) {
    const at = firstDifference(a, expected);
    expect.fail(
      `${what}: got ${a.length} bytes, expected ${expected.length}; first difference at byte ${at} ` +
        `(got ${a[at]}, expected ${expected[at]})`,
    );
  }
}

/** True when `a` and `b` hold the same bytes. */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return (
    a !== undefined &&
    a.length === b.length &&
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    )
  );
}

/**
 * Calls `fn` and returns its promise; a synchronous throw (where the contract asks for a rejection) fails the
 * test with a clear message instead of escaping as an unrelated error.
 */
export function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  let promise: Promise<T>;
  try {
    promise = fn();
  } catch (error) {
    expect.fail(`${what} threw synchronously instead of returning a rejected promise: ${String(error)}`);
  }
  expect(typeof (promise as { then?: unknown } | undefined)?.then, `${what} did not return a promise`).toBe(
    "function",
  );
  return Promise.resolve(promise);
}

/** Awaits `promise` and asserts it rejected with an error whose `code` is `code`. */
export async function expectCode(promise: Promise<unknown>, code: string, what: string): Promise<void> {
  let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await promise };
  } catch (error) {
    outcome = { ok: false, error };
  }
  if (outcome.ok) {
    const v = outcome.value;
    const shown = v instanceof Uint8Array ? `${v.length} bytes` : String(v);
    expect.fail(`${what}: expected a rejection with ${code}, but it resolved (${shown})`);
  }
  expect(
    (outcome.error as { code?: unknown } | null)?.code,
    `${what}: wrong error ${String(outcome.error)}`,
  ).toBe(code);
}

/** Awaits `promise` and asserts it rejected with exactly `reason` (the same object). */
export async function expectRejectsWith(
  promise: Promise<unknown>,
  reason: unknown,
  what: string,
): Promise<void> {
  let outcome: { ok: true } | { ok: false; error: unknown };
  try {
    await promise;
    outcome = { ok: true };
  } catch (error) {
    outcome = { ok: false, error };
  }
  if (outcome.ok) expect.fail(`${what}: expected a rejection with signal.reason, but it resolved`);
  expect(outcome.error, `${what}: must reject with exactly signal.reason`).toBe(reason);
}

/** Reads a stream to the end and concatenates its chunks (each must be a Uint8Array). */
export async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    expect(value, "stream chunk is not a Uint8Array").toBeInstanceOf(Uint8Array);
    chunks.push(value);
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A stream made of `chunks`, optionally erroring with `error` after them. */
export function streamOf(chunks: readonly Uint8Array[], error?: unknown): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk !== undefined) controller.enqueue(chunk.slice());
      else if (error !== undefined) controller.error(error);
      else controller.close();
    },
  });
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A recognisable abort reason: the suites check that rejections carry exactly this object. */
export function abortReason(label: string): { readonly conformanceAbortReason: string } {
  return { conformanceAbortReason: label };
}
