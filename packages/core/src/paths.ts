import { BlobError } from "./errors.ts";
import { DEFAULT_LIMITS } from "./limits.ts";

const encoder = new TextEncoder();

/**
 * Why `path` is not a valid archive path, or `undefined` when it is. Archive paths are relative,
 * `/`-separated, with no empty, `.` or `..` segments, no NUL, no lone UTF-16 surrogates (they have no UTF-8
 * form) and at most `maxPathLength` UTF-8 bytes. This is Go's `fs.ValidPath` plus the checks it forgets.
 *
 * @public
 */
export function invalidPathReason(
  path: string,
  maxPathLength: number = DEFAULT_LIMITS.maxPathLength,
): string | undefined {
  if (path.length === 0) return "empty path";
  if (path.length > maxPathLength || utf8Length(path) > maxPathLength)
    return `longer than ${maxPathLength} bytes`;
  if (path.charCodeAt(0) === 0x2f) return "absolute path";
  let segmentStart = 0;
  for (let i = 0; i <= path.length; i++) {
    const c = i === path.length ? 0x2f : path.charCodeAt(i);
    if (c === 0x2f) {
      const len = i - segmentStart;
      if (len === 0) return "empty path segment";
      if (len === 1 && path.charCodeAt(segmentStart) === 0x2e) return "'.' segment";
      if (len === 2 && path.charCodeAt(segmentStart) === 0x2e && path.charCodeAt(segmentStart + 1) === 0x2e) {
        return "'..' segment";
      }
      segmentStart = i + 1;
    } else if (c === 0) {
      return "NUL byte";
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = path.charCodeAt(i + 1);
      if (c >= 0xdc00 || !(next >= 0xdc00 && next <= 0xdfff)) return "lone surrogate (not valid UTF-8)";
      i++;
    }
  }
  return undefined;
}

/** Throws `ERR_INVALID_PATH` unless `path` is a valid archive path (see {@link invalidPathReason}). @public */
export function assertArchivePath(path: string, maxPathLength?: number): void {
  const reason = invalidPathReason(path, maxPathLength);
  if (reason !== undefined) {
    throw new BlobError("ERR_INVALID_PATH", `invalid archive path ${JSON.stringify(path)}: ${reason}`, {
      reason,
      subject: path,
    });
  }
}

/**
 * Normalizes a path a user typed into the form lookups use: leading `/` and `./` and trailing `/` are
 * stripped and runs of `/` collapse; `""`, `"/"` and `"."` all mean the root, returned as `"."`. The result
 * is validated: `..` and other invalid segments throw `ERR_INVALID_PATH`.
 *
 * @public
 */
export function normalizePath(input: string): string {
  let path = input.replace(/\/{2,}/g, "/");
  while (path.startsWith("./")) path = path.slice(2).replace(/^\/+/, "");
  path = path.replace(/^\/+/, "").replace(/\/+$/, "");
  if (path === "" || path === ".") return ".";
  assertArchivePath(path);
  return path;
}

/** Byte length of `s` in UTF-8 (lone surrogates count as 3, like `TextEncoder`'s replacement). @public */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // 4 bytes for 2 code units
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/** UTF-8 bytes of `s`. @public */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/**
 * Compares two strings in the unsigned byte order of their UTF-8 encodings (the order archive indexes are
 * sorted in) without encoding them. UTF-16 code-unit order equals UTF-8 byte order except that surrogate
 * pairs (code points ≥ U+10000) must sort after U+E000–U+FFFF; the remap below does exactly that.
 *
 * @public
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

/** Compares two byte arrays in unsigned lexicographic order. @public */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
