// The blobkit documentation site: Starlight + starlight-typedoc (API reference from TSDoc) + Pagefind (offline
// search, bundled by Starlight). Built offline by `node scripts/build.mjs` (telemetry off).
import starlight from "@astrojs/starlight";
import { defineConfig } from "astro/config";
import starlightTypeDoc, { typeDocSidebarGroup } from "starlight-typedoc";
import { API_PACKAGES, GUIDES } from "./scripts/site-structure.mjs";
import { syncContent } from "./scripts/sync-content.mjs";

// Copy docs/cli.md, docs/benchmarks.md and docs/format.md into the content collection (also for `astro dev`).
syncContent();

export default defineConfig({
  site: process.env.DOCS_SITE ?? "https://blobkit.dev",
  // No smart punctuation: CLI flags in prose (`every --tag`) must not become en dashes.
  markdown: { smartypants: false },
  integrations: [
    starlight({
      title: "blobkit",
      description:
        "File archives in OCI registries, read lazily: one range request per file, every byte verified against a signed manifest.",
      lastUpdated: false,
      pagination: true,
      tableOfContents: { minHeadingLevel: 2, maxHeadingLevel: 3 },
      plugins: [
        starlightTypeDoc({
          entryPoints: API_PACKAGES.map((name) => `../../packages/${name}/src/index.ts`),
          tsconfig: "./tsconfig.typedoc.json",
          output: "api",
          sidebar: { label: "API reference", collapsed: true, readmeLabel: "Overview" },
          typeDoc: {
            plugin: ["./scripts/typedoc-module-names.mjs"],
            name: "API reference",
            readme: "./src/api-overview.md",
            disableSources: true,
            excludePrivate: true,
            excludeInternal: true,
          },
        }),
      ],
      sidebar: [
        { label: "Home", link: "/" },
        {
          label: "Getting started",
          items: ["getting-started/library", "getting-started/cli"],
        },
        { label: "Guides", items: GUIDES },
        {
          label: "Reference",
          items: ["reference/cli", typeDocSidebarGroup],
        },
        {
          label: "Architecture",
          items: ["architecture/overview", "architecture/format"],
        },
        "compatibility",
        "performance",
        "troubleshooting",
      ],
    }),
  ],
});
