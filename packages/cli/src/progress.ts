import cliProgress from "cli-progress";
import { humanBytes } from "./format.ts";
import type { CliWritable } from "./io.ts";

/** One progress update. */
export interface ProgressUpdate {
  bytesDone: number;
  bytesTotal: number;
  filesDone?: number | undefined;
  filesTotal?: number | undefined;
  /** Replaces the label (phase changes: "packing" → "uploading"). */
  label?: string | undefined;
}

/** A progress display; a no-op when progress is disabled. */
export interface Progress {
  update(update: ProgressUpdate): void;
  stop(): void;
}

const NOOP: Progress = { update() {}, stop() {} };

/**
 * A progress bar on `stream` (stderr): bytes, files, rate and ETA. `enabled` is decided by the caller
 * (stderr is a TTY, not quiet, not JSON, no `CI`): otherwise nothing is ever written.
 */
export function createProgress(enabled: boolean, stream: CliWritable, label: string): Progress {
  if (!enabled) return NOOP;
  let started = Date.now();
  let current = label;
  let bar: cliProgress.SingleBar | undefined;
  const payload = (u: ProgressUpdate): Record<string, string> => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const files = u.filesTotal === undefined ? "" : ` | ${u.filesDone ?? 0}/${u.filesTotal} files`;
    return {
      label: current.padEnd(9),
      bytes: `${humanBytes(u.bytesDone)}/${humanBytes(u.bytesTotal)}`,
      files,
      rate: `${humanBytes(Math.round(u.bytesDone / seconds))}/s`,
    };
  };
  return {
    update(u) {
      if (u.label !== undefined && u.label !== current) {
        current = u.label;
        started = Date.now(); // the rate of a new phase starts from zero
      }
      if (bar === undefined) {
        bar = new cliProgress.SingleBar({
          stream: stream as unknown as NodeJS.WritableStream,
          format: "{label} [{bar}] {percentage}% | {bytes}{files} | {rate} | ETA {eta_formatted}",
          barsize: 24,
          hideCursor: false,
          clearOnComplete: false,
          stopOnComplete: false,
          fps: 10,
          etaBuffer: 50,
          barCompleteChar: "#",
          barIncompleteChar: "-",
        });
        bar.start(Math.max(u.bytesTotal, 1), u.bytesDone, payload(u));
      } else {
        bar.setTotal(Math.max(u.bytesTotal, 1));
        bar.update(u.bytesDone, payload(u));
      }
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
