import { type ArchiveManifest, isBlobError } from "@blobkit/core";
import { describe, expect, it } from "vitest";
import { allOf, anyOf, enforcePolicies, type Policy, type PolicyContext } from "./policy.ts";
import type { OciStore } from "./store.ts";

const context: PolicyContext = {
  reference: "example.com/a:v1@sha256:00",
  descriptor: {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"0".repeat(64)}`,
    size: 1,
  },
  manifest: {} as ArchiveManifest,
  store: {} as OciStore,
};

const allow = (name: string): Policy => ({
  name,
  evaluate: async () => ({ allow: true, reasons: [`${name} ok`] }),
});
const deny = (name: string): Policy => ({
  name,
  evaluate: async () => ({ allow: false, reasons: [`${name} says no`] }),
});
const broken = (name: string): Policy => ({
  name,
  evaluate: async () => {
    throw new Error("boom");
  },
});
const undecided: Policy = { name: "undecided", evaluate: async () => undefined as never };

async function outcome(policy: Policy): Promise<{ allow: boolean; reasons?: string[] | undefined }> {
  return policy.evaluate(context);
}

describe("policy composition", () => {
  it("allOf allows only when all allow and reports the first denial", async () => {
    expect((await outcome(allOf([allow("a"), allow("b")]))).allow).toBe(true);
    expect(await outcome(allOf([allow("a"), deny("b"), deny("c")]))).toEqual({
      allow: false,
      reasons: ["b: b says no"],
    });
    expect((await outcome(allOf([allow("a"), broken("b")]))).reasons).toEqual(["b: b failed: boom"]);
    expect((await outcome(allOf([undecided]))).allow).toBe(false);
    expect((await outcome(allOf([]))).allow).toBe(false);
  });

  it("anyOf allows when one allows and otherwise lists every reason", async () => {
    expect((await outcome(anyOf([deny("a"), allow("b")]))).allow).toBe(true);
    expect(await outcome(anyOf([deny("a"), broken("b")]))).toEqual({
      allow: false,
      reasons: ["a: a says no", "b: b failed: boom"],
    });
    expect((await outcome(anyOf([]))).allow).toBe(false);
  });

  it("enforcePolicies fails closed with ERR_POLICY", async () => {
    await expect(enforcePolicies([allow("a")], context)).resolves.toBeUndefined();
    for (const policy of [deny("d"), broken("x"), undecided, allOf([])]) {
      const error = await enforcePolicies([allow("a"), policy], context).catch((e: unknown) => e);
      expect(isBlobError(error, "ERR_POLICY"), policy.name).toBe(true);
    }
  });

  it("an abort propagates as the signal's reason, not as a denial", async () => {
    const controller = new AbortController();
    const reason = new Error("stop");
    const aborting: Policy = {
      name: "aborting",
      evaluate: async () => {
        controller.abort(reason);
        throw new Error("aborted inside");
      },
    };
    const error = await enforcePolicies([anyOf([aborting])], { ...context, signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect(error).toBe(reason);
  });
});
