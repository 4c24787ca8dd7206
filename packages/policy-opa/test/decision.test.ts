import { describe, expect, it } from "vitest";
import { opaDecision } from "../src/index.ts";

describe("opaDecision (the decision rule)", () => {
  it("allows only allow === true with an empty or absent deny set", () => {
    expect(opaDecision({ allow: true })).toEqual({ allow: true, reasons: [] });
    expect(opaDecision({ allow: true, deny: [] })).toEqual({ allow: true, reasons: [] });
  });

  it("denies with the deny messages, whatever allow says", () => {
    expect(opaDecision({ allow: true, deny: ["unsigned", "too big"] })).toEqual({
      allow: false,
      reasons: ["unsigned", "too big"],
    });
    expect(opaDecision({ deny: [{ code: 7 }, 3] })).toEqual({ allow: false, reasons: ['{"code":7}', "3"] });
  });

  it("bounds the number and length of reasons", () => {
    const many = opaDecision({ deny: Array.from({ length: 40 }, (_, i) => `r${i}`) });
    expect(many.reasons).toHaveLength(33);
    expect(many.reasons?.at(-1)).toBe("… and 8 more deny messages");
    const long = opaDecision({ deny: ["x".repeat(5000)] });
    expect(long.reasons?.[0]?.length).toBeLessThan(1010);
  });

  it.each([
    [undefined, "the policy decision is undefined"],
    [null, "the policy decision is null"],
    [true, "the policy decision is boolean true"],
    [[{ allow: true }], "the policy decision is an array"],
    [{}, "allow is undefined"],
    [{ allow: false }, "allow is boolean false, not true"],
    [{ allow: "true" }, 'allow is the string "true", not true'],
    [{ allow: 1 }, "allow is number 1, not true"],
    [{ allow: true, deny: true }, "deny is boolean true, not a set"],
    [{ allow: true, deny: {} }, "deny is an object, not a set"],
    [{ allow: true, deny: "no" }, 'deny is the string "no", not a set'],
  ])("denies %j (fail closed)", (result, reason) => {
    const decision = opaDecision(result);
    expect(decision.allow).toBe(false);
    expect(decision.reasons?.[0]).toContain(reason);
  });
});
