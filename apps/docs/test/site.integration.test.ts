// Builds the documentation site, checks every internal link and anchor, serves it on loopback and drives it in
// headless Debian Chromium (playwright-core): landing page, every guide through the sidebar, offline search.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GUIDES } from "../scripts/site-structure.mjs";
import { checkLinks } from "./links.ts";
import { contentRoot, docsRoot } from "./samples.ts";
import { buildSite, launchChromium, serve } from "./site.ts";

const output = join(docsRoot, "test-output");
/** The production origin the build uses (astro.config.mjs: DOCS_SITE, default https://blobkit.dev). */
const SITE = process.env.DOCS_SITE ?? "https://blobkit.dev";
const dist = join(output, "site");

let server: Awaited<ReturnType<typeof serve>> | undefined;
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
let context: BrowserContext;
const pageErrors: string[] = [];

function titleOf(page: string): string {
  const text = readFileSync(join(contentRoot, `${page}.mdx`), "utf8");
  const title = /^title:\s*(.+)$/m.exec(text)?.[1]?.trim();
  if (title === undefined) throw new Error(`${page}.mdx has no title`);
  return title.replace(/^["']|["']$/g, "");
}

async function open(path: string): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(`${path}: ${error.message}`));
  const response = await page.goto(`${server?.url}${path}`, { waitUntil: "load" });
  expect(response?.status(), path).toBe(200);
  return page;
}

beforeAll(async () => {
  mkdirSync(output, { recursive: true });
  rmSync(dist, { recursive: true, force: true });
  const { ms } = await buildSite(dist);
  console.log(`docs site built in ${(ms / 1000).toFixed(1)} s`);
  server = await serve(dist);
  browser = await launchChromium();
  context = browser.context;
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe("the built site", () => {
  it("has no broken internal links or anchors", () => {
    const report = checkLinks(dist, SITE);
    console.log(
      `link check: ${report.pages} pages, ${report.checked} internal links, ${report.external.length} external URLs (not fetched):\n  ${report.external.join("\n  ")}`,
    );
    expect(report.pages).toBeGreaterThan(50);
    expect(report.broken).toEqual([]);
  });

  it("renders the landing page (hero, features) and saves a screenshot", async () => {
    const page = await open("/");
    expect(await page.title()).toContain("blobkit");
    await expect
      .poll(() => page.locator("h1").first().textContent())
      .toContain("File archives in OCI registries");
    for (const feature of ["Lazy reads", "Verified files", "Signed provenance", "Pluggable caches"]) {
      expect(await page.getByText(feature, { exact: true }).first().isVisible(), feature).toBe(true);
    }
    await page.screenshot({ path: join(output, "landing.png"), fullPage: true });
    await page.close();
  });

  it("reaches every guide through the sidebar navigation", async () => {
    const page = await open("/getting-started/library/");
    const sidebar = page.locator('nav[aria-label="Main"]');
    for (const section of ["Getting started", "Guides", "Reference", "Architecture"]) {
      expect(await sidebar.getByText(section, { exact: true }).count(), section).toBeGreaterThan(0);
    }
    for (const path of ["/compatibility/", "/performance/", "/troubleshooting/", "/reference/cli/"]) {
      expect(await sidebar.locator(`a[href="${path}"]`).count(), path).toBe(1);
    }
    const listed = await sidebar
      .locator('a[href^="/guides/"]')
      .evaluateAll((links) => links.map((a) => a.getAttribute("href")));
    expect(listed).toEqual(GUIDES.map((g) => `/${g}/`));
    for (const guide of GUIDES) {
      const link = page.locator(`nav[aria-label="Main"] a[href="/${guide}/"]`);
      await link.scrollIntoViewIfNeeded();
      await Promise.all([page.waitForURL(`**/${guide}/`), link.click()]);
      await expect.poll(() => page.locator("h1#_top").textContent()).toBe(titleOf(guide));
      expect(await page.locator(`nav[aria-label="Main"] a[aria-current="page"]`).getAttribute("href")).toBe(
        `/${guide}/`,
      );
    }
    await page.close();
  });

  it.each([
    ["HttpSource", "/api/blobkit/http-source/classes/httpsource/"],
    ["parseReference", "/api/blobkit/registry/functions/parsereference/"],
  ])("search for %s finds its API page (Pagefind, offline)", async (query, expected) => {
    const page = await open("/guides/reading-lazily/");
    await page.locator("button[data-open-modal]").first().click();
    const input = page
      .locator("dialog[open] input[type=search], dialog[open] .pagefind-ui__search-input")
      .first();
    await input.fill(query);
    const result = page.locator(`.pagefind-ui__result-link[href^="${expected}"]`).first();
    await result.waitFor({ state: "visible", timeout: 30_000 });
    await Promise.all([page.waitForURL(`**${expected}`), result.click()]);
    await expect.poll(() => page.locator("h1#_top").textContent()).toBe(query);
    await page.close();
  });

  it("serves the 404 page for unknown paths", async () => {
    const page = await context.newPage();
    const response = await page.goto(`${server?.url}/no/such/page/`);
    expect(response?.status()).toBe(404);
    expect(await page.locator("h1").first().textContent()).toContain("page not found");
    await page.close();
  });

  it("raised no JavaScript errors in the pages visited", () => {
    expect(pageErrors).toEqual([]);
  });
});
