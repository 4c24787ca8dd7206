/**
 * Memory hygiene for long pipelines of buffers (archive creation, extraction).
 *
 * Internal module: exported from the package for the other blobkit packages, not a stable public API.
 */
import { getHeapStatistics } from "node:v8";

/** Bytes between two sweeps of {@link bufferSweeper}. */
const SWEEP_EVERY = 4 * 1024 * 1024;

/**
 * Returns a counter to call with the bytes a pipeline moved: every 4 MiB it lets V8 finish freeing dead
 * `ArrayBuffer`s. V8 frees their memory on a background sweeper and hands it back only when the main thread
 * finalizes the sweep, which a busy chain of promise callbacks rarely lets happen; reading heap statistics
 * finalizes it. Measured on a 2 GiB mixed tree: peak RSS creating 250 → ~210 MiB, extracting 195 → ~160 MiB.
 *
 * @internal
 */
export function bufferSweeper(): (bytes: number) => void {
  let moved = 0;
  return (bytes) => {
    moved += bytes;
    if (moved < SWEEP_EVERY) return;
    moved = 0;
    getHeapStatistics();
  };
}
