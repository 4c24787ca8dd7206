import { BlobError } from "@blobkit/core";

/** Media type of an OCI image index (what `index.json` is). @internal */
export const MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/** Annotation that names a tag in an image layout's `index.json`. @internal */
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";

/** `index.json` larger than this is refused (`ERR_LIMIT_EXCEEDED`): it is read whole on every operation. */
export const MAX_INDEX_FILE_SIZE: number = 64 * 1024 * 1024;

/** The OCI digest grammar (`algorithm:encoded`); only `sha256` is supported, others are kept untouched. */
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** True when `value` follows the OCI digest grammar (any algorithm). @internal */
export function isOciDigest(value: unknown): value is string {
  return typeof value === "string" && value.length <= 1024 && DIGEST_GRAMMAR.test(value);
}

/**
 * One descriptor of `index.json`, kept as the parsed object so that fields this store does not know
 * (`platform`, `urls`, …, written by other tools) survive a rewrite.
 *
 * @internal
 */
export interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

/** A parsed `index.json`: the whole document (unknown top-level fields kept) and its validated entries. */
export interface LayoutIndex {
  doc: Record<string, unknown>;
  manifests: IndexEntry[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function bad(subject: string, message: string): never {
  throw new BlobError("ERR_INVALID_MANIFEST", `malformed image layout index ${subject}: ${message}`, {
    reason: "bad-layout-index",
    subject,
  });
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** An empty `index.json` document. @internal */
export function emptyLayoutIndex(): LayoutIndex {
  return { doc: { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] }, manifests: [] };
}

/**
 * Parses and validates `index.json`: an OCI image index (schemaVersion 2, the index media type when present)
 * whose descriptors each have a media type, a digest in the OCI grammar and a non-negative safe-integer size,
 * with string annotations.
 *
 * @throws BlobError `ERR_INVALID_MANIFEST` (reason `bad-layout-index`).
 * @internal
 */
export function parseLayoutIndex(bytes: Uint8Array, subject: string): LayoutIndex {
  let doc: unknown;
  try {
    doc = JSON.parse(fatalDecoder.decode(bytes));
  } catch {
    bad(subject, "not UTF-8 JSON");
  }
  if (!isRecord(doc)) bad(subject, "not a JSON object");
  if (doc.schemaVersion !== 2) bad(subject, `schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  if (doc.mediaType !== undefined && doc.mediaType !== MEDIA_TYPE_OCI_INDEX) {
    bad(subject, `mediaType ${JSON.stringify(doc.mediaType)} is not ${MEDIA_TYPE_OCI_INDEX}`);
  }
  // Go writers marshal an empty slice as null.
  const list = doc.manifests ?? [];
  if (!Array.isArray(list)) bad(subject, "manifests is not an array");
  const manifests: IndexEntry[] = [];
  list.forEach((value: unknown, i: number) => {
    const where = `manifests[${i}]`;
    if (!isRecord(value)) bad(subject, `${where} is not an object`);
    if (typeof value.mediaType !== "string" || value.mediaType === "")
      bad(subject, `${where} has no mediaType`);
    if (!isOciDigest(value.digest))
      bad(subject, `${where} digest ${JSON.stringify(value.digest)} is malformed`);
    if (typeof value.size !== "number" || !Number.isSafeInteger(value.size) || value.size < 0) {
      bad(subject, `${where} size ${JSON.stringify(value.size)} is not a non-negative integer`);
    }
    if (value.artifactType !== undefined && typeof value.artifactType !== "string") {
      bad(subject, `${where} artifactType is not a string`);
    }
    if (value.annotations !== undefined && value.annotations !== null) {
      if (!isRecord(value.annotations)) bad(subject, `${where} annotations is not an object`);
      for (const v of Object.values(value.annotations)) {
        if (typeof v !== "string") bad(subject, `${where} has a non-string annotation`);
      }
    }
    manifests.push(value as IndexEntry);
  });
  return { doc, manifests };
}

/** Serializes `index` (compact JSON, like skopeo and oras write it). @internal */
export function serializeLayoutIndex(index: LayoutIndex): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ ...index.doc, manifests: index.manifests }));
}

/** The tag of an entry, if it has one. @internal */
export function refName(entry: IndexEntry): string | undefined {
  const name = entry.annotations?.[ANNOTATION_REF_NAME];
  return typeof name === "string" ? name : undefined;
}

function withoutRefName(entry: IndexEntry): void {
  if (entry.annotations === undefined || entry.annotations === null) return;
  delete entry.annotations[ANNOTATION_REF_NAME];
  if (Object.keys(entry.annotations).length === 0) delete entry.annotations;
}

/**
 * Adds an untagged entry for `entry.digest` unless the index already lists that digest. Returns whether the
 * index changed.
 *
 * @internal
 */
export function addUntagged(index: LayoutIndex, entry: IndexEntry): boolean {
  if (index.manifests.some((e) => e.digest === entry.digest)) return false;
  const added: IndexEntry = { ...entry };
  withoutRefName(added);
  index.manifests.push(added);
  return true;
}

/**
 * Points `tag` at `entry.digest`, in place, as one atomic rewrite of the index:
 * - every other entry carrying `tag` loses its `ref.name`, and is dropped when its digest is still listed by
 *   another entry (otherwise it stays, untagged, so the manifest is not lost);
 * - an entry that already has the tag and digest is kept (duplicates of it are dropped); else an untagged
 *   entry of the digest takes the tag; else a new entry is appended.
 * Returns whether the index changed.
 *
 * @internal
 */
export function setTag(index: LayoutIndex, entry: IndexEntry, tag: string): boolean {
  const before = JSON.stringify(index.manifests);
  const affected = new Set<string>([entry.digest]);
  for (const e of index.manifests) {
    if (refName(e) === tag && e.digest !== entry.digest) {
      withoutRefName(e);
      affected.add(e.digest);
    }
  }
  let target = index.manifests.find((e) => e.digest === entry.digest && refName(e) === tag);
  if (target === undefined) {
    target = index.manifests.find((e) => e.digest === entry.digest && refName(e) === undefined);
    if (target !== undefined) {
      target.annotations = { ...(target.annotations ?? {}), [ANNOTATION_REF_NAME]: tag };
    }
  }
  if (target === undefined) {
    index.manifests.push({
      ...entry,
      annotations: { ...(entry.annotations ?? {}), [ANNOTATION_REF_NAME]: tag },
    });
  }
  // Normalize the digests this touched (others' entries are left as their writers made them): an untagged
  // entry only exists to keep a manifest listed, so it goes when a tagged entry of its digest remains; of
  // several untagged entries, or several with the same tag, the first stays.
  const tagged = new Set(index.manifests.filter((e) => refName(e) !== undefined).map((e) => e.digest));
  const seen = new Set<string>();
  index.manifests = index.manifests.filter((e) => {
    if (!affected.has(e.digest)) return true;
    const name = refName(e);
    if (name === undefined && tagged.has(e.digest)) return false;
    const key = `${e.digest}\0${name ?? ""}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return JSON.stringify(index.manifests) !== before;
}

/** Removes every entry of `digest` (tags included). Returns how many were removed. @internal */
export function removeDigest(index: LayoutIndex, digest: string): number {
  const before = index.manifests.length;
  index.manifests = index.manifests.filter((e) => e.digest !== digest);
  return before - index.manifests.length;
}
