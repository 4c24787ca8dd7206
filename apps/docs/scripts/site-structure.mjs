// The site's structure, shared by astro.config.mjs and the tests (plain data, no imports).

/** Published packages whose public `src/index.ts` makes up the API reference (the CLI has its own reference). */
export const API_PACKAGES = [
  "core",
  "registry",
  "http-source",
  "cache-disk",
  "cache-redis",
  "conformance",
  "policy-sigstore",
  "policy-opa",
];

/** The guides, in sidebar order (test/site.integration.test.ts checks each is reachable from the sidebar). */
export const GUIDES = [
  "guides/creating-archives",
  "guides/push-pull",
  "guides/reading-lazily",
  "guides/extraction",
  "guides/caching",
  "guides/custom-source-cache",
  "guides/signing",
  "guides/rego-policies",
  "guides/oci-layouts",
];
