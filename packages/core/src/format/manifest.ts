import { isSha256Digest, sha256Digest } from "../digest.ts";
import { BlobError } from "../errors.ts";
import { comparePaths, utf8 } from "../paths.ts";
import type { ArchiveIndex } from "./archive-index.ts";
import {
  ANNOTATION_CREATED,
  ARTIFACT_TYPE_BLOB,
  EMPTY_CONFIG_DIGEST,
  EMPTY_CONFIG_SIZE,
  MEDIA_TYPE_DATA,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
} from "./media-types.ts";

/** An OCI content descriptor as it appears in an archive manifest. @public */
export interface Descriptor {
  /** Media type of the referenced blob. */
  mediaType: string;
  /** `sha256:<hex>` digest of the referenced blob. */
  digest: string;
  /** Length of the referenced blob in bytes. */
  size: number;
  /** Descriptor annotations, when present. */
  annotations?: Record<string, string>;
  /** Descriptor artifact type, when present. */
  artifactType?: string;
}

/** A parsed and validated archive manifest (reference §1.1). @public */
export interface ArchiveManifest {
  /** The exact manifest bytes (what the digest and signatures cover). */
  raw: Uint8Array;
  /** `sha256:<hex>` of {@link ArchiveManifest.raw}. */
  digest: string;
  /** The index layer. */
  index: Descriptor;
  /** The data layer. */
  data: Descriptor;
  /** Manifest annotations (empty object when absent). */
  annotations: Record<string, string>;
  /** The `org.opencontainers.image.created` annotation, or `undefined` when absent or not RFC 3339. */
  created: Date | undefined;
  /** The parsed JSON document. */
  json: unknown;
}

/** A blob reference given to {@link createManifest}. @public */
export interface BlobRef {
  /** `sha256:<hex>` digest. */
  digest: string;
  /** Length in bytes. */
  size: number;
}

/** Input of {@link createManifest}. @public */
export interface CreateManifestInput {
  /** The index blob. */
  index: BlobRef;
  /** The data blob (digest and size as recorded in the index: `data_hash`, `data_size`). */
  data: BlobRef;
  /** Manifest annotations. A `org.opencontainers.image.created` entry here wins over `created`. */
  annotations?: Record<string, string> | undefined;
  /**
   * Creation time for the `org.opencontainers.image.created` annotation: a `Date` (written as RFC 3339 UTC at
   * second precision, like Go) or a string written verbatim. Default: now.
   */
  created?: Date | string | undefined;
}

/** Result of {@link createManifest}. @public */
export interface CreatedManifest {
  /** The manifest bytes, exactly as Go `encoding/json` would produce them. */
  bytes: Uint8Array;
  /** `sha256:<hex>` of `bytes`. */
  digest: string;
  /** The manifest as a plain object (keys in wire order). */
  json: object;
}

/** Options of {@link parseManifest}. @public */
export interface ParseManifestOptions {
  /** When given, the raw bytes must hash to this `sha256:` digest (`ERR_INTEGRITY` otherwise). */
  expectedDigest?: string | undefined;
  /** Largest accepted manifest in bytes. Default 4 MiB (the usual registry limit). */
  maxSize?: number | undefined;
}

/** Default {@link ParseManifestOptions.maxSize}. @public */
export const DEFAULT_MAX_MANIFEST_SIZE: number = 4 * 1024 * 1024;

/**
 * Builds the OCI image manifest of an archive byte-for-byte like meigma/blob's `registry.Push` (Go
 * `encoding/json`: compact, struct field order, sorted annotation keys, `<`, `>`, `&`, U+2028 and U+2029
 * escaped): schemaVersion 2, the OCI manifest media type, artifactType `application/vnd.meigma.blob.v1`, the
 * empty `{}` config, the index layer then the data layer, and the annotations including
 * `org.opencontainers.image.created`.
 *
 * @throws BlobError `ERR_INVALID_ARGUMENT` for malformed digests, sizes, annotations or dates.
 * @public
 */
