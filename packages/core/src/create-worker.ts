/**
 * Worker-thread entry of the small-file pool (`create-pool.ts`): runs the synchronous small-file step for a
 * batch of files and answers with one transferable buffer of stored bytes, so a tree of many small files is
 * read, hashed and compressed on every core while the calling thread only writes the data blob in order.
 *
 * Memory: files are read into one reused buffer and their stored bytes copied straight into the batch's
 * answer, and zstd's output buffers are released at once. Left to the garbage collector, the dead buffers
 * of a worker grew to ~60 MiB before V8 collected them (its heap is tiny, so only the external-memory
 * limit triggered a collection).
 *
 * Internal module.
 */
import { parentPort } from "node:worker_threads";
import {
  readSmallFileSync,
  releaseBuffer,
  type SerializedError,
  type SmallFileTask,
  serializeError,
  shrinkBuffer,
  storeSmallBytes,
} from "./create-small.ts";

/** A batch sent to a worker. */
export interface BatchRequest {
  id: number;
  strict: boolean;
  level: number;
  tasks: SmallFileTask[];
}

/** A worker's answer: every file stored, or the first failure. */
export type BatchReply =
  | {
      id: number;
      ok: true;
      /** The files' stored bytes, back to back. */
      data: ArrayBuffer;
      /** 32 bytes of SHA-256 per file. */
      hashes: ArrayBuffer;
      storedSizes: number[];
      /** 1 where the stored bytes are a zstd frame. */
      zstd: Uint8Array;
    }
  | { id: number; ok: false; error: SerializedError };

/** The read buffer, reused for every file (grown when a larger file comes). */
let scratch = Buffer.allocUnsafe(64 * 1024);

function runBatch(request: BatchRequest): BatchReply {
  const { id, tasks } = request;
  let capacity = 0;
  for (const task of tasks) capacity += task.size;
  // Stored bytes never exceed the file's size (raw is kept when zstd does not shrink it).
  const data = new Uint8Array(new ArrayBuffer(capacity));
  const hashes = new Uint8Array(32 * tasks.length);
  const storedSizes: number[] = [];
  const zstd = new Uint8Array(tasks.length);
  let at = 0;
  try {
    for (let i = 0; i < tasks.length; i++) {
      const task = tasks[i]!;
      if (scratch.byteLength < task.size) scratch = Buffer.allocUnsafe(task.size);
      const bytes = readSmallFileSync(task, request.strict, scratch);
      const result = storeSmallBytes(bytes, task.compress, request.level);
      const size = result.stored.byteLength;
      data.set(result.stored, at);
      at += size;
      storedSizes.push(size);
      hashes.set(result.sha256, 32 * i);
      zstd[i] = result.zstd ? 1 : 0;
      if (result.zstd) releaseBuffer(result.stored);
    }
  } catch (error) {
    return { id, ok: false, error: serializeError(error) };
  }
  // Shrunk to what was used (compression usually leaves most of the capacity unused).
  return {
    id,
    ok: true,
    data: shrinkBuffer(data.buffer, at),
    hashes: hashes.buffer,
    storedSizes,
    zstd,
  };
}

parentPort?.on("message", (request: BatchRequest) => {
  const reply = runBatch(request);
  parentPort!.postMessage(reply, reply.ok ? [reply.data, reply.hashes] : []);
});
