import { MemoryCache } from "@blobkit/core";
import { describeCache } from "./index.ts";

describeCache("MemoryCache (injected clock)", () => {
  let now = 1_000_000;
  return {
    cache: new MemoryCache({ now: () => now }),
    advanceTime: (ms) => {
      now += ms;
    },
  };
});

describeCache("MemoryCache (real clock)", () => ({ cache: new MemoryCache() }), { largeSize: 0 });
