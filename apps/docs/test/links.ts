// A link checker over a built static site: every internal href/src must resolve to a file of the site, and
// every #fragment to an element id (or <a name>) of the target page. External links are only listed.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

export interface BrokenLink {
  /** Site path of the page holding the link, e.g. `/guides/caching/`. */
  page: string;
  href: string;
  problem: string;
}

export interface LinkReport {
  pages: number;
  /** Internal links checked (including fragments). */
  checked: number;
  broken: BrokenLink[];
  /** External URLs (other origins, mailto:…), deduplicated and sorted; not fetched. */
  external: string[];
}

const ORIGIN = "http://site.invalid";

function htmlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...htmlFiles(path));
    else if (entry.name.endsWith(".html")) out.push(path);
  }
  return out;
}

/** `guides/a/index.html` → `/guides/a/`; `404.html` → `/404.html`. */
export function sitePath(root: string, file: string): string {
  const rel = relative(root, file).split("\\").join("/");
  return `/${rel.endsWith("index.html") ? rel.slice(0, -"index.html".length) : rel}`;
}

function decodeEntities(text: string): string {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec: string) => String.fromCodePoint(Number(dec)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;|&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** Attributes of every start tag named in `tags`, in document order. */
export function tagAttributes(
  html: string,
  tags: readonly string[],
): { tag: string; attrs: Map<string, string> }[] {
  // Drop comments and the bodies of script/style elements: their text is not markup.
  const markup = html
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/(<(script|style)\b[^>]*>)[\s\S]*?(<\/\2>)/gi, "$1$3");
  const out: { tag: string; attrs: Map<string, string> }[] = [];
  const tagPattern = new RegExp(`<(${tags.join("|")})\\b((?:[^>"']|"[^"]*"|'[^']*')*)>`, "gi");
  for (const m of markup.matchAll(tagPattern)) {
    const attrs = new Map<string, string>();
    for (const a of (m[2] ?? "").matchAll(/([^\s=/>]+)(?:\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
      const name = (a[1] ?? "").toLowerCase();
      if (!attrs.has(name)) attrs.set(name, decodeEntities(a[3] ?? a[4] ?? a[5] ?? ""));
    }
    out.push({ tag: (m[1] ?? "").toLowerCase(), attrs });
  }
  return out;
}

/** Every `id` (any element) and `name` (on `<a>`) of a page. */
export function anchorsOf(html: string): Set<string> {
  const ids = new Set<string>();
  const markup = html.replace(/<!--[\s\S]*?-->/g, "");
  for (const m of markup.matchAll(/<([a-zA-Z][\w:-]*)\b((?:[^>"']|"[^"]*"|'[^']*')*)>/g)) {
    for (const a of (m[2] ?? "").matchAll(/\s(id|name)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))/gi)) {
      if ((a[1] ?? "").toLowerCase() === "name" && (m[1] ?? "").toLowerCase() !== "a") continue;
      ids.add(decodeEntities(a[3] ?? a[4] ?? a[5] ?? ""));
    }
  }
  return ids;
}

/** The file a site path is served from, as a static server (and our test server) resolves it. */
export function resolveFile(root: string, pathname: string): string | undefined {
  const clean = pathname.replace(/\/+/g, "/");
  const candidates = clean.endsWith("/")
    ? [join(root, clean, "index.html")]
    : [join(root, clean), join(root, clean, "index.html"), join(root, `${clean}.html`)];
  return candidates.find((c) => c.startsWith(root) && existsSync(c) && statSync(c).isFile());
}

/**
 * Checks every page under `root`. Absolute URLs on `site` (the configured production origin: canonical,
 * sitemap and Open Graph links) are checked as internal links.
 */
export function checkLinks(root: string, site?: string): LinkReport {
  const siteOrigin = site === undefined ? undefined : new URL(site).origin;
  const files = htmlFiles(root);
  const anchorCache = new Map<string, Set<string>>();
  const anchors = (file: string): Set<string> => {
    let set = anchorCache.get(file);
    if (set === undefined) {
      set = anchorsOf(readFileSync(file, "utf8"));
      anchorCache.set(file, set);
    }
    return set;
  };
  const broken: BrokenLink[] = [];
  const external = new Set<string>();
  let checked = 0;
  for (const file of files) {
    const page = sitePath(root, file);
    const html = readFileSync(file, "utf8");
    for (const { tag, attrs } of tagAttributes(html, [
      "a",
      "link",
      "img",
      "script",
      "source",
      "iframe",
      "area",
    ])) {
      const attr = tag === "a" || tag === "link" || tag === "area" ? "href" : "src";
      const href = attrs.get(attr);
      if (href === undefined) continue;
      if (tag === "link" && /\b(preconnect|dns-prefetch)\b/.test(attrs.get("rel") ?? "")) continue;
      let url: URL;
      try {
        url = new URL(href, `${ORIGIN}${page}`);
      } catch {
        broken.push({ page, href, problem: "not a valid URL" });
        continue;
      }
      if (siteOrigin !== undefined && url.origin === siteOrigin)
        url = new URL(`${url.pathname}${url.hash}`, ORIGIN);
      if (url.origin !== ORIGIN) {
        external.add(href);
        continue;
      }
      checked += 1;
      let pathname: string;
      try {
        pathname = decodeURIComponent(url.pathname);
      } catch {
        broken.push({ page, href, problem: "malformed percent-encoding" });
        continue;
      }
      const target = resolveFile(root, pathname);
      if (target === undefined) {
        broken.push({ page, href, problem: `no file for ${pathname}` });
        continue;
      }
      const fragment = url.hash === "" ? "" : decodeURIComponent(url.hash.slice(1));
      if (fragment !== "" && target.endsWith(".html") && !anchors(target).has(fragment)) {
        broken.push({ page, href, problem: `no element with id "${fragment}" in ${sitePath(root, target)}` });
      }
    }
  }
  return { pages: files.length, checked, broken, external: [...external].sort() };
}
