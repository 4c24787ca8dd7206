// Bug: close() does nothing, so the cache keeps working after it.
import { describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache } from "./reference.ts";

class IgnoresCloseCache extends ReferenceCache {
  override async close(): Promise<void> {}
}

describeCache("broken: ignores close", () => cacheFixture(new IgnoresCloseCache()));
