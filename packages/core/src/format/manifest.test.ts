import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type BlobErrorCode, isBlobError } from "../errors.ts";
import { ArchiveIndex } from "./archive-index.ts";
import { encodeIndex } from "./index-codec.ts";
import {
  checkManifestAgainstIndex,
  createManifest,
  goString,
  type ParseManifestOptions,
  parseManifest,
  parseRfc3339,
} from "./manifest.ts";
import { ANNOTATION_CREATED, MEDIA_TYPE_DATA, MEDIA_TYPE_INDEX } from "./media-types.ts";

const sha = (b: string | Uint8Array): string => createHash("sha256").update(b).digest("hex");
const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function expectReject(
  bytes: Uint8Array,
  code: BlobErrorCode,
  reason: string,
  options?: ParseManifestOptions,
): void {
  let error: unknown;
  try {
    parseManifest(bytes, options);
  } catch (e) {
    error = e;
  }
  expect(isBlobError(error), `expected a BlobError, got ${String(error)}`).toBe(true);
  expect([(error as { code: string }).code, (error as { reason: string }).reason]).toEqual([code, reason]);
}

describe("createManifest", () => {
  it("produces exactly Go encoding/json's bytes", () => {
    const m = createManifest({
      index: { digest: A, size: 1234 },
      data: { digest: B, size: 5678 },
      annotations: {
        "z.key": "<tag> & \u2028\u2029",
        "a.key": 'x"y\\z\n\t\r\b\f\u0001\u001f\u007f\u00e9\u{1f600}/',
        "\u00e9.key": "\ud800",
      },
      created: new Date("2026-01-24T10:30:00.789Z"),
    });
    // Hand-derived from Go's rules (reference §1.1): struct field order, compact, annotation keys sorted by
    // bytes, HTML-safe escaping (\u003c \u003e \u0026), U+2028/2029 escaped, \b \f short forms (Go ≥ 1.22),
    // other controls as lowercase \u00xx, DEL and non-ASCII literal, '/' not escaped, invalid UTF-16 → \ufffd.
    const expected =
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",' +
      '"artifactType":"application/vnd.meigma.blob.v1",' +
      '"config":{"mediaType":"application/vnd.oci.empty.v1+json",' +
      '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},' +
      `"layers":[{"mediaType":"application/vnd.meigma.blob.index.v1+flatbuffers","digest":"${A}","size":1234},` +
      `{"mediaType":"application/vnd.meigma.blob.data.v1","digest":"${B}","size":5678}],` +
      '"annotations":{' +
      String.raw`"a.key":"x\"y\\z\n\t\r\b\f\u0001\u001f` +
      "\u007f\u00e9\u{1f600}/" +
      '",' +
      '"org.opencontainers.image.created":"2026-01-24T10:30:00Z",' +
      String.raw`"z.key":"\u003ctag\u003e \u0026 \u2028\u2029",` +
      '"\u00e9.key":"\\ufffd"}}';
    expect(new TextDecoder().decode(m.bytes)).toBe(expected);
    expect(m.digest).toBe(`sha256:${sha(m.bytes)}`);
    // The object form parses to the same value.
    expect(JSON.parse(expected)).toEqual({
      ...m.json,
      annotations: { ...(m.json as { annotations: object }).annotations, "\u00e9.key": "\ufffd" },
    });
  });

  it("lets a user created annotation win, accepts a created string, defaults to now", () => {
    const base = { index: { digest: A, size: 1 }, data: { digest: B, size: 2 } };
    const user = createManifest({
      ...base,
      annotations: { [ANNOTATION_CREATED]: "x" },
      created: new Date(0),
    });
    expect(parseManifest(user.bytes).annotations[ANNOTATION_CREATED]).toBe("x");
    const str = createManifest({ ...base, created: "2020-01-01T00:00:00Z" });
    expect(parseManifest(str.bytes).created?.toISOString()).toBe("2020-01-01T00:00:00.000Z");
    const before = Math.floor(Date.now() / 1000) * 1000;
    const now = parseManifest(createManifest(base).bytes).created!.getTime();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now % 1000).toBe(0);
  });

  it("rejects bad digests, sizes and dates", () => {
    const good = { digest: A, size: 1 };
    const bad: [object, string][] = [
      [{ index: { digest: "sha256:xyz", size: 1 }, data: good }, "bad-digest"],
      [{ index: good, data: { digest: B, size: -1 } }, "bad-size"],
      [{ index: good, data: { digest: B, size: 1.5 } }, "bad-size"],
      [{ index: good, data: good, created: new Date(Number.NaN) }, "bad-created"],
      [{ index: good, data: good, annotations: { k: 1 } }, "bad-annotations"],
    ];
    for (const [input, reason] of bad) {
      let error: unknown;
      try {
        createManifest(input as Parameters<typeof createManifest>[0]);
      } catch (e) {
        error = e;
      }
      expect(isBlobError(error, "ERR_INVALID_ARGUMENT"), reason).toBe(true);
      expect((error as { reason: string }).reason).toBe(reason);
    }
  });

  it("escapes like Go for every ASCII character", () => {
    for (let c = 0; c < 0x80; c++) {
      const s = String.fromCharCode(c);
      const got = goString(s);
      expect(JSON.parse(got)).toBe(s);
      const mustEscape = c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26;
      expect(got === `"${s}"`, `char ${c}`).toBe(!mustEscape);
    }
  });
});

