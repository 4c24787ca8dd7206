import { gunzip } from "node:zlib";
import { BlobError } from "@blobkit/core";

/** Default {@link ReadWasmBundleOptions.maxBytes}. @public */
export const DEFAULT_MAX_BUNDLE_BYTES: number = 64 * 1024 * 1024;

/** What {@link readWasmBundle} finds in an `opa build -t wasm` bundle. @public */
export interface WasmBundle {
  /** `/policy.wasm`. */
  wasm: Uint8Array;
  /** `/data.json` parsed, or `undefined` when the bundle has none. */
  data: unknown;
  /** `/.manifest` parsed, or `undefined`. */
  manifest: unknown;
}

/** Options of {@link readWasmBundle}. @public */
export interface ReadWasmBundleOptions {
  /** Largest decompressed bundle, in bytes. Default 64 MiB. */
  maxBytes?: number | undefined;
}

const BLOCK = 512;

/**
 * Reads an OPA bundle built with `opa build -t wasm` (a gzip-compressed tar): `/policy.wasm`, the root
 * `/data.json` and `/.manifest`. Decompression is bounded by `maxBytes`; tar headers are checksummed and every
 * entry must lie inside the archive. Bundles with nested data files or several wasm modules are refused
 * rather than half-read.
 *
 * @throws BlobError `ERR_LIMIT_EXCEEDED` past `maxBytes`; `ERR_INVALID_ARGUMENT` (reason `bad-bundle`) for a
 *   corrupt gzip / tar, a missing `/policy.wasm`, duplicate entries or invalid JSON; `ERR_UNSUPPORTED` for
 *   bundle features this reader does not handle.
 * @public
 */
export async function readWasmBundle(
  bytes: Uint8Array,
  options: ReadWasmBundleOptions = {},
): Promise<WasmBundle> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  const tar = await new Promise<Buffer>((resolve, reject) => {
    gunzip(bytes, { maxOutputLength: maxBytes }, (error, result) => {
      if (error === null) return resolve(result);
      if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError) {
        return reject(
          new BlobError("ERR_LIMIT_EXCEEDED", `OPA bundle decompresses to more than ${maxBytes} bytes`, {
            reason: "bundle-too-large",
            cause: error,
          }),
        );
      }
      reject(bad(`not a gzip-compressed bundle: ${error.message}`, error));
    });
  });
  const files = readTar(tar);
  let wasm: Uint8Array | undefined;
  let data: unknown;
  let manifest: unknown;
  for (const [name, body] of files) {
    if (name === "policy.wasm") wasm = body;
    else if (name === "data.json") data = parseJson(name, body);
    else if (name === ".manifest") manifest = parseJson(name, body);
    else if (name.endsWith(".wasm")) throw unsupported(`bundle holds a second wasm module (${name})`);
    else if (/(^|\/)data\.(json|ya?ml)$/.test(name)) {
      throw unsupported(
        `bundle holds nested data (${name}); build it with opa build -t wasm, which merges data`,
      );
    }
  }
  if (wasm === undefined) throw bad("bundle has no /policy.wasm (was it built with opa build -t wasm?)");
  return { wasm, data, manifest };
}

/** The regular files of a tar archive by normalised name (no leading `/` or `./`). */
function readTar(tar: Buffer): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  let offset = 0;
  let paxPath: string | undefined;
  let longName: string | undefined;
  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break;
    checkChecksum(header, offset);
    const size = octal(header, 124, 12, offset);
    const type = String.fromCharCode(header[156] ?? 0);
    const start = offset + BLOCK;
    const end = start + size;
    if (end > tar.length) throw bad(`tar entry at ${offset} runs past the end of the archive`);
    const body = tar.subarray(start, end);
    offset = start + Math.ceil(size / BLOCK) * BLOCK;
    if (type === "x") {
      paxPath = paxRecords(body).get("path") ?? paxPath;
      continue;
    }
    if (type === "L") {
      longName = cString(body, 0, body.length);
      continue;
    }
    if (type === "g") continue;
    let name = paxPath ?? longName;
    paxPath = undefined;
    longName = undefined;
    if (name === undefined) {
      name = cString(header, 0, 100);
      const ustar = header.subarray(257, 262).toString("latin1") === "ustar";
      const prefix = ustar ? cString(header, 345, 155) : "";
      if (prefix !== "") name = `${prefix}/${name}`;
    }
    if (type !== "0" && type !== "\0" && type !== "7") continue; // directories, links, devices: not data
    const normalised = name.replace(/^(\.?\/)+/, "");
    if (normalised.split("/").some((segment) => segment === ".."))
      throw bad(`tar entry ${name} escapes the bundle`);
    if (files.has(normalised)) throw bad(`tar entry ${normalised} appears twice`);
    files.set(normalised, new Uint8Array(body));
  }
  return files;
}

function checkChecksum(header: Buffer, offset: number): void {
  const expected = octal(header, 148, 8, offset);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
  if (sum !== expected) throw bad(`tar header at ${offset} has a bad checksum`);
}

function octal(header: Buffer, at: number, length: number, offset: number): number {
  if (((header[at] as number) & 0x80) !== 0) throw unsupported(`tar entry at ${offset} uses a base-256 size`);
  const text = cString(header, at, length).trim();
  if (!/^[0-7]*$/.test(text)) throw bad(`tar header at ${offset} has a malformed number`);
  const value = text === "" ? 0 : Number.parseInt(text, 8);
  if (!Number.isSafeInteger(value)) throw bad(`tar header at ${offset} has an out-of-range number`);
  return value;
}

function cString(bytes: Uint8Array, at: number, length: number): string {
  const field = bytes.subarray(at, at + length);
  const nul = field.indexOf(0);
  return Buffer.from(field.subarray(0, nul < 0 ? field.length : nul)).toString("utf8");
}

/** PAX extended header records: `<length> <key>=<value>\n`, the length counting bytes. */
function paxRecords(body: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  const buffer = Buffer.from(body);
  let at = 0;
  while (at < buffer.length) {
    const space = buffer.indexOf(0x20, at);
    const length =
      space < 0 ? Number.NaN : Number.parseInt(buffer.subarray(at, space).toString("latin1"), 10);
    if (!Number.isSafeInteger(length) || length <= space - at || at + length > buffer.length) break;
    const record = buffer.subarray(space + 1, at + length - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

function parseJson(name: string, body: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(body).toString("utf8"));
  } catch (error) {
    throw bad(`bundle file /${name} is not valid JSON`, error);
  }
}

function bad(message: string, cause?: unknown): BlobError {
  return new BlobError("ERR_INVALID_ARGUMENT", `invalid OPA bundle: ${message}`, {
    reason: "bad-bundle",
    cause,
  });
}

function unsupported(message: string): BlobError {
  return new BlobError("ERR_UNSUPPORTED", `unsupported OPA bundle: ${message}`, { reason: "bundle-feature" });
}