export function createManifest(input: CreateManifestInput): CreatedManifest {
  const index = blobRef(input.index, "index");
  const data = blobRef(input.data, "data");
  const annotations: Record<string, string> = {};
  for (const [key, value] of Object.entries(input.annotations ?? {})) {
    if (typeof value !== "string") {
      throw new BlobError("ERR_INVALID_ARGUMENT", `annotation ${JSON.stringify(key)} must be a string`, {
        reason: "bad-annotations",
      });
    }
    annotations[key] = value;
  }
  if (annotations[ANNOTATION_CREATED] === undefined) {
    annotations[ANNOTATION_CREATED] = formatCreated(input.created ?? new Date());
  }
  const sortedKeys = Object.keys(annotations).sort(comparePaths);

  const json = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    artifactType: ARTIFACT_TYPE_BLOB,
    config: { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_CONFIG_DIGEST, size: EMPTY_CONFIG_SIZE },
    layers: [
      { mediaType: MEDIA_TYPE_INDEX, digest: index.digest, size: index.size },
      { mediaType: MEDIA_TYPE_DATA, digest: data.digest, size: data.size },
    ],
    annotations: Object.fromEntries(sortedKeys.map((k) => [k, annotations[k]!])),
  };
  const descriptor = (d: { mediaType: string; digest: string; size: number }): string =>
    `{"mediaType":${goString(d.mediaType)},"digest":${goString(d.digest)},"size":${d.size}}`;
  const text =
    `{"schemaVersion":2,"mediaType":${goString(json.mediaType)},"artifactType":${goString(json.artifactType)},` +
    `"config":${descriptor(json.config)},"layers":[${json.layers.map(descriptor).join(",")}],` +
    `"annotations":{${sortedKeys.map((k) => `${goString(k)}:${goString(annotations[k]!)}`).join(",")}}}`;
  const bytes = utf8(text);
  return { bytes, digest: sha256Digest(bytes), json };
}

/**
 * Escapes a string exactly like Go `encoding/json` with HTML escaping on (the `json.Marshal` default, Go ≥
 * 1.22): `"` and `\` backslash-escaped, `\b \f \n \r \t` short forms, other control characters, `<`, `>`, `&`,
 * U+2028 and U+2029 as `\u00xx` / `\u20xx` (lowercase hex), invalid UTF-16 (lone surrogates, which Go would see
 * as invalid UTF-8) as `\ufffd`.
 *
 * @internal
 */
export function goString(s: string): string {
  let out = '"';
  let plainFrom = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c < 0x80) {
      if (c >= 0x20 && c !== 0x22 && c !== 0x5c && c !== 0x3c && c !== 0x3e && c !== 0x26) continue;
      esc = SHORT_ESCAPES[c] ?? `\\u00${c.toString(16).padStart(2, "0")}`;
    } else if (c === 0x2028 || c === 0x2029) {
      esc = c === 0x2028 ? "\\u2028" : "\\u2029";
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      esc = "\\ufffd";
    } else {
      continue;
    }
    out += s.slice(plainFrom, i) + esc;
    plainFrom = i + 1;
  }
  return `${out + s.slice(plainFrom)}"`;
}

const SHORT_ESCAPES: Record<number, string> = {
  34: '\\"',
  92: "\\\\",
  8: "\\b",
  12: "\\f",
  10: "\\n",
  13: "\\r",
  9: "\\t",
};

function blobRef(ref: BlobRef, what: string): BlobRef {
  if (!isSha256Digest(ref?.digest)) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `${what} digest must be sha256:<64 hex>`, {
      reason: "bad-digest",
    });
  }
  if (!Number.isSafeInteger(ref.size) || ref.size < 0) {
    throw new BlobError("ERR_INVALID_ARGUMENT", `${what} size must be a safe integer ≥ 0`, {
      reason: "bad-size",
    });
  }
  return { digest: ref.digest, size: ref.size };
}

