// Bug: claims supportsTtl but never expires anything.
import { describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache } from "./reference.ts";

class IgnoresTtlCache extends ReferenceCache {
  protected override expiry(): number | undefined {
    return undefined;
  }
}

describeCache("broken: ignores TTL", () => cacheFixture(new IgnoresTtlCache()));
