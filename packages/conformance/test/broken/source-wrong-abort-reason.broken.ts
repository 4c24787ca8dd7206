// Bug: an aborted read rejects with a fresh AbortError instead of the signal's own reason.
import { describeByteSource } from "../../src/index.ts";
import { ReferenceSource } from "./reference.ts";

class WrongAbortReasonSource extends ReferenceSource {
  protected override checkAbort(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw new DOMException("The operation was aborted", "AbortError");
  }
}

describeByteSource(
  "broken: wrong abort reason",
  (bytes) => ({ source: new WrongAbortReasonSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
