/**
 * @blobkit/http-source — a blobkit `ByteSource` over any HTTP(S) URL that honours `Range`, on undici.
 *
 * @packageDocumentation
 */

export type {
  ByteRange,
  HttpHeadersContext,
  HttpSourceOptions,
  HttpSourceStats,
  HttpUnauthorizedContext,
  ReadRangesOptions,
} from "./http-source.ts";
export {
  DEFAULT_COALESCE_GAP_BYTES,
  DEFAULT_COALESCE_MAX_SPAN_BYTES,
  DEFAULT_HTTP_CONNECT_TIMEOUT_MS,
  DEFAULT_HTTP_IDLE_TIMEOUT_MS,
  DEFAULT_HTTP_MAX_CONCURRENCY,
  DEFAULT_HTTP_RETRIES,
  DEFAULT_HTTP_TIMEOUT_MS,
  HttpSource,
  parseContentRange,
} from "./http-source.ts";
