import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { allSamples, docsRoot, extractSamples, isUnchecked, typeCheck } from "./samples.ts";

describe("code samples", () => {
  it("extracts ```ts blocks with their page, block number and line", () => {
    const md = [
      "# t",
      "```sh",
      "```ts",
      "```",
      "",
      "```ts nocheck",
      "let a = 1;",
      "```",
      "```ts",
      "b();",
      "```",
    ].join("\n");
    const samples = extractSamples("x.mdx", md);
    expect(samples.map((s) => [s.block, s.line, s.code, isUnchecked(s)])).toEqual([
      [1, 7, "let a = 1;", true],
      [2, 10, "b();", false],
    ]);
  });

  it("every ```ts sample in the guides type-checks against the packages (TypeScript 7, source condition)", () => {
    const samples = allSamples();
    const checked = samples.filter((s) => !isUnchecked(s));
    // The guides are code-heavy; a drop here means the extraction broke, not that the docs lost samples.
    expect(checked.length).toBeGreaterThan(30);
    expect(samples.length - checked.length).toBeLessThanOrEqual(3); // `nocheck` only sparingly
    const { diagnostics } = typeCheck(checked, join(docsRoot, "test-output", "samples"));
    const report = diagnostics.map(
      (d) =>
        `src/content/docs/${d.sample.page}:${d.line}:${d.column} (ts block ${d.sample.block}): ${d.message}`,
    );
    expect(report).toEqual([]);
  }, 120_000);
});
