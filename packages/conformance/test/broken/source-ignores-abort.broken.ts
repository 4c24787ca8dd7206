// Bug: the signal is never looked at.
import { describeByteSource } from "../../src/index.ts";
import { ReferenceSource } from "./reference.ts";

class IgnoresAbortSource extends ReferenceSource {
  protected override checkAbort(): void {}
}

describeByteSource(
  "broken: ignores abort",
  (bytes) => ({ source: new IgnoresAbortSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
