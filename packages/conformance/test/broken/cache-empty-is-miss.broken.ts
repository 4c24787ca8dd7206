// Bug: a falsy-length check turns stored empty values into misses.
import type { CacheOptions } from "@blobkit/core";
import { describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache } from "./reference.ts";

class EmptyIsMissCache extends ReferenceCache {
  override async get(key: string, options?: CacheOptions): Promise<Uint8Array | undefined> {
    const value = await super.get(key, options);
    return value?.length ? value : undefined;
  }
}

describeCache("broken: empty value reads as a miss", () => cacheFixture(new EmptyIsMissCache()));
