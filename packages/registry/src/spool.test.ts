import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { anonymousCredentials, Client } from "./index.ts";
import { createSpool, sweepSpools } from "./spool.ts";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "blobkit-spool-test-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The id of a process that has exited (and so names a spool nobody will remove). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  return child.pid;
}

function spool(root: string, name: string, ageMs = 0): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "data"), "partial data blob");
  if (ageMs > 0) {
    const when = (Date.now() - ageMs) / 1000;
    utimesSync(join(dir, "data"), when, when);
    utimesSync(dir, when, when);
  }
  return dir;
}

const DAY = 24 * 60 * 60 * 1000;

describe("push spools", () => {
  it("sweeps spools of dead processes and stale ones, and nothing else", async () => {
    const root = tempDir();
    const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60_000)"]);
    try {
      const dead = deadPid();
      spool(root, `blobkit-push-${dead}-abc123`);
      spool(root, `blobkit-push-${sleeper.pid}-live01`);
      spool(root, `blobkit-push-${sleeper.pid}-old001`, 2 * DAY); // an id reused after a day: stale
      spool(root, `blobkit-push-${process.pid}-mine01`, 2 * DAY); // this process's own push
      spool(root, "blobkit-push-Xy12ab"); // old naming, recent: may belong to a running push
      spool(root, "blobkit-push-Zz98cd", 2 * DAY); // old naming, stale
      spool(root, "blobkit-pushed-notours");
      writeFileSync(join(root, `blobkit-push-${dead}-file`), "a file, not a spool");

      const removed = await sweepSpools(root);
      expect(removed.sort()).toEqual(
        [`blobkit-push-${dead}-abc123`, `blobkit-push-${sleeper.pid}-old001`, "blobkit-push-Zz98cd"].sort(),
      );
      expect((await readdir(root)).sort()).toEqual(
        [
          `blobkit-push-${sleeper.pid}-live01`,
          `blobkit-push-${process.pid}-mine01`,
          "blobkit-push-Xy12ab",
          "blobkit-pushed-notours",
          `blobkit-push-${dead}-file`,
        ].sort(),
      );
    } finally {
      sleeper.kill();
    }
  });

  it("never throws: a missing temp directory sweeps nothing", async () => {
    expect(await sweepSpools(join(tempDir(), "missing"))).toEqual([]);
  });

  it("names a new spool after this process", async () => {
    const root = tempDir();
    const dir = await createSpool(root);
    expect(dir.startsWith(join(root, `blobkit-push-${process.pid}-`))).toBe(true);
  });

  it("a push removes its own spool and sweeps those of killed pushes", async () => {
    const root = tempDir();
    const source = join(root, "src");
    mkdirSync(source);
    writeFileSync(join(source, "a.txt"), "hello\n");
    const spools = join(root, "tmp");
    mkdirSync(spools);
    spool(spools, `blobkit-push-${deadPid()}-killed`);
    const client = new Client({ credentials: anonymousCredentials, tempDir: spools });
    try {
      await client.push(`oci:${join(root, "layout")}:v1`, source);
    } finally {
      await client.close();
    }
    expect(await readdir(spools)).toEqual([]);
  });
});
