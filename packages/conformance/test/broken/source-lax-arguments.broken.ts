// Bug: arguments are coerced (truncated, clamped at 0, NaN → 0) instead of rejected.
import { describeByteSource } from "../../src/index.ts";
import { ReferenceSource } from "./reference.ts";

const coerce = (n: number): number => (Number.isFinite(n) ? Math.max(0, Math.trunc(n)) : n > 0 ? 1 : 0);

class LaxArgumentsSource extends ReferenceSource {
  override read(offset: number, length: number, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    return super.read(coerce(offset), coerce(length), options);
  }
}

describeByteSource(
  "broken: lax arguments",
  (bytes) => ({ source: new LaxArgumentsSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
