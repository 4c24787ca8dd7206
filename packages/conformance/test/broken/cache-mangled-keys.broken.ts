// Bug: keys are turned into "file names" naively: lower-cased (a case-insensitive file system), resolved like
// paths and cut at 100 characters, so distinct keys collide.
import { posix } from "node:path";
import { describeCache } from "../../src/index.ts";
import { cacheFixture, ReferenceCache } from "./reference.ts";

class MangledKeysCache extends ReferenceCache {
  protected override storageKey(key: string): string {
    return posix.normalize(key.toLowerCase()).slice(0, 100);
  }
}

describeCache("broken: mangled keys", () => cacheFixture(new MangledKeysCache()));