describe("parseManifest", () => {
  const created = createManifest({
    index: { digest: A, size: 10 },
    data: { digest: B, size: 20 },
    annotations: { note: "hi" },
    created: new Date("2026-01-24T10:30:00Z"),
  });
  const base = (): Record<string, unknown> => JSON.parse(new TextDecoder().decode(created.bytes));
  const bytesOf = (o: unknown): Uint8Array => enc(JSON.stringify(o));
  const withLayers = (layers: unknown): Uint8Array => bytesOf({ ...base(), layers });
  const indexLayer = { mediaType: MEDIA_TYPE_INDEX, digest: A, size: 10 };
  const dataLayer = { mediaType: MEDIA_TYPE_DATA, digest: B, size: 20 };

  it("parses what createManifest writes", () => {
    const m = parseManifest(created.bytes, { expectedDigest: created.digest });
    expect(m.digest).toBe(created.digest);
    expect(m.index).toEqual(indexLayer);
    expect(m.data).toEqual(dataLayer);
    expect(m.annotations).toEqual({ note: "hi", [ANNOTATION_CREATED]: "2026-01-24T10:30:00Z" });
    expect(m.created?.toISOString()).toBe("2026-01-24T10:30:00.000Z");
    expect(m.raw).toBe(created.bytes);
  });

  it("accepts layers in either order, descriptor extras and no annotations", () => {
    const m = parseManifest(withLayers([{ ...dataLayer, annotations: { a: "b" } }, indexLayer]));
    expect(m.index).toEqual(indexLayer);
    expect(m.data).toEqual({ ...dataLayer, annotations: { a: "b" } });
    const noAnn = base();
    delete noAnn.annotations;
    const parsed = parseManifest(bytesOf(noAnn));
    expect(parsed.annotations).toEqual({});
    expect(parsed.created).toBeUndefined();
  });

  it("maps an unparsable created annotation to undefined (like Go's zero time)", () => {
    for (const bad of ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01 00:00:00Z"]) {
      const o = { ...base(), annotations: { [ANNOTATION_CREATED]: bad } };
      expect(parseManifest(bytesOf(o)).created, bad).toBeUndefined();
    }
  });

  const cases: [string, () => Uint8Array, string, ParseManifestOptions?][] = [
    [
      "wrong mediaType",
      () => bytesOf({ ...base(), mediaType: "application/vnd.oci.image.index.v1+json" }),
      "bad-media-type",
    ],
    ["missing mediaType", () => bytesOf({ ...base(), mediaType: undefined }), "bad-media-type"],
    [
      "wrong artifactType",
      () => bytesOf({ ...base(), artifactType: "application/vnd.other" }),
      "bad-artifact-type",
    ],
    ["missing artifactType", () => bytesOf({ ...base(), artifactType: undefined }), "bad-artifact-type"],
    ["schemaVersion 1", () => bytesOf({ ...base(), schemaVersion: 1 }), "bad-schema-version"],
    ["1 layer", () => withLayers([indexLayer]), "layer-count"],
    ["3 layers", () => withLayers([indexLayer, dataLayer, dataLayer]), "layer-count"],
    ["0 layers", () => withLayers([]), "layer-count"],
    ["layers not an array", () => withLayers({ 0: indexLayer }), "bad-layers"],
    ["two index layers", () => withLayers([indexLayer, indexLayer]), "duplicate-layer"],
    ["two data layers", () => withLayers([dataLayer, dataLayer]), "duplicate-layer"],
    [
      "unknown layer type",
      () => withLayers([indexLayer, { ...dataLayer, mediaType: "x" }]),
      "unexpected-layer",
    ],
    ["layer not an object", () => withLayers([indexLayer, "x"]), "bad-descriptor"],
    ["bad digest", () => withLayers([indexLayer, { ...dataLayer, digest: "sha256:1234" }]), "bad-digest"],
    [
      "uppercase digest",
      () => withLayers([indexLayer, { ...dataLayer, digest: B.toUpperCase() }]),
      "bad-digest",
    ],
    [
      "sha512 digest",
      () => withLayers([indexLayer, { ...dataLayer, digest: `sha512:${"a".repeat(128)}` }]),
      "bad-digest",
    ],
    ["negative size", () => withLayers([indexLayer, { ...dataLayer, size: -1 }]), "bad-size"],
    ["fractional size", () => withLayers([indexLayer, { ...dataLayer, size: 1.5 }]), "bad-size"],
    ["string size", () => withLayers([indexLayer, { ...dataLayer, size: "20" }]), "bad-size"],
    ["huge size", () => withLayers([indexLayer, { ...dataLayer, size: 2 ** 60 }]), "bad-size"],
    ["non-string annotation", () => bytesOf({ ...base(), annotations: { a: 1 } }), "bad-annotations"],
    ["config not an object", () => bytesOf({ ...base(), config: "x" }), "bad-config"],
    ["not JSON", () => enc("{not json"), "not-json"],
    ["empty", () => new Uint8Array(0), "not-json"],
    ["invalid UTF-8", () => Uint8Array.of(0x7b, 0xff, 0x7d), "not-utf8"],
    ["array", () => enc("[]"), "not-object"],
    ["null", () => enc("null"), "not-object"],
    ["number", () => enc("2"), "not-object"],
    ["too large", () => created.bytes, "too-large", { maxSize: 100 }],
  ];
  for (const [name, make, reason, options] of cases) {
    it(`rejects: ${name}`, () => expectReject(make(), "ERR_INVALID_MANIFEST", reason, options));
  }

  it("rejects bytes that do not hash to the expected digest", () => {
    expectReject(created.bytes, "ERR_INTEGRITY", "digest-mismatch", { expectedDigest: A });
  });
});

