// Bug: set() overwrites the stored buffer in place, in two halves with a pause in between (a non-atomic file
// write), so concurrent writers interleave and readers see half-written values.
import type { CacheOptions } from "@blobkit/core";
import { describeCache } from "../../src/index.ts";
import { ReferenceCache } from "./reference.ts";

class TearingCache extends ReferenceCache {
  override readonly supportsTtl: boolean = false;
  readonly #buffers = new Map<string, Uint8Array>();
  #calls = 0;

  override async get(key: string, options?: CacheOptions): Promise<Uint8Array | undefined> {
    this.check(options);
    return this.#buffers.get(key)?.slice();
  }

  override async set(key: string, value: Uint8Array, options?: CacheOptions): Promise<void> {
    this.check(options);
    let buffer = this.#buffers.get(key);
    if (buffer === undefined || buffer.length !== value.length) {
      buffer = new Uint8Array(value.length);
      this.#buffers.set(key, buffer);
    }
    const half = value.length >> 1;
    buffer.set(value.subarray(half), half);
    // Earlier writers pause longer, so the first halves land in the reverse order of the second halves.
    const pause = Math.max(0, 40 - 2 * this.#calls++);
    await new Promise((resolve) => setTimeout(resolve, pause));
    buffer.set(value.subarray(0, half), 0);
  }

  override async delete(key: string, options?: CacheOptions): Promise<void> {
    this.check(options);
    this.#buffers.delete(key);
  }
}

describeCache("broken: torn writes", () => ({ cache: new TearingCache() }));
