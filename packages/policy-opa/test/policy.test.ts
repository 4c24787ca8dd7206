import { Client } from "@blobkit/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type OpaEvaluator,
  type OpaInput,
  opaPolicy,
  type VerifiedAttestation,
  wasmEvaluator,
} from "../src/index.ts";
import { type ArchiveFixture, abiDouble, archiveFixture, statement } from "./support.ts";

/** An evaluator that records its input and returns `decision`. */
function recording(decision: unknown = { allow: true }) {
  const inputs: OpaInput[] = [];
  const evaluator: OpaEvaluator = {
    name: "recording",
    evaluate: async (input) => {
      inputs.push(structuredClone(input));
      return decision;
    },
  };
  return { evaluator, inputs };
}

describe("opaPolicy", () => {
  let fixture: ArchiveFixture;
  beforeAll(async () => {
    fixture = await archiveFixture();
  });
  afterAll(async () => {
    await fixture?.close();
  });

  it("builds the documented input document", async () => {
    const { evaluator, inputs } = recording();
    const { context } = fixture;
    expect(await opaPolicy({ evaluator }).evaluate(context)).toEqual({ allow: true, reasons: [] });
    const created = context.manifest.annotations["org.opencontainers.image.created"];
    expect(created).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(inputs[0]).toEqual({
      reference: context.reference,
      manifest: {
        reference: context.reference,
        digest: context.descriptor.digest,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: "application/vnd.meigma.blob.v1",
        annotations: { "org.example.team": "payments", "org.opencontainers.image.created": created },
        created,
        size: context.descriptor.size,
      },
      index: {
        digest: context.manifest.index.digest,
        size: context.manifest.index.size,
        fileCount: 3,
        totalSize: 16,
        storedSize: expect.any(Number),
      },
      attestations: [],
    });
  });

  it("fetches the index once per index digest, and not at all with index: false", async () => {
    const { evaluator, inputs } = recording();
    const before = fixture.fetches();
    const policy = opaPolicy({ evaluator });
    await policy.evaluate(fixture.context);
    await policy.evaluate(fixture.context);
    expect(fixture.fetches() - before).toBe(1);
    await opaPolicy({ evaluator, index: false }).evaluate(fixture.context);
    expect(fixture.fetches() - before).toBe(1);
    expect(inputs.at(-1)?.index).toBeNull();
  });

  it("denies when the index is larger than maxIndexBytes, without fetching it", async () => {
    const before = fixture.fetches();
    const decision = await opaPolicy({ evaluator: recording().evaluator, maxIndexBytes: 8 }).evaluate(
      fixture.context,
    );
    expect(decision.allow).toBe(false);
    expect(decision.reasons?.[0]).toMatch(/index of sha256:.* is \d+ bytes, more than the 8/);
    expect(fixture.fetches()).toBe(before);
  });

  it("passes verified attestations bound to the manifest", async () => {
    const { evaluator, inputs } = recording();
    const digest = fixture.context.descriptor.digest;
    const attestation: VerifiedAttestation = {
      predicateType: "https://slsa.dev/provenance/v1",
      statement: statement(digest, "https://slsa.dev/provenance/v1", { buildDefinition: { buildType: "x" } }),
      signer: {
        subject: "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1",
        issuer: "gh",
      },
    };
    const policy = opaPolicy({ evaluator, attestations: async () => [attestation] });
    expect((await policy.evaluate(fixture.context)).allow).toBe(true);
    expect(inputs[0]?.attestations).toEqual([
      {
        _type: "https://in-toto.io/Statement/v1",
        predicateType: "https://slsa.dev/provenance/v1",
        subject: [{ name: "archive", digest: { sha256: digest.slice(7) } }],
        predicate: { buildDefinition: { buildType: "x" } },
        signer: attestation.signer,
      },
    ]);
  });

  it("denies (or drops, when asked) attestations not bound to this manifest", async () => {
    const digest = fixture.context.descriptor.digest;
    const other = `sha256:${"ab".repeat(32)}`;
    const bound = { predicateType: "https://slsa.dev/provenance/v1", statement: statement(digest) };
    const bad: VerifiedAttestation[] = [
      { predicateType: "https://slsa.dev/provenance/v1", statement: statement(other) },
      { predicateType: "https://slsa.dev/provenance/v1", statement: statement(digest, "https://evil/v1") },
      { predicateType: "https://slsa.dev/provenance/v1", statement: { ...statement(digest), subject: "x" } },
      { predicateType: "https://slsa.dev/provenance/v1", statement: "not a statement" },
    ];
    for (const attestation of bad) {
      const { evaluator, inputs } = recording();
      const denied = await opaPolicy({ evaluator, attestations: async () => [bound, attestation] }).evaluate(
        fixture.context,
      );
      expect(denied.allow).toBe(false);
      expect(denied.reasons?.[0]).toMatch(/attestation 1 is not usable/);
      expect(inputs).toHaveLength(0);

      const dropping = opaPolicy({
        evaluator,
        attestations: async () => [bound, attestation],
        unboundAttestations: "drop",
      });
      expect((await dropping.evaluate(fixture.context)).allow).toBe(true);
      expect(inputs[0]?.attestations).toHaveLength(1);
    }
  });

  it("fails closed when the attestation provider or the evaluator throws", async () => {
    const provider = opaPolicy({
      evaluator: recording().evaluator,
      attestations: async () => {
        throw new Error("rekor unreachable");
      },
    });
    expect(await provider.evaluate(fixture.context)).toEqual({
      allow: false,
      reasons: ["recording: evaluation failed: rekor unreachable"],
    });
    const throwing: OpaEvaluator = { name: "boom", evaluate: async () => Promise.reject("a string") };
    expect(await opaPolicy({ evaluator: throwing }).evaluate(fixture.context)).toEqual({
      allow: false,
      reasons: ["boom: evaluation failed: a string"],
    });
  });

  it("denies on timeout, also when the evaluator ignores its signal", async () => {
    const hanging: OpaEvaluator = { name: "hanging", evaluate: () => new Promise(() => {}) };
    const started = Date.now();
    expect(await opaPolicy({ evaluator: hanging, timeoutMs: 100 }).evaluate(fixture.context)).toEqual({
      allow: false,
      reasons: ["hanging: timed out after 100 ms"],
    });
    expect(Date.now() - started).toBeLessThan(2000);
    // A synchronous evaluation that overran is judged after it returns.
    const slowSync: OpaEvaluator = {
      name: "busy",
      evaluate: async () => {
        const until = performance.now() + 60;
        while (performance.now() < until) {}
        return { allow: true };
      },
    };
    expect(await opaPolicy({ evaluator: slowSync, timeoutMs: 30 }).evaluate(fixture.context)).toEqual({
      allow: false,
      reasons: ["busy: timed out after 30 ms"],
    });
  });

  it("rejects with the caller's abort reason", async () => {
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const hanging: OpaEvaluator = { name: "hanging", evaluate: () => new Promise(() => {}) };
    const pending = opaPolicy({ evaluator: hanging }).evaluate({
      ...fixture.context,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(reason), 20);
    await expect(pending).rejects.toBe(reason);
    await expect(
      opaPolicy({ evaluator: hanging }).evaluate({ ...fixture.context, signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
  });

  it("validates its options", () => {
    const { evaluator } = recording();
    expect(() => opaPolicy({} as never)).toThrow(/needs an evaluator/);
    expect(() => opaPolicy({ evaluator, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => opaPolicy({ evaluator, maxIndexBytes: -1 })).toThrow(/maxIndexBytes/);
    expect(() => opaPolicy({ evaluator, entrypoint: "" })).toThrow(/entrypoint/);
    expect(() => opaPolicy({ evaluator, unboundAttestations: "keep" as never })).toThrow(
      /unboundAttestations/,
    );
  });

  it("gates Client pulls end to end (OCI layout, wasm ABI double)", async () => {
    const wasm = await abiDouble(2);
    const allowing = new Client({ policies: [opaPolicy({ evaluator: wasmEvaluator({ wasm, data: [] }) })] });
    const denying = new Client({
      policies: [opaPolicy({ name: "rego", evaluator: wasmEvaluator({ wasm, data: ["not approved"] }) })],
    });
    try {
      const archive = await allowing.pull(fixture.reference);
      expect(await archive.readFile("hello.txt", { encoding: "utf8" })).toBe("hello");
      await archive.close();
      await expect(denying.pull(fixture.reference)).rejects.toMatchObject({
        code: "ERR_POLICY",
        message: expect.stringMatching(/policy rego denied .*: not approved$/),
      });
    } finally {
      await allowing.close();
      await denying.close();
    }
  });
});