describe("parseRfc3339", () => {
  it("accepts Go's RFC 3339 forms", () => {
    expect(parseRfc3339("2026-01-24T12:30:00+02:00")?.toISOString()).toBe("2026-01-24T10:30:00.000Z");
    expect(parseRfc3339("2026-01-24T10:30:00.123456789Z")?.toISOString()).toBe("2026-01-24T10:30:00.123Z");
    expect(parseRfc3339("2024-02-29T23:59:59-00:30")?.toISOString()).toBe("2024-03-01T00:29:59.000Z");
    expect(parseRfc3339("0001-01-01T00:00:00Z")?.getUTCFullYear()).toBe(1);
  });
  it("rejects everything else", () => {
    for (const s of [
      "2023-02-29T00:00:00Z",
      "2026-01-24t10:30:00z",
      "2026-01-24T24:00:00Z",
      "2026-01-24T10:30:60Z",
      "2026-01-24T10:30:00",
    ]) {
      expect(parseRfc3339(s), s).toBeUndefined();
    }
  });
});

describe("checkManifestAgainstIndex", () => {
  const dataHash = sha("data");
  const index = ArchiveIndex.open(
    encodeIndex({
      entries: [
        {
          path: "f",
          offset: 0,
          storedSize: 4,
          size: 4,
          sha256: sha("f"),
          mode: 0o644,
          uid: 0,
          gid: 0,
          mtimeNs: 0n,
          compression: "none",
        },
      ],
      dataSize: 4,
      dataSha256: dataHash,
    }),
  );
  const manifest = (index_: { digest: string; size: number }, data: { digest: string; size: number }) =>
    parseManifest(createManifest({ index: index_, data }).bytes);
  const goodIndex = { digest: index.digest(), size: index.bytes.length };
  const goodData = { digest: `sha256:${dataHash}`, size: 4 };

  it("passes when everything matches", () => {
    expect(() => checkManifestAgainstIndex(manifest(goodIndex, goodData), index)).not.toThrow();
  });

  const bad: [string, { digest: string; size: number }, { digest: string; size: number }][] = [
    ["index-size-mismatch", { ...goodIndex, size: goodIndex.size + 1 }, goodData],
    ["index-digest-mismatch", { ...goodIndex, digest: A }, goodData],
    ["data-size-mismatch", goodIndex, { ...goodData, size: 5 }],
    ["data-digest-mismatch", goodIndex, { ...goodData, digest: B }],
  ];
  for (const [reason, i, d] of bad) {
    it(`fails with ${reason}`, () => {
      let error: unknown;
      try {
        checkManifestAgainstIndex(manifest(i, d), index);
      } catch (e) {
        error = e;
      }
      expect(isBlobError(error, "ERR_INTEGRITY")).toBe(true);
      expect((error as { reason: string }).reason).toBe(reason);
    });
  }
});
