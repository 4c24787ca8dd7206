// Bug: close() does nothing, so the source keeps serving reads after it.
import { describeByteSource } from "../../src/index.ts";
import { ReferenceStreamingSource } from "./reference.ts";

class IgnoresCloseSource extends ReferenceStreamingSource {
  override async close(): Promise<void> {}
}

describeByteSource(
  "broken: ignores close",
  (bytes) => ({ source: new IgnoresCloseSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
