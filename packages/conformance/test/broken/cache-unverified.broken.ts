// Bug: entries are never checked, so a damaged entry is served as if it were the value.
import { describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache } from "./reference.ts";

class UnverifiedCache extends ReferenceCache {
  protected override onDamaged(_key: string, stored: { bytes: Uint8Array }): Uint8Array | undefined {
    return stored.bytes.slice();
  }
}

describeCache("broken: serves damaged entries", () => cacheFixture(new UnverifiedCache()));