function formatCreated(created: Date | string): string {
  if (typeof created === "string") return created;
  const t = created instanceof Date ? created.getTime() : Number.NaN;
  if (!Number.isFinite(t)) {
    throw new BlobError("ERR_INVALID_ARGUMENT", "created must be a valid Date or a string", {
      reason: "bad-created",
    });
  }
  const iso = new Date(Math.floor(t / 1000) * 1000).toISOString();
  // toISOString gives ±YYYYYY outside years 0–9999, which RFC 3339 cannot express.
  if (iso.length !== 24) {
    throw new BlobError("ERR_INVALID_ARGUMENT", "created is outside the years 0000–9999", {
      reason: "bad-created",
    });
  }
  return `${iso.slice(0, 19)}Z`;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$/;

/**
 * Parses an RFC 3339 timestamp the way Go's `time.Parse(time.RFC3339, …)` accepts it (upper-case `T` and `Z`,
 * optional fraction, numeric offset up to ±23:59, real calendar dates, no leap second). Returns `undefined`
 * for anything else. Fractions beyond milliseconds are truncated.
 *
 * @public
 */
export function parseRfc3339(value: string): Date | undefined {
  const m = RFC3339.exec(value);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day > days) return undefined;
  let offsetMinutes = 0;
  if (m[8] !== "Z") {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (oh * 60 + om) * (m[8]!.startsWith("-") ? -1 : 1);
  }
  const ms = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
  const utc = new Date(0);
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(hour, minute, second, ms);
  return new Date(utc.getTime() - offsetMinutes * 60_000);
}

function reject(reason: string, message: string): never {
  throw new BlobError("ERR_INVALID_MANIFEST", `invalid archive manifest: ${message}`, { reason });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined; // Go: null leaves the map nil
  if (!isRecord(value)) reject("bad-annotations", `${where} annotations must be an object`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string")
      reject("bad-annotations", `${where} annotation ${JSON.stringify(k)} is not a string`);
  }
  return value as Record<string, string>;
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) reject("bad-descriptor", `${where} is not an object`);
  const { mediaType, digest, size, annotations, artifactType } = value;
  if (typeof mediaType !== "string") reject("bad-descriptor", `${where} has no mediaType string`);
  if (!isSha256Digest(digest))
    reject("bad-digest", `${where} digest ${JSON.stringify(digest)} is not sha256:<hex>`);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    reject("bad-size", `${where} size ${JSON.stringify(size)} is not a non-negative integer`);
  }
  const d: Descriptor = { mediaType, digest, size };
  const ann = stringMap(annotations, where);
  if (ann !== undefined) d.annotations = ann;
  if (artifactType !== undefined && artifactType !== null) {
    if (typeof artifactType !== "string") reject("bad-descriptor", `${where} artifactType is not a string`);
    d.artifactType = artifactType;
  }
  return d;
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Parses and validates an archive manifest with the acceptance rules of meigma/blob (reference §1.1), plus the
 * structural checks Go gets from typed decoding: OCI manifest media type and `artifactType
 * application/vnd.meigma.blob.v1` exactly, schemaVersion 2, exactly two layers — one index, one data, in any
 * order — with well-formed sha256 digests and non-negative sizes. The `created` annotation becomes a `Date`
 * (or `undefined` when unparsable, as in Go).
 *
 * @throws BlobError `ERR_INVALID_MANIFEST` with a `reason`; `ERR_INTEGRITY` (reason `digest-mismatch`) when
 *   `expectedDigest` does not match.
 * @public
 */
