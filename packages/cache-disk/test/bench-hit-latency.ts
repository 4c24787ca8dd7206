// Hit latency of DiskCache vs a miss served by a local HTTP server, for 4 KiB and 1 MiB values.
// Run: `node --conditions=source test/bench-hit-latency.ts` from packages/cache-disk. Prints medians and p99s.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskCache } from "../src/index.ts";

const ROUNDS = 2000;

async function measure(run: () => Promise<unknown>): Promise<{ median: number; p99: number }> {
  for (let i = 0; i < 100; i++) await run(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const start = process.hrtime.bigint();
    await run();
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(ROUNDS / 2)] ?? 0, p99: times[Math.floor(ROUNDS * 0.99)] ?? 0 };
}

const dir = await mkdtemp(join(tmpdir(), "blobkit-cache-disk-bench-"));
const values = new Map<string, Uint8Array>();
const server = createServer((request, response) => {
  const value = values.get(request.url ?? "");
  response.writeHead(value === undefined ? 404 : 200, { "content-length": value?.byteLength ?? 0 });
  response.end(value);
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as AddressInfo;
const cache = await DiskCache.open({ dir });
try {
  console.log("value    disk hit median / p99 (µs)   HTTP miss median / p99 (µs)   ratio");
  for (const size of [4096, 1024 * 1024]) {
    const value = new Uint8Array(size).map((_, i) => i & 0xff);
    values.set(`/v${size}`, value);
    await cache.set(`v${size}`, value);
    const hit = await measure(() => cache.get(`v${size}`));
    const miss = await measure(async () => {
      const response = await fetch(`http://127.0.0.1:${port}/v${size}`);
      return new Uint8Array(await response.arrayBuffer());
    });
    console.log(
      `${String(size).padEnd(8)} ${hit.median.toFixed(1)} / ${hit.p99.toFixed(1)}`.padEnd(38),
      `${miss.median.toFixed(1)} / ${miss.p99.toFixed(1)}`.padEnd(30),
      `${(miss.median / hit.median).toFixed(1)}×`,
    );
  }
} finally {
  await cache.close();
  server.close();
  await rm(dir, { recursive: true, force: true });
}
