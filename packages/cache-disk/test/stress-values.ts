// Test helpers shared by the unit tests and the stress-test child processes. Values of the multi-process
// stress test are derived from their key, so any read can be verified.
import { createHash } from "node:crypto";

/** Number of distinct keys (`k0`…). */
export const KEYS = 40;

/** The one value key `k<n>` may hold: 1..3000 bytes, content derived from n. */
export function valueForKey(n: number): Uint8Array {
  const length = 1 + ((n * 7919) % 3000);
  const out = new Uint8Array(length);
  let block = createHash("sha256").update(`value-${n}`).digest();
  for (let i = 0; i < length; i++) {
    if (i % 32 === 0 && i > 0) block = createHash("sha256").update(block).digest();
    out[i] = block[i % 32] ?? 0;
  }
  return out;
}

/** A stream of the given chunks. */
export function streamOf(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull: (controller) => {
      const chunk = chunks[i++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  });
}
