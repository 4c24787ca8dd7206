// Shared types of the benchmark harness.

/** One measured figure: blobkit against its peers, measured in the same run on the same data. */
export interface Result {
  /** Stable id of the comparison row, e.g. `read-one.warm`. */
  id: string;
  /** What is measured: `time`, `requests`, `bytes`, `peak-rss`, `bytes-per-entry`, … */
  metric: string;
  /** `ms`, `µs`, `ns`, `B`, `MiB`, `count`, `MiB/s`. */
  unit: string;
  /** blobkit's value (median when timed). */
  blobkit: number;
  /** The peers' values, same unit, keyed by a short name of the peer. */
  peers: Record<string, number>;
  /**
   * Peer ÷ blobkit against the first peer for lower-is-better metrics (blobkit ÷ peer for higher-is-better):
   * above 1 means blobkit is better. `null` without peers.
   */
  ratio: number | null;
  /** The same ratio against every peer. */
  ratios?: Record<string, number>;
  /** Human description of the row (dataset, conditions). */
  label: string;
  /** Target from issue #9, if any, and whether it is met in this run. */
  target?: string;
  met?: boolean;
  /** Timed runs behind the medians. */
  runs?: number;
  /** Free-form notes (spread of runs, counts). */
  note?: string;
}

export interface Comparison {
  id: string;
  /** One-line description for `--list`. */
  title: string;
  run(ctx: import("./context.ts").Context): Promise<Result[]>;
}
