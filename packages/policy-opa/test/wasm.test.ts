import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isBlobError } from "@blobkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OpaInput, opaPolicy, readWasmBundle, wasmEvaluator } from "../src/index.ts";
import { type ArchiveFixture, abiDouble, archiveFixture, tarGz, tempDir } from "./support.ts";

// The real @open-policy-agent/opa-wasm SDK drives an OPA Wasm ABI test double (test/abi-double.wat, compiled
// with wabt here). It is not Rego: it proves the SDK wiring, the input document, result-set handling and the
// fail-closed paths. Rego semantics are only covered by rego.test.ts, where an `opa` binary exists.

const input = (extra: Record<string, unknown> = {}): OpaInput =>
  ({
    reference: "oci:/x:v1@sha256:00",
    manifest: { digest: "sha256:00", annotations: { ünï: "cödé" } },
    index: null,
    attestations: [],
    ...extra,
  }) as unknown as OpaInput;
const options = (entrypoint: string) => ({ entrypoint, signal: new AbortController().signal });

describe.each([2, 1] as const)("wasmEvaluator with the ABI double, ABI 1.%i", (minor) => {
  let wasm: Uint8Array;
  beforeAll(async () => {
    wasm = await abiDouble(minor);
  });

  it("hands the input document to the policy and returns the result verbatim", async () => {
    const evaluator = wasmEvaluator({ wasm, data: ["no"] });
    const doc = input({ index: { fileCount: 3 } });
    const result = await evaluator.evaluate(doc, options("blob/policy"));
    expect(result).toEqual({ allow: true, deny: ["no"], input: doc });
    expect(await evaluator.entrypoints()).toMatchObject({ "blob/policy": 0, data: 1 });
  });

  it("returns the data-chosen decision and undefined for an empty result set", async () => {
    const evaluator = wasmEvaluator({ wasm, data: { allow: false, deny: ["x"] } });
    expect(await evaluator.evaluate(input(), options("data"))).toEqual({ allow: false, deny: ["x"] });
    expect(await evaluator.evaluate(input(), options("undefined"))).toBeUndefined();
  });

  it("rejects on a trap and on opa_abort, then recovers with a fresh instance", async () => {
    const evaluator = wasmEvaluator({ wasm, data: [] });
    await expect(evaluator.evaluate(input(), options("trap"))).rejects.toThrow(/unreachable/);
    await expect(evaluator.evaluate(input(), options("abort"))).rejects.toThrow(
      "opa wasm: test double abort",
    );
    expect(await evaluator.evaluate(input(), options("blob/policy"))).toMatchObject({
      allow: true,
      deny: [],
    });
  });

  it("rejects an unknown entrypoint with a hint", async () => {
    const evaluator = wasmEvaluator({ wasm });
    await expect(evaluator.evaluate(input(), options("acme/allow"))).rejects.toThrow(
      /no entrypoint "acme\/allow".*opa build -t wasm -e acme\/allow/,
    );
  });

  it("denies when the input outgrows maxMemoryBytes", async () => {
    const evaluator = wasmEvaluator({ wasm, data: [], maxMemoryBytes: 6 * 65536 });
    const huge = input({ manifest: { annotations: { big: "x".repeat(512 * 1024) } } });
    await expect(evaluator.evaluate(huge, options("blob/policy"))).rejects.toThrow();
    expect(await evaluator.evaluate(input(), options("blob/policy"))).toMatchObject({ allow: true });
  });
});

