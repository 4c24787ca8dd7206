/** How one file's bytes are stored in the data blob. @public */
export type Compression = "none" | "zstd";

/**
 * One regular file of an archive, as the index describes it.
 *
 * @public
 */
export interface IndexEntry {
  /** Relative `/`-separated path (valid archive path). */
  readonly path: string;
  /** Byte offset of the stored bytes in the data blob. */
  readonly offset: number;
  /** Stored (possibly compressed) length in the data blob. */
  readonly storedSize: number;
  /** Uncompressed length: the file's size. */
  readonly size: number;
  /** SHA-256 of the uncompressed content, lowercase hex (64 characters). */
  readonly sha256: string;
  /** Permission bits (0o777 at most). */
  readonly mode: number;
  /** Owner user id captured at creation (never applied on extraction). */
  readonly uid: number;
  /** Owner group id captured at creation (never applied on extraction). */
  readonly gid: number;
  /** Modification time in nanoseconds since the Unix epoch. */
  readonly mtimeNs: bigint;
  /** `"none"` (raw bytes) or `"zstd"` (one zstd frame). */
  readonly compression: Compression;
}

/**
 * What the index encoder needs per entry: like {@link IndexEntry} but the hash may be raw bytes.
 *
 * @public
 */
export interface IndexEntryInput extends Omit<IndexEntry, "sha256"> {
  /** SHA-256 of the uncompressed content: 32 bytes or 64 lowercase hex characters. */
  readonly sha256: Uint8Array | string;
}
