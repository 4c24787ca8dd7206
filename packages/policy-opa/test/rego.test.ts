import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opaPolicy, wasmEvaluator } from "../src/index.ts";
import { type ArchiveFixture, archiveFixture, statement, tempDir } from "./support.ts";

// Real Rego semantics need the `opa` binary (not packaged for Debian bookworm or npm). Where it is missing these
// tests are skipped — and say so — so CI here covers the evaluator wiring (ABI double, REST stub), not Rego.
const hasOpa = spawnSync("opa", ["version"], { stdio: "ignore" }).status === 0;
if (!hasOpa) console.log("opa binary not found: real-Rego tests skipped");

const POLICY = `package blob.policy

default allow := false

provenance := [a | some a in input.attestations; a.predicateType == "https://slsa.dev/provenance/v1"]

allow if {
  input.index.fileCount <= 100
  count(provenance) > 0
}

deny contains "the archive must belong to the payments team" if {
  input.manifest.annotations["org.example.team"] != "payments"
}

deny contains concat("", ["too many files: ", format_int(input.index.fileCount, 10)]) if {
  input.index.fileCount > 100
}
`;

describe.skipIf(!hasOpa)("real Rego compiled by opa build -t wasm", () => {
  let fixture: ArchiveFixture;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let bundle: string;
  beforeAll(async () => {
    [fixture, temp] = await Promise.all([archiveFixture(), tempDir()]);
    await writeFile(join(temp.dir, "policy.rego"), POLICY);
    bundle = join(temp.dir, "bundle.tar.gz");
    const built = spawnSync(
      "opa",
      ["build", "-t", "wasm", "-e", "blob/policy", "-o", bundle, "policy.rego"],
      {
        cwd: temp.dir,
        encoding: "utf8",
      },
    );
    if (built.status !== 0) throw new Error(`opa build failed: ${built.stderr}`);
  });
  afterAll(async () => {
    await fixture?.close();
    await temp?.remove();
  });

  it("allows with a verified provenance attestation bound to the manifest", async () => {
    const digest = fixture.context.descriptor.digest;
    const policy = opaPolicy({
      evaluator: wasmEvaluator({ wasm: bundle }),
      attestations: async () => [
        { predicateType: "https://slsa.dev/provenance/v1", statement: statement(digest) },
      ],
    });
    expect(await policy.evaluate(fixture.context)).toEqual({ allow: true, reasons: [] });
  });

  it("denies without attestations (allow is false)", async () => {
    const policy = opaPolicy({ evaluator: wasmEvaluator({ wasm: bundle }) });
    expect(await policy.evaluate(fixture.context)).toEqual({
      allow: false,
      reasons: ["allow is boolean false, not true"],
    });
  });

  it("denies with the deny set's messages", async () => {
    const digest = fixture.context.descriptor.digest;
    const evaluator = wasmEvaluator({ wasm: bundle });
    const context = {
      ...fixture.context,
      manifest: { ...fixture.context.manifest, annotations: { "org.example.team": "search" } },
    };
    const policy = opaPolicy({
      evaluator,
      attestations: async () => [
        { predicateType: "https://slsa.dev/provenance/v1", statement: statement(digest) },
      ],
    });
    expect(await policy.evaluate(context)).toEqual({
      allow: false,
      reasons: ["the archive must belong to the payments team"],
    });
  });
});
