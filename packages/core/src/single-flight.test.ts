import { describe, expect, it } from "vitest";
import { SingleFlight } from "./single-flight.ts";

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("SingleFlight", () => {
  it("runs the work once for concurrent callers and reports sharing", async () => {
    const flights = new SingleFlight<string, number>();
    const gate = deferred<number>();
    let runs = 0;
    const work = async () => {
      runs++;
      return gate.promise;
    };
    const a = flights.run("k", work);
    const b = flights.run("k", work);
    expect(flights.size).toBe(1);
    gate.resolve(7);
    expect(await a).toEqual({ value: 7, shared: true });
    expect(await b).toEqual({ value: 7, shared: true });
    expect(runs).toBe(1);
    expect(flights.size).toBe(0);
    expect(await flights.run("k", async () => 8)).toEqual({ value: 8, shared: false });
  });

  it("one caller aborting does not cancel the work for the others", async () => {
    const flights = new SingleFlight<string, number>();
    const gate = deferred<number>();
    let workSignal: AbortSignal | undefined;
    const controller = new AbortController();
    const a = flights.run(
      "k",
      async (signal) => {
        workSignal = signal;
        return gate.promise;
      },
      controller.signal,
    );
    const b = flights.run("k", async () => 0);
    controller.abort(new Error("a gave up"));
    await expect(a).rejects.toThrow("a gave up");
    await Promise.resolve();
    expect(workSignal?.aborted).toBe(false);
    gate.resolve(3);
    expect((await b).value).toBe(3);
  });

  it("the work is aborted when every caller aborted, and a new call starts afresh", async () => {
    const flights = new SingleFlight<string, number>();
    let workSignal: AbortSignal | undefined;
    const never = deferred<number>();
    const controller = new AbortController();
    const a = flights.run(
      "k",
      async (signal) => {
        workSignal = signal;
        return never.promise;
      },
      controller.signal,
    );
    await Promise.resolve();
    await Promise.resolve();
    controller.abort(new Error("bye"));
    await expect(a).rejects.toThrow("bye");
    expect(workSignal?.aborted).toBe(true);
    expect(flights.size).toBe(0);
    expect((await flights.run("k", async () => 5)).value).toBe(5);
  });

  it("errors reach every caller; a synchronous throw in the work is an error too", async () => {
    const flights = new SingleFlight<string, number>();
    const a = flights.run("k", () => {
      throw new Error("sync boom");
    });
    const b = flights.run("k", async () => 1);
    await expect(a).rejects.toThrow("sync boom");
    await expect(b).rejects.toThrow("sync boom");
  });

  it("abortAll aborts running work", async () => {
    const flights = new SingleFlight<string, number>();
    const p = flights.run("k", (signal) => {
      return new Promise<number>((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason)),
      );
    });
    await Promise.resolve();
    flights.abortAll(new Error("closed"));
    await expect(p).rejects.toThrow("closed");
  });

  it("an already aborted signal rejects immediately", async () => {
    const flights = new SingleFlight<string, number>();
    const reason = new Error("early");
    await expect(flights.run("k", async () => 1, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(flights.size).toBe(0);
  });
});
