// Checks that keep the hand-written pages honest against the code: every error code and exit code is
// documented, every guide is in the sidebar, and the copied pages are rewritten correctly.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { API_PACKAGES, GUIDES } from "../scripts/site-structure.mjs";
import { COPIES, escapePlaceholders, transform } from "../scripts/sync-content.mjs";
import { anchorsOf, tagAttributes } from "./links.ts";
import { contentRoot, pages, repoRoot } from "./samples.ts";

const read = (path: string): string => readFileSync(join(repoRoot, path), "utf8");
const troubleshooting = readFileSync(join(contentRoot, "troubleshooting.mdx"), "utf8");

describe("troubleshooting page", () => {
  it("has a section for every BlobErrorCode in packages/core/src/errors.ts", () => {
    // The members of the `BlobErrorCode` union, one `| "ERR_…"` line each.
    const codes = [...read("packages/core/src/errors.ts").matchAll(/^\s*\|\s*"(ERR_[A-Z_]+)"/gm)].map(
      (m) => m[1],
    );
    expect(codes.length).toBeGreaterThan(20);
    const documented = [...troubleshooting.matchAll(/^### `(ERR_[A-Z_]+)`$/gm)].map((m) => m[1]);
    expect(documented).toEqual(codes); // same codes, same order as the source
  });

  it("lists every exit code of the blob CLI (packages/cli/src/exit-codes.ts)", async () => {
    const { EXIT } = (await import("../../../packages/cli/src/exit-codes.ts")) as {
      EXIT: Record<string, number>;
    };
    const exits = Object.values(EXIT).sort((a, b) => a - b);
    expect(exits).toContain(0);
    const documented = [...troubleshooting.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    expect(documented).toEqual(exits);
  });
});

describe("site structure", () => {
  it("puts every guide page in the sidebar, and only existing pages", () => {
    const guidePages = pages()
      .filter((p) => p.startsWith("guides/"))
      .map((p) => p.replace(/\.mdx?$/, ""));
    expect([...GUIDES].sort()).toEqual(guidePages.sort());
  });

  it("documents every published library package in the API reference", () => {
    for (const name of API_PACKAGES)
      expect(existsSync(join(repoRoot, "packages", name, "src", "index.ts")), name).toBe(true);
  });

  it("copies generated pages from the repository instead of holding hand-written copies", () => {
    expect(COPIES.map((c) => c.from)).toEqual(["docs/cli.md", "docs/benchmarks.md", "docs/format.md"]);
  });
});

describe("copied pages", () => {
  it("drop the H1 and point repository links at site pages (or plain text)", () => {
    const md =
      "# Title\n\nSee [the format](format.md#limits), [bench](../docs/benchmarks.md), [a file](../packages/core/src/x.ts), [web](https://x.dev/a) and [here](#y).\n";
    expect(transform("docs/cli.md", md)).toBe(
      "See [the format](/architecture/format/#limits), [bench](/performance/), a file, [web](https://x.dev/a) and [here](#y).\n",
    );
  });

  it("escape <placeholders> outside code so they are not swallowed as HTML", () => {
    const md =
      "### blob push [options] <ref> <dir>\n\n`<ref>` and <br> stay\n\n```sh\nblob cat <ref>\n```\n| `ref` | oci:<dir>[:tag] |";
    expect(escapePlaceholders(md)).toBe(
      "### blob push [options] &lt;ref&gt; &lt;dir&gt;\n\n`<ref>` and <br> stay\n\n```sh\nblob cat <ref>\n```\n| `ref` | oci:&lt;dir&gt;[:tag] |",
    );
  });
});

describe("link checker parsing", () => {
  it("reads ids, <a name> and attributes, ignoring scripts and comments", () => {
    const html = `<h2 id="a&amp;b">x</h2><a name=top></a><!-- <a href="/c"> --><script>"<a href='/d'>"</script><a class="x" href='/e?q=1#f'>e</a>`;
    expect([...anchorsOf(html)].sort()).toEqual(["a&b", "top"]);
    expect(tagAttributes(html, ["a"]).map((t) => t.attrs.get("href"))).toEqual([undefined, "/e?q=1#f"]);
  });
});
