import { readFile } from "node:fs/promises";
import { expect, it } from "vitest";

it("the README's example is the example test file, verbatim", async () => {
  const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
  const example = await readFile(new URL("../test/example/example.test.ts", import.meta.url), "utf8");
  const body = example.slice(example.indexOf("\n") + 1).trim(); // without the first comment line
  const block = /## Use[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]?.trim();
  expect(block).toBe(body);
});
