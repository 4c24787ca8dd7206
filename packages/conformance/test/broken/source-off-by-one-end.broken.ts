// Bug: the end check uses >= instead of >, so every read that touches the last byte is refused.

import { BlobError } from "@blobkit/core";
import { describeByteSource } from "../../src/index.ts";
import { ReferenceSource } from "./reference.ts";

class OffByOneEndSource extends ReferenceSource {
  protected override checkRange(offset: number, length: number): void {
    super.checkRange(offset, length);
    if (length > 0 && offset + length >= this.bytes.length)
      throw new BlobError("ERR_OUT_OF_RANGE", "past the end");
  }
}

describeByteSource(
  "broken: off-by-one end check",
  (bytes) => ({ source: new OffByOneEndSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
