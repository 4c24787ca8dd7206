// Extracts the ```ts code samples of the documentation pages and type-checks them against the workspace
// packages (their TypeScript sources, through the `source` export condition) with the repository's
// TypeScript 7 compiler. Used by samples.test.ts.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const docsRoot: string = join(dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot: string = join(docsRoot, "..", "..");
export const contentRoot: string = join(docsRoot, "src", "content", "docs");

/** Pages that are generated or copied at build time: not ours to check here. */
const GENERATED = ["api/", "reference/cli.md", "performance.md", "architecture/format.md"];

export interface Sample {
  /** Page path relative to src/content/docs, e.g. `guides/caching.mdx`. */
  page: string;
  /** 1-based index of the ```ts block on its page. */
  block: number;
  /** 1-based line of the block's first code line in the page. */
  line: number;
  code: string;
  /** The fence's meta string (e.g. `nocheck`, `title="x.ts"`). */
  meta: string;
}

/** Every hand-written documentation page (md / mdx), relative to src/content/docs, sorted. */
export function pages(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const rel = relative(contentRoot, path).split("\\").join("/");
      if (GENERATED.some((g) => (g.endsWith("/") ? rel.startsWith(g) : rel === g))) continue;
      if (entry.isDirectory()) walk(path);
      else if (/\.mdx?$/.test(entry.name)) out.push(rel);
    }
  };
  walk(contentRoot);
  return out.sort();
}

/** The ```ts / ```typescript blocks of a Markdown text. */
export function extractSamples(page: string, markdown: string): Sample[] {
  const lines = markdown.split("\n");
  const samples: Sample[] = [];
  let open: { fence: string; meta: string; start: number; body: string[] } | undefined;
  let block = 0;
  for (const [i, line] of lines.entries()) {
    if (open === undefined) {
      const m = /^\s*(`{3,}|~{3,})\s*(ts|typescript)(?:\s+(.*))?$/.exec(line);
      if (m !== undefined && m !== null) {
        open = { fence: m[1] ?? "```", meta: (m[3] ?? "").trim(), start: i + 2, body: [] };
      } else if (/^\s*(`{3,}|~{3,})/.test(line)) {
        // Another language: skip to its closing fence so its content is not mistaken for fences.
        const fence = /^\s*(`{3,}|~{3,})/.exec(line)?.[1] ?? "```";
        const close = lines.findIndex((l, j) => j > i && l.trim() === fence);
        if (close > i) lines.fill("", i + 1, close + 1);
      }
      continue;
    }
    if (line.trim() === open.fence) {
      block += 1;
      samples.push({ page, block, line: open.start, code: open.body.join("\n"), meta: open.meta });
      open = undefined;
    } else {
      open.body.push(line);
    }
  }
  if (open !== undefined) throw new Error(`${page}: unclosed code fence opened on line ${open.start - 1}`);
  return samples;
}

export function allSamples(): Sample[] {
  return pages().flatMap((page) => extractSamples(page, readFileSync(join(contentRoot, page), "utf8")));
}

/** True when the fence asks not to be type-checked (```ts nocheck): signatures, deliberately partial code. */
export function isUnchecked(sample: Sample): boolean {
  return /(^|\s)nocheck(\s|$)/.test(sample.meta);
}

export interface Diagnostic {
  sample: Sample;
  /** Line in the page. */
  line: number;
  column: number;
  message: string;
}

/**
 * Writes every checked sample as its own module under `dir` (inside apps/docs, so `@blobkit/*` resolve from its
 * node_modules) and runs the repository's `tsc` over them. Returns the diagnostics mapped back to the pages.
 */
export function typeCheck(
  samples: readonly Sample[],
  dir: string,
): { diagnostics: Diagnostic[]; output: string } {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const byFile = new Map<string, Sample>();
  for (const sample of samples) {
    const name = `${sample.page.replace(/\.mdx?$/, "").replace(/[^a-zA-Z0-9]+/g, "_")}__${sample.block}.ts`;
    byFile.set(name, sample);
    // `export {}` keeps every sample a module (top-level await, no global name clashes between samples).
    writeFileSync(join(dir, name), `${sample.code}\nexport {};\n`);
  }
  const base = relative(dir, join(repoRoot, "tsconfig.base.json")).split("\\").join("/");
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify(
      {
        extends: base,
        compilerOptions: {
          noEmit: true,
          composite: false,
          declaration: false,
          declarationMap: false,
          isolatedDeclarations: false,
          sourceMap: false,
          customConditions: ["source"],
          rootDir: ".",
          types: ["node"],
          lib: ["ES2023", "ESNext.Disposable", "DOM", "DOM.Iterable"],
        },
        include: ["*.ts"],
      },
      null,
      2,
    ),
  );
  const tsc = join(
    dirname(createRequire(join(repoRoot, "package.json")).resolve("typescript/package.json")),
    "bin",
    "tsc",
  );
  const result = spawnSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.json"), "--pretty", "false"], {
    cwd: dir,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;
  const diagnostics: Diagnostic[] = [];
  for (const m of output.matchAll(/^(?:.*[\\/])?([^\\/\s(]+\.ts)\((\d+),(\d+)\): (error .*)$/gm)) {
    const sample = byFile.get(m[1] ?? "");
    if (sample === undefined) continue;
    diagnostics.push({
      sample,
      line: sample.line + Number(m[2]) - 1,
      column: Number(m[3]),
      message: m[4] ?? "",
    });
  }
  if (result.status !== 0 && diagnostics.length === 0) {
    throw new Error(`tsc failed without diagnostics on the samples (status ${result.status}):\n${output}`);
  }
  return { diagnostics, output };
}
