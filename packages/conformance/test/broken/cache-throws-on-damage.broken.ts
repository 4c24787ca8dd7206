// Bug: a damaged entry makes get() throw instead of reading as a miss (a cache must degrade, never fail).

import { BlobError } from "@blobkit/core";
import { describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache } from "./reference.ts";

class ThrowsOnDamageCache extends ReferenceCache {
  protected override onDamaged(key: string): Uint8Array | undefined {
    throw new BlobError("ERR_INTEGRITY", "damaged cache entry", { subject: key });
  }
}

describeCache("broken: throws on damaged entries", () => cacheFixture(new ThrowsOnDamageCache()));