export function parseManifest(bytes: Uint8Array, options: ParseManifestOptions = {}): ArchiveManifest {
  const maxSize = options.maxSize ?? DEFAULT_MAX_MANIFEST_SIZE;
  if (!(bytes instanceof Uint8Array))
    throw new BlobError("ERR_INVALID_ARGUMENT", "manifest must be a Uint8Array");
  if (bytes.length > maxSize) reject("too-large", `${bytes.length} bytes exceeds the ${maxSize}-byte limit`);
  const digest = sha256Digest(bytes);
  if (options.expectedDigest !== undefined) {
    if (!isSha256Digest(options.expectedDigest)) {
      throw new BlobError("ERR_INVALID_ARGUMENT", "expectedDigest must be sha256:<64 hex>");
    }
    if (digest !== options.expectedDigest) {
      throw new BlobError(
        "ERR_INTEGRITY",
        `manifest digest ${digest} does not match ${options.expectedDigest}`,
        {
          reason: "digest-mismatch",
          subject: options.expectedDigest,
        },
      );
    }
  }
  let text: string;
  try {
    text = fatalDecoder.decode(bytes);
  } catch {
    reject("not-utf8", "not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    reject("not-json", "not valid JSON");
  }
  if (!isRecord(json)) reject("not-object", "the JSON document is not an object");
  if (json.schemaVersion !== 2)
    reject("bad-schema-version", `schemaVersion ${JSON.stringify(json.schemaVersion)}`);
  if (json.mediaType !== MEDIA_TYPE_OCI_MANIFEST) {
    reject("bad-media-type", `mediaType ${JSON.stringify(json.mediaType)} is not ${MEDIA_TYPE_OCI_MANIFEST}`);
  }
  if (json.artifactType !== ARTIFACT_TYPE_BLOB) {
    reject(
      "bad-artifact-type",
      `artifactType ${JSON.stringify(json.artifactType)} is not ${ARTIFACT_TYPE_BLOB}`,
    );
  }
  // Go decodes config into a struct (so it must be an object) but never looks inside.
  if (json.config !== undefined && json.config !== null && !isRecord(json.config)) {
    reject("bad-config", "config is not an object");
  }
  if (!Array.isArray(json.layers)) reject("bad-layers", "layers is not an array");
  if (json.layers.length !== 2) reject("layer-count", `${json.layers.length} layers, expected exactly 2`);
  let index: Descriptor | undefined;
  let data: Descriptor | undefined;
  const layers: unknown[] = json.layers;
  for (let i = 0; i < layers.length; i++) {
    const d = parseDescriptor(layers[i], `layers[${i}]`);
    if (d.mediaType === MEDIA_TYPE_INDEX) {
      if (index !== undefined) reject("duplicate-layer", "two index layers");
      index = d;
    } else if (d.mediaType === MEDIA_TYPE_DATA) {
      if (data !== undefined) reject("duplicate-layer", "two data layers");
      data = d;
    } else {
      reject("unexpected-layer", `layers[${i}] has unexpected mediaType ${JSON.stringify(d.mediaType)}`);
    }
  }
  if (index === undefined || data === undefined) reject("layer-count", "missing index or data layer");
  const annotations = stringMap(json.annotations, "manifest") ?? {};
  const createdValue = annotations[ANNOTATION_CREATED];
  return {
    raw: bytes,
    digest,
    index,
    data,
    annotations,
    created: createdValue === undefined ? undefined : parseRfc3339(createdValue),
    json,
  };
}

/**
 * Cross-checks a manifest against the index it references — what Go never checks (reference §1.1/§10.3):
 * the index layer's digest and size must be those of the index bytes, and the data layer's digest and size
 * must equal the index's `data_hash` and `data_size`. Without `data_hash` only the size bound is checked.
 *
 * @throws BlobError `ERR_INTEGRITY` with reason `index-size-mismatch`, `index-digest-mismatch`,
 *   `data-size-mismatch` or `data-digest-mismatch`.
 * @public
 */
export function checkManifestAgainstIndex(manifest: ArchiveManifest, index: ArchiveIndex): void {
  const mismatch = (reason: string, message: string): never => {
    throw new BlobError("ERR_INTEGRITY", `manifest does not match the archive index: ${message}`, { reason });
  };
  if (manifest.index.size !== index.bytes.length) {
    mismatch(
      "index-size-mismatch",
      `index layer size ${manifest.index.size}, index has ${index.bytes.length}`,
    );
  }
  if (manifest.index.digest !== index.digest()) {
    mismatch(
      "index-digest-mismatch",
      `index layer digest ${manifest.index.digest}, index is ${index.digest()}`,
    );
  }
  if (index.dataSha256 === undefined) {
    if (index.dataSize > manifest.data.size) {
      mismatch("data-size-mismatch", `entries reach ${index.dataSize}, data layer has ${manifest.data.size}`);
    }
    return;
  }
  if (manifest.data.size !== index.dataSize) {
    mismatch(
      "data-size-mismatch",
      `data layer size ${manifest.data.size}, index data_size ${index.dataSize}`,
    );
  }
  if (manifest.data.digest !== `sha256:${index.dataSha256}`) {
    mismatch(
      "data-digest-mismatch",
      `data layer digest ${manifest.data.digest}, index data_hash ${index.dataSha256}`,
    );
  }
}
