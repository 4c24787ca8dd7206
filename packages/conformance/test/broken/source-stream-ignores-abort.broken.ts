// Bug: stream() never looks at its signal (read() honours it).
import { describeByteSource } from "../../src/index.ts";
import { ReferenceStreamingSource } from "./reference.ts";

class StreamIgnoresAbortSource extends ReferenceStreamingSource {
  protected override watchAbort = false;
}

describeByteSource(
  "broken: stream ignores abort",
  (bytes) => ({ source: new StreamIgnoresAbortSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
