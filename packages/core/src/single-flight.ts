/**
 * Coalesces concurrent work on the same key ("single flight"): the first caller starts the work, later
 * callers join it, and the work is aborted only when every caller has given up. Internal helper of the
 * reader and the block cache.
 *
 * @internal
 */

interface Flight<V> {
  readonly promise: Promise<V>;
  readonly controller: AbortController;
  /** Callers still waiting. */
  waiting: number;
  /** Callers that ever joined (decides whether the result is shared). */
  joined: number;
  settled: boolean;
}

/** Result of {@link SingleFlight.run}. @internal */
export interface FlightResult<V> {
  readonly value: V;
  /** True when other callers received the same value (copy mutable values before handing them out). */
  readonly shared: boolean;
}

/** Coalesces concurrent calls by key. @internal */
export class SingleFlight<K, V> {
  readonly #flights = new Map<K, Flight<V>>();

  /** Number of flights currently running (for tests and diagnostics). */
  get size(): number {
    return this.#flights.size;
  }

  /**
   * Runs `work` for `key` unless a flight for `key` is already running, in which case this call joins it.
   * `work` receives a signal that fires only when every joined caller aborted (or {@link abortAll} ran).
   * The returned promise rejects with this caller's `signal.reason` when this caller aborts.
   */
  run(key: K, work: (signal: AbortSignal) => Promise<V>, signal?: AbortSignal): Promise<FlightResult<V>> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let flight = this.#flights.get(key);
    if (flight === undefined) {
      const controller = new AbortController();
      let resolveWork!: (value: Promise<V>) => void;
      const promise = new Promise<V>((resolve) => {
        resolveWork = resolve;
      });
      const created: Flight<V> = { promise, controller, waiting: 0, joined: 0, settled: false };
      flight = created;
      this.#flights.set(key, created);
      // Started after registration so a synchronous throw inside `work` still settles the flight.
      resolveWork(
        Promise.resolve()
          .then(() => work(controller.signal))
          .finally(() => {
            created.settled = true;
            if (this.#flights.get(key) === created) this.#flights.delete(key);
          }),
      );
      // Nobody may be listening any more when the work fails after every caller aborted.
      promise.catch(() => {});
    }
    const current = flight;
    current.waiting++;
    current.joined++;
    return new Promise<FlightResult<V>>((resolve, reject) => {
      let done = false;
      const onAbort = (): void => {
        if (done) return;
        done = true;
        current.waiting--;
        if (current.waiting === 0 && !current.settled) {
          if (this.#flights.get(key) === current) this.#flights.delete(key);
          current.controller.abort(signal?.reason);
        }
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      current.promise.then(
        (value) => {
          if (done) return;
          done = true;
          signal?.removeEventListener("abort", onAbort);
          current.waiting--;
          resolve({ value, shared: current.joined > 1 });
        },
        (error: unknown) => {
          if (done) return;
          done = true;
          signal?.removeEventListener("abort", onAbort);
          current.waiting--;
          reject(error);
        },
      );
    });
  }

  /** Aborts every running flight with `reason` (used by `close()`). */
  abortAll(reason: unknown): void {
    for (const flight of this.#flights.values()) flight.controller.abort(reason);
    this.#flights.clear();
  }
}
