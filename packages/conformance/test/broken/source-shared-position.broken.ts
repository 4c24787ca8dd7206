// Bug: seek-then-read on one shared position (like read(2) after lseek(2) on a shared fd): concurrent reads
// read at whichever offset was set last.

import { BlobError } from "@blobkit/core";
import { describeByteSource } from "../../src/index.ts";
import { ReferenceSource, tick } from "./reference.ts";

class SharedPositionSource extends ReferenceSource {
  #position = 0;

  override async read(
    offset: number,
    length: number,
    options: { signal?: AbortSignal } = {},
  ): Promise<Uint8Array> {
    this.checkAbort(options.signal);
    if (this.closed) throw new BlobError("ERR_CLOSED", "closed");
    this.checkRange(offset, length);
    this.#position = offset;
    await tick();
    this.checkAbort(options.signal);
    const out = this.bytes.slice(this.#position, this.#position + length);
    this.#position += length;
    return out;
  }
}

describeByteSource(
  "broken: shared file position",
  (bytes) => ({ source: new SharedPositionSource(bytes), expected: bytes }),
  { largeSize: 256 * 1024 },
);
