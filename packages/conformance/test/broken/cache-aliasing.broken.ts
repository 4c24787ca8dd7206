// Bug: stores the caller's array and hands the stored array out, so mutations on either side leak in.
import { describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache } from "./reference.ts";

class AliasingCache extends ReferenceCache {
  protected override copyIn(value: Uint8Array): Uint8Array {
    return value;
  }
  protected override copyOut(value: Uint8Array): Uint8Array {
    return value;
  }
  // Without copies a caller's mutation would look like damage to the checksum; like most such caches, check nothing.
  protected override verifies = false;
}

describeCache("broken: aliased values", () => cacheFixture(new AliasingCache()));
