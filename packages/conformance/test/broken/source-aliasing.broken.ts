// Bug: reads return views of the source's own buffer, so a caller mutating a result corrupts the source.
import { describeByteSource } from "../../src/index.ts";
import { ReferenceSource } from "./reference.ts";

class AliasingSource extends ReferenceSource {
  protected override copy(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}

describeByteSource(
  "broken: aliased results",
  (bytes) => ({ source: new AliasingSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
