import { MemorySource } from "@blobkit/core";
import { describeByteSource } from "./index.ts";

describeByteSource("MemorySource", (bytes) => ({ source: new MemorySource(bytes), expected: bytes }));

describeByteSource("MemorySource over a view into a larger buffer", (bytes) => {
  const backing = new Uint8Array(bytes.length + 32).fill(0xcc);
  backing.set(bytes, 16);
  return { source: new MemorySource(backing.subarray(16, 16 + bytes.length)), expected: bytes };
});
