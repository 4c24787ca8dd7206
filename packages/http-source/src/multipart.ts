/**
 * A strict parser of `multipart/byteranges` bodies (RFC 9110 §14.6): every part must carry a
 * `Content-Range: bytes a-b/total`, and its data is taken by that length — never by searching for the
 * boundary, which may well occur inside binary data.
 */

/** One part of a `multipart/byteranges` body. */
export interface BytePart {
  /** First byte of the part in the object. */
  start: number;
  /** Last byte (inclusive). */
  end: number;
  /** The object's size as the part reports it, when given. */
  total: number | undefined;
  /** The part's bytes (`end - start + 1` of them). */
  data: Uint8Array;
}

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");

/** The boundary of a `multipart/byteranges` content type, or undefined for any other type. */
export function byterangesBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const match = /^\s*multipart\/byteranges\s*;(?:.*;)?\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(
    contentType,
  );
  return match === null ? undefined : (match[1] ?? match[2]);
}

/**
 * Splits a `multipart/byteranges` body into its parts, or returns `undefined` when the body does not follow
 * the format exactly (missing boundary, part without a valid `Content-Range`, data shorter than its range,
 * trailing garbage): the caller then falls back to single-range requests rather than guess.
 */
export function parseByteranges(body: Uint8Array, boundary: string): BytePart[] | undefined {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: BytePart[] = [];
  // The preamble (usually a CRLF) ends at the first delimiter.
  let at = bytes.indexOf(delimiter);
  if (at < 0) return undefined;
  for (;;) {
    at += delimiter.length;
    if (bytes[at] === 0x2d && bytes[at + 1] === 0x2d) {
      // The close delimiter: only whitespace may follow (the epilogue is ignored by RFC 2046, but a part
      // left over after it would mean a confused server).
      return parts.length > 0 ? parts : undefined;
    }
    if (!bytes.subarray(at, at + 2).equals(CRLF)) return undefined;
    at += 2;
    const headersEnd = bytes.indexOf(HEADER_END, at);
    if (headersEnd < 0) return undefined;
    const headerText = bytes.subarray(at, headersEnd).toString("latin1");
    let range: { start: number; end: number; total: number | undefined } | undefined;
    for (const line of headerText.split("\r\n")) {
      const match = /^content-range\s*:\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(line);
      if (match === null) continue;
      const start = Number(match[1]);
      const end = Number(match[2]);
      const total = match[3] === "*" ? undefined : Number(match[3]);
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
      if (total !== undefined && (!Number.isSafeInteger(total) || end >= total)) return undefined;
      range = { start, end, total };
    }
    if (range === undefined) return undefined;
    const dataStart = headersEnd + HEADER_END.length;
    const dataEnd = dataStart + (range.end - range.start + 1);
    if (dataEnd > bytes.length) return undefined;
    parts.push({
      ...range,
      data: new Uint8Array(bytes.buffer, bytes.byteOffset + dataStart, dataEnd - dataStart),
    });
    // The data is followed by CRLF and the next delimiter.
    if (!bytes.subarray(dataEnd, dataEnd + 2).equals(CRLF)) return undefined;
    at = dataEnd + 2;
    if (!bytes.subarray(at, at + delimiter.length).equals(delimiter)) return undefined;
  }
}
