import { createHash, webcrypto } from "node:crypto";
import { BlobError } from "./errors.ts";

/** Lowercase hex SHA-256 of `bytes`. @public */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Inputs at least this large are hashed on the thread pool by {@link sha256HexAsync}. */
const ASYNC_HASH_MIN = 256 * 1024;

/**
 * Lowercase hex SHA-256 of `bytes`; large inputs are hashed on libuv's thread pool (WebCrypto), so the
 * main thread keeps decompressing and writing meanwhile.
 *
 * @public
 */
export async function sha256HexAsync(bytes: Uint8Array): Promise<string> {
  return bytesToHex(await sha256Async(bytes));
}

/** Raw 32-byte SHA-256 of `bytes`, on the thread pool for large inputs (see {@link sha256HexAsync}). @public */
export async function sha256Async(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes.byteLength < ASYNC_HASH_MIN) return createHash("sha256").update(bytes).digest();
  return new Uint8Array(await webcrypto.subtle.digest("SHA-256", bytes));
}

/** OCI digest (`sha256:<hex>`) of `bytes`. @public */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${sha256Hex(bytes)}`;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** True when `value` is a well-formed `sha256:<64 lowercase hex>` digest. @public */
export function isSha256Digest(value: unknown): value is string {
  return typeof value === "string" && DIGEST_RE.test(value);
}

/** Returns the hex part of a `sha256:` digest, or throws `ERR_INVALID_ARGUMENT`. @public */
export function digestHex(digest: string): string {
  if (!isSha256Digest(digest)) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `not a sha256 digest: ${JSON.stringify(digest)}`);
  }
  return digest.slice(7);
}

/** Converts 32 raw bytes to lowercase hex. @public */
export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Converts 64 hex characters to 32 bytes, or throws `ERR_INVALID_ARGUMENT`. @public */
export function hexToBytes(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2 !== 0) {
    throw new BlobError("ERR_INVALID_ARGUMENT", "not a hex string");
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}
