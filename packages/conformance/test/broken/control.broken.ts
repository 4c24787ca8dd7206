// Control: the reference implementations must pass every test, so that the failures of the broken variants
// are attributable to their bugs alone.
import { describeByteSource, describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache, ReferenceSource, ReferenceStreamingSource } from "./reference.ts";

const LARGE = 256 * 1024;

describeByteSource(
  "control: reference source",
  (bytes) => ({ source: new ReferenceSource(bytes), expected: bytes }),
  {
    largeSize: LARGE,
  },
);

describeByteSource(
  "control: reference streaming source",
  (bytes) => ({ source: new ReferenceStreamingSource(bytes), expected: bytes }),
  { largeSize: LARGE, streams: true },
);

describeCache("control: reference cache", () => cacheFixture(new ReferenceCache()));
