// Bug: only the start offset is checked, so a read running past the end returns fewer bytes than asked.

import { BlobError } from "@blobkit/core";
import { describeByteSource } from "../../src/index.ts";
import { ReferenceSource } from "./reference.ts";

class LenientEndSource extends ReferenceSource {
  protected override checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "bad range");
    }
    if (offset > this.bytes.length) throw new BlobError("ERR_OUT_OF_RANGE", "past the end");
  }
}

describeByteSource(
  "broken: lenient end check",
  (bytes) => ({ source: new LenientEndSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