describe("wasm policies and bundles", () => {
  let fixture: ArchiveFixture;
  let wasm: Uint8Array;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    [fixture, wasm, temp] = await Promise.all([archiveFixture(), abiDouble(2), tempDir()]);
  });
  afterAll(async () => {
    await fixture?.close();
    await temp?.remove();
  });

  it("opaPolicy applies the decision rule to what the wasm policy computed from the real input", async () => {
    let seen: unknown;
    const inner = wasmEvaluator({ wasm, data: [] });
    const spy = {
      name: inner.name,
      evaluate: async (i: OpaInput, o: never) => (seen = await inner.evaluate(i, o)),
    };
    expect(await opaPolicy({ evaluator: spy }).evaluate(fixture.context)).toEqual({
      allow: true,
      reasons: [],
    });
    const echoed = (seen as { input: OpaInput }).input;
    expect(echoed.manifest.digest).toBe(fixture.context.descriptor.digest);
    expect(echoed.index).toMatchObject({ fileCount: 3, totalSize: 16 });

    const denied = opaPolicy({
      evaluator: wasmEvaluator({ wasm, data: ["archive not signed"] }),
      name: "rego",
    });
    expect(await denied.evaluate(fixture.context)).toEqual({ allow: false, reasons: ["archive not signed"] });
  });

  it.each([
    ["an undefined decision", "undefined", "the policy decision is undefined"],
    ["a trap", "trap", "evaluation failed: RuntimeError: unreachable"],
    ["opa_abort", "abort", "evaluation failed: opa wasm: test double abort"],
    ["an unknown entrypoint", "nope", 'no entrypoint "nope"'],
  ])("opaPolicy denies on %s", async (_, entrypoint, reason) => {
    const policy = opaPolicy({ evaluator: wasmEvaluator({ wasm }), entrypoint });
    const decision = await policy.evaluate(fixture.context);
    expect(decision.allow).toBe(false);
    expect(decision.reasons?.join("\n")).toContain(reason);
  });

  it("loads policy.wasm and data.json from a bundle tarball, by bytes and by path", async () => {
    const bundle = tarGz({
      "/.manifest": JSON.stringify({
        revision: "r1",
        roots: [""],
        wasm: [{ entrypoint: "blob/policy", module: "/policy.wasm" }],
      }),
      "/data.json": JSON.stringify({ allow: true }),
      "/policy.wasm": wasm,
    });
    const read = await readWasmBundle(bundle);
    expect(read.data).toEqual({ allow: true });
    expect(read.manifest).toMatchObject({ revision: "r1" });
    expect(Buffer.from(read.wasm).equals(Buffer.from(wasm))).toBe(true);

    const path = join(temp.dir, "bundle.tar.gz");
    await writeFile(path, bundle);
    for (const source of [bundle, path]) {
      const evaluator = wasmEvaluator({ wasm: source });
      await evaluator.ready();
      expect(await evaluator.evaluate(input(), options("data"))).toEqual({ allow: true });
      expect(await opaPolicy({ evaluator, entrypoint: "data" }).evaluate(fixture.context)).toMatchObject({
        allow: true,
      });
    }
    // `data` replaces the bundle's data.json.
    const overridden = wasmEvaluator({ wasm: bundle, data: { allow: false } });
    expect(await overridden.evaluate(input(), options("data"))).toEqual({ allow: false });
  });

  it("loads a bare policy.wasm from a path; a missing file denies and is retried later", async () => {
    const path = join(temp.dir, "later.wasm");
    const evaluator = wasmEvaluator({ wasm: path, data: { allow: true } });
    const policy = opaPolicy({ evaluator, entrypoint: "data" });
    const missing = await policy.evaluate(fixture.context);
    expect(missing.allow).toBe(false);
    expect(missing.reasons?.[0]).toContain("cannot read OPA policy");
    await writeFile(path, wasm);
    expect(await policy.evaluate(fixture.context)).toEqual({ allow: true, reasons: [] });
  });

  it("refuses malformed and oversized bundles with typed errors", async () => {
    const cases: [Uint8Array, string, RegExp][] = [
      [tarGz({ "/data.json": "{}" }), "ERR_INVALID_ARGUMENT", /no \/policy.wasm/],
      [tarGz({ "/policy.wasm": wasm, "/data.json": "{nope" }), "ERR_INVALID_ARGUMENT", /not valid JSON/],
      [tarGz({ "/policy.wasm": wasm, "/a/data.json": "{}" }), "ERR_UNSUPPORTED", /nested data/],
      [tarGz({ "/policy.wasm": wasm, "/other.wasm": wasm }), "ERR_UNSUPPORTED", /second wasm module/],
      [tarGz({ "/policy.wasm": "not wasm" }), "ERR_INVALID_ARGUMENT", /invalid policy.wasm/],
      [new Uint8Array([0x1f, 0x8b, 1, 2, 3]), "ERR_INVALID_ARGUMENT", /not a gzip/],
      [new TextEncoder().encode("package blob.policy"), "ERR_INVALID_ARGUMENT", /neither a wasm module nor/],
      [
        tarGz({ "/policy.wasm": wasm, "/big.bin": new Uint8Array(200_000) }),
        "ERR_LIMIT_EXCEEDED",
        /more than/,
      ],
    ];
    for (const [bytes, code, pattern] of cases) {
      const error = await wasmEvaluator({ wasm: bytes, maxBundleBytes: 100_000 })
        .ready()
        .catch((e: unknown) => e);
      expect(isBlobError(error, code as never), `${pattern}: ${String(error)}`).toBe(true);
      expect((error as Error).message).toMatch(pattern);
    }
    // A corrupted tar header is caught by its checksum.
    const { gunzipSync, gzipSync } = await import("node:zlib");
    const tar = gunzipSync(tarGz({ "/policy.wasm": wasm }));
    tar[10] = 0x41;
    await expect(readWasmBundle(gzipSync(tar))).rejects.toThrow(/bad checksum/);
  });
});
