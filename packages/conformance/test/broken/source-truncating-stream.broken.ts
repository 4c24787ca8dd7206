// Bug: stream() stops one byte short of the requested end (read() is correct).
import { describeByteSource } from "../../src/index.ts";
import { ReferenceStreamingSource } from "./reference.ts";

class TruncatingStreamSource extends ReferenceStreamingSource {
  protected override streamEnd(offset: number, length: number): number {
    return offset + length - 1;
  }
}

describeByteSource(
  "broken: truncating stream",
  (bytes) => ({ source: new TruncatingStreamSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
