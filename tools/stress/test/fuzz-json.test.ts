import {
  ANNOTATION_CREATED,
  createManifest,
  isBlobError,
  isSha256Digest,
  MEDIA_TYPE_DATA,
  MEDIA_TYPE_INDEX,
  parseManifest,
  sha256Digest,
} from "@blobkit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseLayoutIndex } from "../../../packages/registry/src/layout/index-file.ts";
import { parseDescriptorList } from "../../../packages/registry/src/oci.ts";
import { fuzz, InvariantError, mutatedBytes } from "./support/fuzz.ts";
import { jsonDocumentArb } from "./support/json-arbs.ts";

// Fuzzing of the JSON parsers of untrusted registry documents: the archive manifest (core parseManifest),
// the referrers / tag-schema index (registry parseDescriptorList) and an OCI layout's index.json (registry
// parseLayoutIndex). Inputs are JSON-level mutations of valid documents (values replaced by wrong types,
// huge or fractional numbers, keys deleted, `__proto__`/`constructor` keys added, array items duplicated),
// byte mutations of their text, arbitrary JSON and raw bytes.

const encoder = new TextEncoder();
const digestOf = (s: string): string => sha256Digest(encoder.encode(s));
const fail = (what: string): never => {
  throw new InvariantError(what);
};

function manifestSeeds(): { docs: unknown[]; bytes: Uint8Array[] } {
  const docs: unknown[] = [];
  const bytes: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    const m = createManifest({
      index: { digest: digestOf(`i${i}`), size: i * 100 },
      data: { digest: digestOf(`d${i}`), size: i * 1000 + 1 },
      annotations: i % 3 === 0 ? {} : { "org.example.k": `v${i}`, "a<&>": "\u2028" },
      created: i % 2 === 0 ? new Date(1_700_000_000_000 + i * 1000) : "not a date",
    });
    docs.push(m.json);
    bytes.push(m.bytes);
  }
  return { docs, bytes };
}

function indexSeeds(): { docs: unknown[]; bytes: Uint8Array[] } {
  const docs: unknown[] = [];
  for (let i = 0; i < 20; i++) {
    docs.push({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: Array.from({ length: i % 4 }, (_, j) => ({
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: digestOf(`m${i}.${j}`),
        size: 500 + j,
        ...(j % 2 === 0 ? { artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json" } : {}),
        ...(j === 1 ? { annotations: { "org.opencontainers.image.ref.name": `v${j}`, x: "y" } } : {}),
      })),
    });
  }
  return { docs, bytes: docs.map((d) => encoder.encode(JSON.stringify(d))) };
}

describe("JSON parsers of registry documents", () => {
  it("parseManifest: a valid archive manifest or ERR_INVALID_MANIFEST / ERR_INTEGRITY", () => {
    const { docs, bytes } = manifestSeeds();
    const arbitrary = fc.tuple(jsonDocumentArb(docs, mutatedBytes(bytes, 4)), fc.boolean());
    const report = fuzz({
      parser: "parseManifest",
      arbitrary,
      call: ([input, withDigest]) => {
        const m = parseManifest(input, withDigest ? { expectedDigest: sha256Digest(input) } : {});
        if (m.index.mediaType !== MEDIA_TYPE_INDEX || m.data.mediaType !== MEDIA_TYPE_DATA)
          fail("wrong layer types");
        for (const d of [m.index, m.data]) {
          if (!isSha256Digest(d.digest)) fail("bad digest accepted");
          if (!Number.isSafeInteger(d.size) || d.size < 0) fail("bad size accepted");
          for (const v of Object.values(d.annotations ?? {}))
            if (typeof v !== "string") fail("non-string annotation");
        }
        for (const v of Object.values(m.annotations))
          if (typeof v !== "string") fail("non-string annotation");
        if (m.digest !== sha256Digest(input)) fail("digest is not the hash of the bytes");
        const created = m.annotations[ANNOTATION_CREATED];
        if (m.created !== undefined && (typeof created !== "string" || Number.isNaN(m.created.getTime())))
          fail("created parsed from nothing or invalid Date");
      },
    });
    expect(report.distinctCrashes).toEqual([]);
    expect(report.hangs).toBe(0);
  });

  it("parseDescriptorList (referrers index): descriptors or ERR_INVALID_MANIFEST", () => {
    const { docs, bytes } = indexSeeds();
    const report = fuzz({
      parser: "parseDescriptorList",
      arbitrary: jsonDocumentArb(docs, mutatedBytes(bytes, 4)),
      call: (input) => {
        let list: ReturnType<typeof parseDescriptorList>;
        try {
          list = parseDescriptorList(input, "referrers of sha256:x");
        } catch (error) {
          if (isBlobError(error) && error.code !== "ERR_INVALID_MANIFEST")
            fail(`unexpected code ${error.code}`);
          throw error;
        }
        for (const d of list) {
          if (typeof d.mediaType !== "string" || !isSha256Digest(d.digest)) fail("bad descriptor accepted");
          if (!Number.isSafeInteger(d.size) || d.size < 0) fail("bad size accepted");
          if (d.annotations !== undefined) {
            if (Object.getPrototypeOf(d.annotations) !== Object.prototype)
              fail("annotations prototype was replaced");
            for (const v of Object.values(d.annotations))
              if (typeof v !== "string") fail("non-string annotation");
          }
        }
      },
    });
    expect(report.distinctCrashes).toEqual([]);
    expect(report.hangs).toBe(0);
  });

  it("parseLayoutIndex (oci layout index.json): an index or ERR_INVALID_MANIFEST", () => {
    const { docs, bytes } = indexSeeds();
    const report = fuzz({
      parser: "parseLayoutIndex",
      arbitrary: jsonDocumentArb(docs, mutatedBytes(bytes, 4)),
      call: (input) => {
        const index = parseLayoutIndex(input, "index.json");
        for (const d of index.manifests) {
          if (typeof d.mediaType !== "string" || d.mediaType === "") fail("bad mediaType accepted");
          if (!Number.isSafeInteger(d.size) || d.size < 0) fail("bad size accepted");
        }
      },
    });
    expect(report.distinctCrashes).toEqual([]);
    expect(report.hangs).toBe(0);
  });
});
