import { randomBytes } from "node:crypto";
import { promises as fsp, readlinkSync } from "node:fs";
import { hostname } from "node:os";
import { BlobError, throwIfAborted } from "@blobkit/core";

/**
 * Who may judge a lock holder's pid: the same host *and* the same pid namespace. Containers sharing a volume
 * often share a host name (pods) but not a pid namespace, where another container's live pid looks dead.
 */
const PID_SCOPE: string = (() => {
  let namespace = "";
  try {
    namespace = readlinkSync("/proc/self/ns/pid");
  } catch {
    // Not Linux: the host name alone.
  }
  return namespace === "" ? hostname() : `${hostname()}/${namespace}`;
})();

/** Options of {@link acquireFileLock}. @internal */
export interface FileLockOptions {
  /** Directory for the lock's temporary file (same file system as the lock). */
  tempDir: string;
  /** Give up after this many milliseconds of waiting (`ERR_IO`, reason `lock-timeout`). */
  timeoutMs: number;
  /** A lock file older than this (by mtime) is stale whoever holds it. */
  staleMs: number;
  /** Aborts the wait. */
  signal?: AbortSignal | undefined;
}

/** What a lock file holds: enough to tell whether its holder is still alive, and to release only our own. */
interface LockInfo {
  pid: number;
  host: string;
  token: string;
  created: number;
}

/**
 * Takes an exclusive lock that also excludes other processes: a lock file created with a hard link from a
 * fully written temporary file, so the lock appears atomically *with* its content (a reader never sees a
 * half-written lock). Another holder's lock is broken when it is stale: its process is gone (same host and
 * pid namespace), or
 * its file is older than `staleMs` (any host — the holder crashed or hangs). Waits with jittered exponential
 * backoff, bounded by `timeoutMs`. Resolves to the release function.
 *
 * @internal
 */
export async function acquireFileLock(path: string, options: FileLockOptions): Promise<() => Promise<void>> {
  const { tempDir, timeoutMs, staleMs, signal } = options;
  const token = randomBytes(12).toString("hex");
  const info: LockInfo = { pid: process.pid, host: PID_SCOPE, token, created: Date.now() };
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    throwIfAborted(signal);
    if (await tryCreate(path, tempDir, info)) return () => release(path, token);
    if (await breakIfStale(path, staleMs)) continue;
    if (Date.now() >= deadline) {
      throw new BlobError("ERR_IO", `timed out after ${timeoutMs} ms waiting for the lock ${path}`, {
        reason: "lock-timeout",
        subject: path,
      });
    }
    await sleep(delay * (0.5 + Math.random()), signal);
    delay = Math.min(delay * 2, 100);
  }
}

async function tryCreate(path: string, tempDir: string, info: LockInfo): Promise<boolean> {
  const temp = `${tempDir}/lock-${process.pid}-${randomBytes(6).toString("hex")}`;
  try {
    await fsp.writeFile(temp, JSON.stringify(info), { flag: "wx", mode: 0o644 });
    try {
      // link() fails with EEXIST when the lock is held: the atomic test-and-set.
      await fsp.link(temp, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    }
  } catch (error) {
    throw new BlobError("ERR_IO", `cannot create the lock ${path}: ${(error as Error).message}`, {
      cause: error,
      subject: path,
    });
  } finally {
    await fsp.unlink(temp).catch(() => {});
  }
}

function parseInfo(text: string): LockInfo | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockInfo> | null;
    if (
      typeof value === "object" &&
      value !== null &&
      Number.isSafeInteger(value.pid) &&
      typeof value.host === "string" &&
      typeof value.token === "string"
    ) {
      return value as LockInfo;
    }
  } catch {
    // Not ours or damaged: judged by age only.
  }
  return undefined;
}

/** True when process `pid` exists (EPERM: it exists but belongs to another user). */
function processAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the lock at `path` when it is stale. Resolves `true` when the caller should retry at once (the lock
 * was broken or had vanished), `false` when a live holder has it.
 */
async function breakIfStale(path: string, staleMs: number): Promise<boolean> {
  let stat: import("node:fs").Stats;
  let text: string;
  try {
    stat = await fsp.lstat(path);
    text = await fsp.readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw new BlobError("ERR_IO", `cannot read the lock ${path}: ${(error as Error).message}`, {
      cause: error,
      subject: path,
    });
  }
  const info = parseInfo(text);
  const old = Date.now() - stat.mtimeMs > staleMs;
  const dead = info !== undefined && info.host === PID_SCOPE && !processAlive(info.pid);
  if (!old && !dead) return false;
  // Move the stale lock aside instead of unlinking it: of several processes breaking the same stale lock, only
  // one rename succeeds, and the winner can check that it moved the lock it judged (not a fresh one that a
  // faster breaker's successor created meanwhile).
  const aside = `${path}.stale-${randomBytes(6).toString("hex")}`;
  try {
    await fsp.rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw new BlobError("ERR_IO", `cannot break the stale lock ${path}: ${(error as Error).message}`, {
      cause: error,
      subject: path,
    });
  }
  try {
    const moved = await fsp.lstat(aside);
    // Inode numbers are reused quickly after unlink, so the content (a random token) is compared too.
    const movedText = await fsp.readFile(aside, "utf8");
    if (moved.ino !== stat.ino || moved.dev !== stat.dev || movedText !== text) {
      // We took a live lock: give it back. If yet another process locked meanwhile, link fails and that
      // holder keeps it — a window of microseconds after a stale lock, accepted (see the store's docs).
      await fsp.link(aside, path).catch(() => {});
    }
  } finally {
    await fsp.unlink(aside).catch(() => {});
  }
  return true;
}

async function release(path: string, token: string): Promise<void> {
  try {
    // Only remove our own lock: if it was judged stale and broken, it may now be someone else's.
    const info = parseInfo(await fsp.readFile(path, "utf8"));
    if (info?.token === token) await fsp.unlink(path);
  } catch {
    // Already gone (broken as stale): nothing to release.
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
