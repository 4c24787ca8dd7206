/**
 * A pool of worker threads that read, hash and compress batches of small files for archive creation.
 *
 * Why: zstd and SHA-256 of a small file are synchronous calls of a few dozen microseconds each, so a tree of
 * thousands of small files kept the calling thread busy while the other cores idled (the thread-pool
 * versions of those calls cost more in setup than they save for small inputs). Workers take whole batches,
 * so the per-message cost is paid once per batch, and answer with one transferred buffer (no copy).
 *
 * Internal module.
 */
import { Worker } from "node:worker_threads";
import { deserializeError, type SmallFileResult, type SmallFileTask } from "./create-small.ts";
import type { BatchReply, BatchRequest } from "./create-worker.ts";
import { BlobError } from "./errors.ts";

/** The worker script next to this module: `.ts` when running from source, `.js` when built. */
function workerUrl(): URL {
  const here = new URL(import.meta.url);
  const ext = here.pathname.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./create-worker${ext}`, here);
}

/** Young- and old-generation sizes of a worker's V8 heap (MiB); it starts with ~10 MiB in use. */
const YOUNG_GENERATION_MIB = 1;
const OLD_GENERATION_MIB = 16;

interface Call {
  resolve: (results: SmallFileResult[]) => void;
  reject: (error: unknown) => void;
}

interface Slot {
  worker: Worker;
  /** Batches sent and not yet answered. */
  pending: Map<number, Call>;
}

/** Worker threads for the small-file step of archive creation. Close it when done: workers keep a process alive. */
export class SmallFilePool {
  readonly #slots: Slot[];
  readonly #strict: boolean;
  readonly #level: number;
  #nextId = 0;
  #failure: unknown;
  #closed = false;
  #closing: Promise<void> | undefined;

  /**
   * Starts `threads` workers (at least one) that store files with the given strictness and zstd level.
   * `script` replaces the worker script (tests).
   */
  constructor(threads: number, strict: boolean, level: number, script: URL = workerUrl()) {
    this.#strict = strict;
    this.#level = level;
    this.#slots = Array.from({ length: Math.max(1, threads) }, () => {
      // Small heaps: a worker holds a batch's task list and little else, and with default limits each one
      // kept tens of MiB of garbage between collections (measured: ~27 MiB per worker on a mixed 2 GiB
      // tree; ~12 MiB with these limits). A worker that still runs out of heap fails its batches with
      // "worker-failed", which archive creation answers by doing the work on the calling thread.
      const worker = new Worker(script, {
        resourceLimits: {
          maxYoungGenerationSizeMb: YOUNG_GENERATION_MIB,
          maxOldGenerationSizeMb: OLD_GENERATION_MIB,
        },
      });
      const slot: Slot = { worker, pending: new Map() };
      slot.worker.on("message", (reply: BatchReply) => this.#answer(slot, reply));
      slot.worker.on("error", (cause) => this.#broken(ioFailure(cause)));
      slot.worker.on("exit", (code) => {
        if (!this.#closed) this.#broken(ioFailure(new Error(`worker exited with code ${code}`)));
      });
      return slot;
    });
  }

  /**
   * Stores a batch of files on the least busy worker; results are in task order. Rejects with the first
   * file's error, or with `ERR_IO` reason `"worker-failed"` when a worker cannot start or dies (then every
   * later call rejects the same way).
   */
  run(tasks: SmallFileTask[]): Promise<SmallFileResult[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new BlobError("ERR_IO", "the small-file pool is closed"));
    let slot = this.#slots[0]!;
    for (const candidate of this.#slots) if (candidate.pending.size < slot.pending.size) slot = candidate;
    const id = this.#nextId++;
    const request: BatchRequest = { id, strict: this.#strict, level: this.#level, tasks };
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage(request);
    });
  }

  /** Stops every worker; batches still running reject. Idempotent: every call waits for the same end. */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#rejectAll(new BlobError("ERR_IO", "the small-file pool was closed"));
      this.#closing = Promise.all(this.#slots.map((slot) => slot.worker.terminate())).then(() => undefined);
    }
    return this.#closing;
  }

  #answer(slot: Slot, reply: BatchReply): void {
    const call = slot.pending.get(reply.id);
    if (call === undefined) return;
    slot.pending.delete(reply.id);
    if (!reply.ok) {
      call.reject(deserializeError(reply.error));
      return;
    }
    const results: SmallFileResult[] = [];
    let at = 0;
    for (let i = 0; i < reply.storedSizes.length; i++) {
      const size = reply.storedSizes[i]!;
      results.push({
        sha256: new Uint8Array(reply.hashes, 32 * i, 32),
        stored: new Uint8Array(reply.data, at, size),
        zstd: reply.zstd[i] === 1,
      });
      at += size;
    }
    call.resolve(results);
  }

  #broken(error: BlobError): void {
    if (this.#failure !== undefined || this.#closed) return;
    this.#failure = error;
    this.#rejectAll(error);
  }

  #rejectAll(error: unknown): void {
    for (const slot of this.#slots) {
      for (const call of slot.pending.values()) call.reject(error);
      slot.pending.clear();
    }
  }
}

/** Reason of the error for a worker that failed (as opposed to a file that did). */
export const WORKER_FAILED = "worker-failed";

function ioFailure(cause: unknown): BlobError {
  const message = `a small-file worker failed: ${(cause as Error)?.message ?? String(cause)}`;
  return new BlobError("ERR_IO", message, { cause, reason: WORKER_FAILED });
}
