/**
 * The spool directories of `Client.push(dir)`: the data blob is written to one before it is uploaded, and the
 * directory is removed when the push ends. A push that is killed cannot remove it, so every push first
 * sweeps the spools of pushes that died: the directory name carries the pushing process's id.
 */
import type { Dirent } from "node:fs";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";

/** Prefix of spool directories in the temp directory. @internal */
export const SPOOL_PREFIX = "blobkit-push-";

/** A spool untouched this long is swept even when its process id is alive again (ids are reused). */
const STALE_AFTER_MS = 24 * 60 * 60 * 1000;

const PID_NAME = /^blobkit-push-(\d+)-/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Last change of a spool: the directory or its data file, whichever is newer. */
async function lastChange(dir: string): Promise<number> {
  const [own, data] = await Promise.all([
    stat(dir).catch(() => undefined),
    stat(join(dir, "data")).catch(() => undefined),
  ]);
  return Math.max(own?.mtimeMs ?? 0, data?.mtimeMs ?? 0);
}

/**
 * Removes, from `tempDir`, the spool directories of pushes whose process is gone, and any spool untouched for
 * 24 hours (also those named before spools carried a process id). Best effort: never throws; returns the
 * names removed.
 *
 * @internal
 */
export async function sweepSpools(tempDir: string, now: number = Date.now()): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(tempDir, { withFileTypes: true });
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || !entry.name.startsWith(SPOOL_PREFIX)) continue;
    const dir = join(tempDir, entry.name);
    const match = PID_NAME.exec(entry.name);
    const pid = match === null ? undefined : Number(match[1]);
    if (pid === process.pid) continue; // a concurrent push of this process
    const orphaned = pid !== undefined && !alive(pid);
    if (!orphaned && now - (await lastChange(dir)) < STALE_AFTER_MS) continue;
    try {
      await rm(dir, { recursive: true, force: true });
      removed.push(entry.name);
    } catch {
      // Someone else's, or already gone: leave it.
    }
  }
  return removed;
}

/** Sweeps dead spools, then creates this push's spool directory in `tempDir`. @internal */
export async function createSpool(tempDir: string): Promise<string> {
  await sweepSpools(tempDir);
  return mkdtemp(join(tempDir, `${SPOOL_PREFIX}${process.pid}-`));
}
