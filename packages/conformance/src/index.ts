/**
 * @blobkit/conformance — vitest suites that check any `ByteSource` or `Cache` implementation (blobkit's own
 * and third parties') against the contracts documented in `@blobkit/core`.
 *
 * @packageDocumentation
 */
export { type ByteSourceFixture, type DescribeByteSourceOptions, describeByteSource } from "./byte-source.ts";
export { type CacheFixture, type DescribeCacheOptions, describeCache } from "./cache.ts";
