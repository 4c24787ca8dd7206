import fc from "fast-check";

/** Values that break naive JSON consumers: wrong types, huge and fractional numbers, prototype keys. */
export const hostileJsonValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom<unknown>(
      null,
      -1,
      0,
      1.5,
      2 ** 53,
      2 ** 53 + 2,
      1e308,
      -0,
      "",
      "sha256:",
      `sha256:${"0".repeat(64)}`,
      `sha256:${"A".repeat(64)}`,
      `sha512:${"0".repeat(128)}`,
      "application/vnd.meigma.blob.index.v1+flatbuffers",
      "application/vnd.meigma.blob.data.v1",
      "application/vnd.oci.image.manifest.v1+json",
      "application/vnd.meigma.blob.v1",
      [],
      {},
      { __proto__: null },
      "__proto__",
      "constructor",
      true,
      false,
      "2026-01-24T10:30:00Z",
      "9999-99-99T99:99:99Z",
      "2026-02-29T00:00:00.123456789+23:59",
    ),
  },
);

type Json = unknown;
type Path = (string | number)[];

function paths(value: Json, prefix: Path, out: Path[]): void {
  out.push(prefix);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) paths(value[i], [...prefix, i], out);
  } else if (value !== null && typeof value === "object")
    for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
}

/** One JSON-level edit at the `at`-th node (pre-order) of a document. */
export type JsonEdit =
  | { kind: "replace"; at: number; value: unknown }
  | { kind: "delete"; at: number }
  | { kind: "add"; at: number; key: string; value: unknown }
  | { kind: "dup"; at: number };

export const jsonEditArb: fc.Arbitrary<JsonEdit> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), value: hostileJsonValue }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("add" as const),
      at: fc.nat(),
      key: fc.oneof(
        fc.constantFrom(
          "__proto__",
          "constructor",
          "toString",
          "size",
          "digest",
          "mediaType",
          "annotations",
          "layers",
        ),
        fc.string({ maxLength: 6 }),
      ),
      value: hostileJsonValue,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("dup" as const), at: fc.nat() }) },
);

// Generated values may be shared constants: never insert the same object twice.
const clone = (v: unknown): unknown =>
  v === null || typeof v !== "object" ? v : (JSON.parse(JSON.stringify(v)) as unknown);

/** Applies edits to a deep copy of `doc`. */
export function applyJsonEdits(doc: Json, edits: readonly JsonEdit[]): Json {
  let root = JSON.parse(JSON.stringify(doc)) as Json;
  for (const edit of edits) {
    const all: Path[] = [];
    paths(root, [], all);
    const path = all[edit.at % all.length]!;
    if (path.length === 0) {
      if (edit.kind === "replace") root = clone(edit.value);
      continue;
    }
    let parent = root as Record<string | number, unknown>;
    for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>;
    const last = path[path.length - 1]!;
    const target = parent[last];
    switch (edit.kind) {
      case "replace":
        parent[last] = clone(edit.value);
        break;
      case "delete":
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete parent[last];
        break;
      case "add":
        if (target !== null && typeof target === "object" && !Array.isArray(target)) {
          // defineProperty: a "__proto__" key must become an own property, as JSON.parse makes it.
          Object.defineProperty(target, edit.key, {
            value: clone(edit.value),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else if (Array.isArray(target)) target.push(clone(edit.value));
        break;
      case "dup":
        if (Array.isArray(parent)) parent.splice(Number(last), 0, JSON.parse(JSON.stringify(target ?? null)));
        break;
    }
  }
  return root;
}

const encoder = new TextEncoder();

/**
 * Inputs for a JSON parser: JSON-level mutations of valid documents, byte mutations of their text (via
 * `bytesOf`), arbitrary JSON, and raw bytes.
 */
export function jsonDocumentArb(
  seeds: readonly Json[],
  byteMutations: fc.Arbitrary<Uint8Array>,
): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    {
      weight: 10,
      arbitrary: fc
        .tuple(fc.nat(seeds.length - 1), fc.array(jsonEditArb, { minLength: 1, maxLength: 4 }))
        .map(([i, edits]) => encoder.encode(JSON.stringify(applyJsonEdits(seeds[i], edits)) ?? "null")),
    },
    { weight: 4, arbitrary: byteMutations },
    { weight: 2, arbitrary: fc.json({ maxDepth: 3 }).map((s) => encoder.encode(s)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 128 }) },
    {
      weight: 1,
      arbitrary: fc.string({ maxLength: 64, unit: "binary" }).map((s) => encoder.encode(s)),
    },
  );
}
