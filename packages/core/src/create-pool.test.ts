import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SmallFilePool, WORKER_FAILED } from "./create-pool.ts";
import { type SmallFileTask, storeSmallFileSync } from "./create-small.ts";
import { isBlobError } from "./errors.ts";
import { rejection } from "./test-support/rejection.ts";
import { useTempDirs } from "./test-support/temp-dirs.ts";
import { zstdDecompress } from "./zstd.ts";

const tempDir = useTempDirs("blobkit-pool-");

function task(abs: string, path: string, compress = true): SmallFileTask {
  const st = statSync(abs, { bigint: true });
  return {
    path,
    abs,
    size: Number(st.size),
    dev: st.dev,
    ino: st.ino,
    mtimeNs: st.mtimeNs,
    rawMode: Number(st.mode),
    compress,
  };
}

const pools: SmallFilePool[] = [];
function pool(threads: number, strict = false): SmallFilePool {
  const created = new SmallFilePool(threads, strict, 3);
  pools.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe("SmallFilePool", () => {
  it("stores a batch in task order exactly as the calling thread would", async () => {
    const dir = tempDir();
    const tasks: SmallFileTask[] = [];
    for (let i = 0; i < 40; i++) {
      const abs = join(dir, `f${i}`);
      // Compressible, incompressible and empty files, in a mix.
      const content =
        i % 5 === 0
          ? Buffer.alloc(0)
          : i % 3 === 0
            ? Buffer.from(Array.from({ length: 3000 }, (_, k) => (k * 7919 + i * 104729) % 251))
            : Buffer.from(`line ${i}\n`.repeat(200 + i));
      writeFileSync(abs, content);
      tasks.push(task(abs, `f${i}`, i % 7 !== 0));
    }
    const results = await pool(2).run(tasks);
    expect(results).toHaveLength(tasks.length);
    for (let i = 0; i < tasks.length; i++) {
      const local = storeSmallFileSync(tasks[i]!, false, 3);
      expect(Buffer.from(results[i]!.sha256)).toEqual(Buffer.from(local.sha256));
      expect(Buffer.from(results[i]!.stored)).toEqual(Buffer.from(local.stored));
      expect(results[i]!.zstd).toBe(local.zstd);
      if (results[i]!.zstd) {
        const raw = await zstdDecompress(results[i]!.stored, tasks[i]!.size, { maxDecoderMemory: 1 << 27 });
        expect(raw.byteLength).toBe(tasks[i]!.size);
      }
    }
    // Compression was only tried where the task asked for it, and kept only where it shrank the file.
    expect(results.some((r) => r.zstd)).toBe(true);
    expect(results[7]!.zstd).toBe(false);
  });

  it("runs many batches at once over every worker", async () => {
    const dir = tempDir();
    const tasks = Array.from({ length: 12 }, (_, i) => {
      const abs = join(dir, `f${i}`);
      writeFileSync(abs, `file ${i}\n`.repeat(500));
      return task(abs, `f${i}`);
    });
    const p = pool(3);
    const batches = await Promise.all(tasks.map((t) => p.run([t, t])));
    for (let i = 0; i < tasks.length; i++) {
      expect(batches[i]).toHaveLength(2);
      expect(Buffer.from(batches[i]![1]!.stored)).toEqual(
        Buffer.from(storeSmallFileSync(tasks[i]!, false, 3).stored),
      );
    }
  });

  it("reports a file that is not the scanned one as the same typed error as the calling thread", async () => {
    const dir = tempDir();
    const abs = join(dir, "a");
    writeFileSync(abs, "1234");
    const good = task(abs, "a");
    mkdirSync(join(dir, "sub"));
    const cases: [SmallFileTask, string][] = [
      [{ ...good, path: "gone", abs: join(dir, "missing") }, "replaced"],
      [{ ...good, path: "sub", abs: join(dir, "sub") }, "replaced"],
      [{ ...good, ino: good.ino + 1n }, "replaced"],
      [{ ...good, size: 10 }, "size-changed"],
    ];
    const p = pool(1);
    for (const [bad, reason] of cases) {
      const local = (() => {
        try {
          storeSmallFileSync(bad, false, 3);
        } catch (error) {
          return error;
        }
        throw new Error("expected an error");
      })();
      const remote = await rejection(p.run([good, bad]));
      expect(isBlobError(remote, "ERR_FILE_CHANGED") && remote.reason).toBe(reason);
      expect(isBlobError(local, "ERR_FILE_CHANGED") && local.reason).toBe(reason);
      expect((remote as Error).message).toBe((local as Error).message);
      expect((remote as { subject?: string }).subject).toBe(bad.path);
    }
    // Strict mode compares size, mtime and mode once the file was read.
    const strict = pool(1, true);
    const error = await rejection(strict.run([{ ...good, mtimeNs: good.mtimeNs + 1n }]));
    expect(isBlobError(error, "ERR_FILE_CHANGED") && error.reason).toBe("metadata-changed");
    // The pool keeps serving after a failed batch.
    expect(await p.run([good])).toHaveLength(1);
  });

  it("close rejects batches in flight and later ones with ERR_IO, and is idempotent", async () => {
    const dir = tempDir();
    const abs = join(dir, "a");
    writeFileSync(abs, Buffer.from("x".repeat(100_000)));
    const p = pool(1);
    const inFlight = p.run(Array.from({ length: 64 }, () => task(abs, "a")));
    const closing = p.close();
    expect(p.close()).toBe(closing);
    expect(isBlobError(await rejection(inFlight), "ERR_IO")).toBe(true);
    await closing;
    expect(isBlobError(await rejection(p.run([task(abs, "a")])), "ERR_IO")).toBe(true);
  });

  it("a worker that cannot start fails every batch with ERR_IO worker-failed", async () => {
    const dir = tempDir();
    const abs = join(dir, "a");
    writeFileSync(abs, "1234");
    const missing = new URL("./no-such-worker.js", import.meta.url);
    const p = new SmallFilePool(2, false, 3, missing);
    pools.push(p);
    for (let i = 0; i < 2; i++) {
      const error = await rejection(p.run([task(abs, "a")]));
      expect(isBlobError(error, "ERR_IO") && error.reason).toBe(WORKER_FAILED);
    }
  });
});
