import { describe, expect, it } from "vitest";
import { BlobError, isBlobError, raceAbort, throwIfAborted } from "./errors.ts";

describe("BlobError helpers", () => {
  it("isBlobError checks the shape and the code", () => {
    const error = new BlobError("ERR_NOT_FOUND", "gone", { reason: "x", subject: "a" });
    expect(isBlobError(error)).toBe(true);
    expect(isBlobError(error, "ERR_NOT_FOUND")).toBe(true);
    expect(isBlobError(error, "ERR_IO")).toBe(false);
    expect(isBlobError({ name: "BlobError", code: "ERR_IO" }, "ERR_IO")).toBe(true);
    expect(isBlobError(new Error("x"))).toBe(false);
    expect(isBlobError(null)).toBe(false);
  });

  it("throwIfAborted throws the signal's reason", () => {
    const controller = new AbortController();
    expect(() => throwIfAborted(controller.signal)).not.toThrow();
    const reason = new Error("stop");
    controller.abort(reason);
    expect(() => throwIfAborted(controller.signal)).toThrow(reason);
  });
});

describe("raceAbort", () => {
  it("passes the promise through without a signal or when nothing aborts", async () => {
    await expect(raceAbort(Promise.resolve(1), undefined)).resolves.toBe(1);
    await expect(raceAbort(Promise.resolve(2), new AbortController().signal)).resolves.toBe(2);
    await expect(raceAbort(Promise.reject(new Error("no")), new AbortController().signal)).rejects.toThrow(
      "no",
    );
  });

  it("rejects with the reason as soon as the signal aborts, and the late rejection stays handled", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on("unhandledRejection", onUnhandled);
    try {
      const controller = new AbortController();
      let rejectLater: (error: Error) => void = () => {};
      const slow = new Promise<number>((_, reject) => {
        rejectLater = reject;
      });
      const raced = raceAbort(slow, controller.signal);
      const reason = new Error("cancelled");
      controller.abort(reason);
      await expect(raced).rejects.toBe(reason);
      rejectLater(new Error("late failure"));
      const already = new AbortController();
      already.abort(reason);
      await expect(raceAbort(Promise.reject(new Error("also late")), already.signal)).rejects.toBe(reason);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
