/**
 * The subset of JSON Schema the CLI documents its JSON output with, and a validator for it (used by the tests
 * and available to users who want to check a document).
 */

/** A JSON Schema (draft 2020-12 subset: type, properties, required, items, enum, additionalProperties). @public */
export interface JsonSchema {
  type?:
    | "object"
    | "array"
    | "string"
    | "integer"
    | "number"
    | "boolean"
    | "null"
    | readonly ("string" | "null" | "integer" | "object")[];
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: readonly string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  enum?: readonly (string | number | boolean)[];
  /** Named definition reused by `$ref: "#/$defs/<name>"`. */
  $defs?: Record<string, JsonSchema>;
  $ref?: string;
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/**
 * Validates `value` against `schema`; returns the list of violations (empty when valid). Objects without
 * `additionalProperties` are closed (extra properties are violations), so a schema cannot silently fall behind.
 *
 * @public
 */
export function validateJson(
  value: unknown,
  schema: JsonSchema,
  root: JsonSchema = schema,
  at = "$",
): string[] {
  if (schema.$ref !== undefined) {
    const name = schema.$ref.replace(/^#\/\$defs\//, "");
    const target = root.$defs?.[name];
    if (target === undefined) return [`${at}: unknown $ref ${schema.$ref}`];
    return validateJson(value, target, root, at);
  }
  const errors: string[] = [];
  const actual = typeOf(value);
  if (schema.type !== undefined) {
    const allowed = typeof schema.type === "string" ? [schema.type] : schema.type;
    const ok = allowed.some((t) => t === actual || (t === "number" && actual === "integer"));
    if (!ok) return [`${at}: expected ${allowed.join("|")}, got ${actual}`];
  }
  if (schema.enum !== undefined && !schema.enum.includes(value as string)) {
    errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (actual === "object") {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in object)) errors.push(`${at}: missing required property ${key}`);
    }
    for (const [key, child] of Object.entries(object)) {
      const sub = schema.properties?.[key];
      if (sub !== undefined) errors.push(...validateJson(child, sub, root, `${at}.${key}`));
      else if (typeof schema.additionalProperties === "object")
        errors.push(...validateJson(child, schema.additionalProperties, root, `${at}.${key}`));
      else if (schema.additionalProperties !== true && schema.properties !== undefined)
        errors.push(`${at}: unexpected property ${key}`);
    }
  }
  if (actual === "array" && schema.items !== undefined) {
    (value as unknown[]).forEach((item, i) => {
      errors.push(...validateJson(item, schema.items as JsonSchema, root, `${at}[${i}]`));
    });
  }
  return errors;
}

// Small builders so the command modules read like a schema table.

/** `{type: "object", properties, required: <every key without a trailing ?>}`. */
export function object(properties: Record<string, JsonSchema>, description?: string): JsonSchema {
  const props: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [key, schema] of Object.entries(properties)) {
    const optional = key.endsWith("?");
    const name = optional ? key.slice(0, -1) : key;
    props[name] = schema;
    if (!optional) required.push(name);
  }
  return {
    type: "object",
    properties: props,
    required,
    ...(description === undefined ? {} : { description }),
  };
}

export const string = (description?: string): JsonSchema => ({
  type: "string",
  ...(description ? { description } : {}),
});
export const integer = (description?: string): JsonSchema => ({
  type: "integer",
  ...(description ? { description } : {}),
});
export const number = (description?: string): JsonSchema => ({
  type: "number",
  ...(description ? { description } : {}),
});
export const boolean = (description?: string): JsonSchema => ({
  type: "boolean",
  ...(description ? { description } : {}),
});
export const array = (items: JsonSchema, description?: string): JsonSchema => ({
  type: "array",
  items,
  ...(description ? { description } : {}),
});
export const oneOf = (values: readonly string[], description?: string): JsonSchema => ({
  type: "string",
  enum: values,
  ...(description ? { description } : {}),
});
export const stringMap = (description?: string): JsonSchema => ({
  type: "object",
  additionalProperties: { type: "string" },
  ...(description ? { description } : {}),
});

/** Descriptor of a referrer (signature / attestation) as printed by `inspect` and `verify`. */
export const referrerSchema: JsonSchema = object({
  digest: string(),
  mediaType: string(),
  artifactType: { type: ["string", "null"] },
  size: integer(),
  "annotations?": stringMap(),
});

/** The error document printed on stderr in JSON mode. @public */
export const errorSchema: JsonSchema = object({
  error: object({
    code: string(
      "stable code: a BlobError code (ERR_NOT_FOUND…), ERR_USAGE, ERR_INTERRUPTED, ERR_POLICY_SPEC…",
    ),
    message: string(),
    exitCode: integer(),
  }),
});
