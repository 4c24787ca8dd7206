// Helpers of the site's integration test: build, a static server on loopback, headless Debian Chromium.
import { spawn } from "node:child_process";
import { createReadStream, existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { resolveFile } from "./links.ts";
import { docsRoot } from "./samples.ts";

export const CHROMIUM: string = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Builds the site into `outDir` with the package's build script (telemetry off, offline). */
export async function buildSite(outDir: string): Promise<{ ms: number; log: string }> {
  const started = Date.now();
  const child = spawn(process.execPath, [join(docsRoot, "scripts", "build.mjs"), "--outDir", outDir], {
    cwd: docsRoot,
    env: { ...process.env, ASTRO_TELEMETRY_DISABLED: "1", FORCE_COLOR: "0", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  if (code !== 0) throw new Error(`docs build failed (exit ${code}):\n${log.slice(-8000)}`);
  return { ms: Date.now() - started, log };
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".xml": "application/xml",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
  ".woff2": "font/woff2",
};

/** Serves `root` on 127.0.0.1 (random port) the way a static host would; unknown paths get 404.html. */
export async function serve(
  root: string,
): Promise<{ url: string; close: () => Promise<void>; requests: string[] }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? "/", "http://127.0.0.1").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    requests.push(pathname);
    const file = pathname.includes("\0") ? undefined : resolveFile(root, pathname);
    const notFound = join(root, "404.html");
    const [status, path] =
      file !== undefined ? [200, file] : existsSync(notFound) ? [404, notFound] : [404, undefined];
    if (path === undefined) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(status, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/**
 * Headless Debian Chromium with the flags this machine's closed network needs, in a fresh profile. Fails
 * loudly (never skips) when the binary is missing.
 */
export async function launchChromium(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\``);
  }
  const profile = mkdtempSync(join(tmpdir(), "blobkit-docs-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      "--disable-dev-shm-usage",
    ],
    timeout: 60_000,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
