import type { Readable, Writable } from "node:stream";

/** A stream the CLI writes to (process.stdout / stderr, or a capture in tests). @public */
export type CliWritable = Writable & { isTTY?: boolean; columns?: number };

/** Everything the CLI touches of its process: streams, environment, working directory, interrupt signal. @public */
export interface CliIo {
  stdout: CliWritable;
  stderr: CliWritable;
  stdin: Readable & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  cwd: string;
  /** Aborted on SIGINT (bin.ts); every operation is cancelled with it. */
  signal?: AbortSignal | undefined;
}

/** Writes `chunk` and waits for the stream to drain when its buffer is full. */
export async function writeAll(
  stream: CliWritable,
  chunk: string | Uint8Array,
  signal?: AbortSignal,
): Promise<void> {
  if (stream.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      stream.off("drain", done);
      stream.off("error", fail);
      signal?.removeEventListener("abort", aborted);
      resolve();
    };
    const fail = (error: Error): void => {
      stream.off("drain", done);
      signal?.removeEventListener("abort", aborted);
      reject(error);
    };
    const aborted = (): void => {
      stream.off("drain", done);
      stream.off("error", fail);
      reject(signal?.reason);
    };
    stream.once("drain", done);
    stream.once("error", fail);
    signal?.addEventListener("abort", aborted, { once: true });
  });
}
