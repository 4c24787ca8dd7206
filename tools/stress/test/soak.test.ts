import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Archive, isBlobError } from "@blobkit/core";
import { Client, staticCredentials } from "@blobkit/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../../../packages/registry/test/registry-server.ts";
import { pseudoRandomBytes, readTree, writeTree } from "../../../packages/registry/test/support.ts";
import { type FaultProxy, seededRandom, startFaultProxy } from "./support/fault-proxy.ts";
import { envInt, recordResult } from "./support/results.ts";

// Issue item 3: a bounded soak through a fault-injecting proxy in front of the real docker-registry (token
// auth). Random single-file reads, streams and full pulls + extracts run for STRESS_SOAK_SECONDS with a
// fault on STRESS_FAULT_RATE of the requests. Every operation has a deadline and must return exactly the
// right bytes, or reject with a BlobError, within deadline + slack.

const SOAK_SECONDS = envInt("STRESS_SOAK_SECONDS", 600);
const FAULT_RATE = Number(process.env.STRESS_FAULT_RATE ?? "0.1");
const SEED = envInt("STRESS_SEED", Math.floor(Math.random() * 2 ** 31) + 1);
const READERS = 6;
/** Registry request timeout of the Client (headers, and between body chunks). */
const CLIENT_TIMEOUT_MS = 1500;
/** Stalls last longer than the client's timeout. */
const STALL_MS = 2 * CLIENT_TIMEOUT_MS;
/** Real lifetime of a token at the registry (the client is told 300 s). */
const TOKEN_LIFETIME_S = 6;
/** distribution's JWT leeway on `exp` (registry/auth/token: `Leeway = 60 * time.Second`). */
const REGISTRY_LEEWAY_S = 60;
const DEADLINE = { open: 20_000, read: 20_000, stream: 20_000, pull: 90_000 } as const;
const SLACK_MS = 2_000;

type OpKind = keyof typeof DEADLINE;

let registry: RunningRegistry;
let proxy: FaultProxy;
let work: string;
let src: string;
let expected: Map<string, Buffer>;
let paths: string[];
let reference: string;

const figures = {
  seed: SEED,
  faultRate: FAULT_RATE,
  soakSeconds: SOAK_SECONDS,
  operations: 0,
  byKind: {} as Record<string, { ok: number; typed: number }>,
  successes: 0,
  typedFailures: {} as Record<string, number>,
  /** Rejected with the deadline signal's reason (a DOMException TimeoutError): documented abort behaviour. */
  deadlineAborts: 0,
  typedSamples: {} as Record<string, string[]>,
  untypedFailures: 0,
  untypedSamples: [] as string[],
  wrongBytes: 0,
  wrongSamples: [] as string[],
  deadlineOverruns: 0,
  overrunSamples: [] as string[],
  slowestMs: {} as Record<string, number>,
  bytesVerified: 0,
  fullPulls: 0,
  fullPullsOk: 0,
  tempFilesLeftAfterFailedExtract: 0,
  faults: {} as Record<string, number>,
  faultsInjected: 0,
  requests: 0,
  mirrorRequests: 0,
  tokenRequests: 0,
  expiredTokenRejections: 0,
  expiredRedirectRejections: 0,
  wallSeconds: 0,
};

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Runs one operation under its deadline and classifies the outcome. */
async function operation<T>(
  kind: OpKind,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
  check: (value: T) => string | undefined,
): Promise<T | undefined> {
  const deadline = DEADLINE[kind];
  const signal = AbortSignal.timeout(deadline);
  const started = performance.now();
  figures.operations++;
  const stats = figures.byKind[kind] ?? { ok: 0, typed: 0 };
  figures.byKind[kind] = stats;
  let value: T | undefined;
  try {
    value = await fn(signal);
    const wrong = check(value);
    if (wrong === undefined) {
      figures.successes++;
      stats.ok++;
    } else {
      figures.wrongBytes++;
      if (figures.wrongSamples.length < 10) figures.wrongSamples.push(`${kind} ${what}: ${wrong}`);
      value = undefined;
    }
  } catch (error) {
    if (isBlobError(error)) {
      figures.typedFailures[error.code] = (figures.typedFailures[error.code] ?? 0) + 1;
      stats.typed++;
      const samples = figures.typedSamples[error.code] ?? [];
      figures.typedSamples[error.code] = samples;
      if (samples.length < 3) samples.push(`${kind} ${what}: ${error.message} (${error.reason ?? "-"})`);
    } else if (signal.aborted && error === signal.reason) {
      figures.deadlineAborts++;
    } else {
      figures.untypedFailures++;
      if (figures.untypedSamples.length < 10)
        figures.untypedSamples.push(`${kind} ${what}: ${String((error as Error)?.stack ?? error)}`);
    }
  }
  const elapsed = performance.now() - started;
  figures.slowestMs[kind] = Math.max(figures.slowestMs[kind] ?? 0, Math.round(elapsed));
  if (elapsed > deadline + SLACK_MS) {
    figures.deadlineOverruns++;
    if (figures.overrunSamples.length < 10)
      figures.overrunSamples.push(`${kind} ${what}: ${Math.round(elapsed)} ms`);
  }
  return value;
}

function newClient(): Client {
  return new Client({
    credentials: staticCredentials({
      [proxy.host]: { username: registry.username, password: registry.password },
    }),
    registry: { timeoutMs: CLIENT_TIMEOUT_MS, retries: 5, retryDelayMs: 10, maxRetryDelayMs: 200 },
    refTtlMs: 0,
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Compares a destination with the source: every file at a final path must hold the source's bytes. */
async function checkDestination(dest: string, complete: boolean): Promise<string | undefined> {
  const tree = await readTree(dest);
  for (const [path, { bytes }] of tree) {
    const want = expected.get(path);
    if (/(^|\/)\.blobkit-[0-9a-f]{16}-[0-9a-z]+\.tmp$/.test(path)) {
      figures.tempFilesLeftAfterFailedExtract++;
      continue;
    }
    if (want === undefined) return `unexpected file ${path}`;
    if (!want.equals(bytes)) return `${path} differs from the source`;
    figures.bytesVerified += bytes.length;
  }
  if (complete && tree.size !== expected.size) return `${tree.size} files, expected ${expected.size}`;
  return undefined;
}

async function reader(id: number, until: number): Promise<void> {
  const random = seededRandom(SEED + id * 7919);
  while (Date.now() < until) {
    const client = newClient();
    try {
      const archive = await operation(
        "open",
        reference,
        (signal) => client.pull(reference, { signal, skipCache: true }),
        () => undefined,
      );
      if (archive === undefined) continue;
      try {
        for (let i = 0; i < 150 && Date.now() < until; i++) {
          const path = paths[Math.floor(random() * paths.length)] ?? "";
          const want = expected.get(path) ?? Buffer.alloc(0);
          const mismatch = (got: Uint8Array): string | undefined =>
            equalBytes(got, want) ? undefined : `got ${got.length} bytes, expected ${want.length}`;
          if (random() < 0.75) {
            await operation(
              "read",
              path,
              (signal) => (archive as Archive).readFile(path, { signal }) as Promise<Uint8Array>,
              (got) => {
                const wrong = mismatch(got);
                if (wrong === undefined) figures.bytesVerified += got.length;
                return wrong;
              },
            );
          } else {
            await operation(
              "stream",
              path,
              (signal) => collect(archive.createReadStream(path, { signal })),
              (got) => {
                const wrong = mismatch(got);
                if (wrong === undefined) figures.bytesVerified += got.length;
                return wrong;
              },
            );
          }
        }
      } finally {
        await archive.close();
      }
    } finally {
      await client.close();
    }
  }
}

async function puller(until: number): Promise<void> {
  let n = 0;
  while (Date.now() < until || figures.fullPulls < 2) {
    const dest = join(work, `pull-${n++}`);
    const client = newClient();
    figures.fullPulls++;
    let extracted = false;
    try {
      await operation(
        "pull",
        `${reference} → ${dest}`,
        async (signal) => {
          const archive = await client.pull(reference, { signal, skipCache: true });
          try {
            await archive.extract(dest, { signal });
          } finally {
            await archive.close();
          }
          extracted = true;
          return dest;
        },
        () => undefined,
      );
      // Whether the extraction succeeded or failed: what is at a final path must be the source's bytes.
      const wrong = await checkDestination(dest, extracted).catch((error: unknown) =>
        (error as NodeJS.ErrnoException).code === "ENOENT" ? undefined : String(error),
      );
      if (wrong !== undefined) {
        figures.wrongBytes++;
        if (figures.wrongSamples.length < 10) figures.wrongSamples.push(`pull ${dest}: ${wrong}`);
      } else if (extracted) figures.fullPullsOk++;
    } finally {
      await client.close();
      await rm(dest, { recursive: true, force: true });
    }
  }
}

beforeAll(async () => {
  registry = await startRegistry({ auth: "token" });
  const issuer = registry.tokenIssuer;
  if (issuer === undefined) throw new Error("token registry without issuer");
  work = await mkdtemp(join(tmpdir(), "blobkit-stress-soak-"));
  src = join(work, "src");
  const random = seededRandom(SEED);
  const files: { path: string; content: Uint8Array }[] = [];
  for (let i = 0; i < 150; i++) {
    const length = 1 + Math.floor(random() * 8000);
    files.push({
      path: `small/d${i % 7}/f${i}.txt`,
      content: Buffer.from(`line ${i} `.repeat(length / 8 + 1)).subarray(0, length),
    });
  }
  for (let i = 0; i < 40; i++) {
    files.push({
      path: `medium/m${i}.bin`,
      content: pseudoRandomBytes(20_000 + Math.floor(random() * 180_000), SEED + i),
    });
  }
  files.push({ path: "large/random.bin", content: pseudoRandomBytes(5 * 1024 * 1024 + 12_345, SEED + 1000) });
  files.push({
    path: "large/text.log",
    content: Buffer.from("a log line that compresses well\n".repeat(50_000)),
  });
  files.push({ path: "empty", content: new Uint8Array(0) });
  await writeTree(src, files);
  expected = new Map(files.map((f) => [f.path, Buffer.from(f.content)]));
  paths = [...expected.keys()];

  // Push directly (no faults), with normal tokens.
  const pusher = new Client({
    credentials: staticCredentials({
      [registry.host]: { username: registry.username, password: registry.password },
    }),
  });
  await pusher.push(`${registry.host}/stress/soak:v1`, src);
  await pusher.close();

  // From now on tokens are accepted by the registry for TOKEN_LIFETIME_S only, while the client is told 300 s.
  issuer.expiresIn = TOKEN_LIFETIME_S - REGISTRY_LEEWAY_S;
  proxy = await startFaultProxy({
    upstream: registry.origin,
    realm: issuer.realm,
    blobPath: (digest) => registry.blobPath(digest),
    rate: FAULT_RATE,
    stallMs: STALL_MS,
    redirectTtlMs: 3000,
    advertisedExpiresIn: 300,
    random: seededRandom(SEED ^ 0x5eed),
  });
  reference = `${proxy.host}/stress/soak:v1`;
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("fault-injection soak (issue item 3)", () => {
  it("sanity: without faults, a token the registry accepted expires mid-pull and the client re-authenticates", async () => {
    proxy.enabled = false;
    const client = newClient();
    try {
      const archive = await client.pull(reference);
      expect(Buffer.from((await archive.readFile("empty")) as Uint8Array).length).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, (TOKEN_LIFETIME_S + 1.5) * 1000));
      const before = proxy.stats.registry401;
      const got = (await archive.readFile("medium/m1.bin")) as Uint8Array;
      expect(equalBytes(got, expected.get("medium/m1.bin") ?? Buffer.alloc(0))).toBe(true);
      expect(proxy.stats.registry401, "the registry rejected the expired token").toBeGreaterThan(before);
      await archive.close();
    } finally {
      await client.close();
      proxy.enabled = true;
    }
  }, 60_000);

  it(
    `${SOAK_SECONDS} s at fault rate ${FAULT_RATE}: zero wrong bytes, only typed errors, no deadline overrun`,
    async () => {
      const started = Date.now();
      const until = started + SOAK_SECONDS * 1000;
      const faultsBefore = proxy.totalFaults();
      await Promise.all([puller(until), ...Array.from({ length: READERS }, (_, i) => reader(i, until))]);
      figures.wallSeconds = Math.round((Date.now() - started) / 100) / 10;
      figures.faults = { ...proxy.stats.faults };
      figures.faultsInjected = proxy.totalFaults();
      figures.requests = proxy.stats.requests;
      figures.mirrorRequests = proxy.stats.mirrorRequests;
      figures.tokenRequests = proxy.stats.tokenRequests;
      figures.expiredTokenRejections = proxy.stats.registry401;
      figures.expiredRedirectRejections = proxy.stats.expiredRedirects;
      recordResult("soak", "summary", figures);
      const typed = Object.entries(figures.typedFailures)
        .map(([code, n]) => `${code} ${n}`)
        .join(", ");
      console.log(
        `[soak] ${figures.wallSeconds} s, seed ${SEED}, fault rate ${FAULT_RATE}: ${figures.operations} operations ` +
          `(${Object.entries(figures.byKind)
            .map(([k, v]) => `${k} ${v.ok + v.typed}`)
            .join(", ")}), ${figures.successes} ok, typed failures: ${typed || "none"}; ` +
          `${figures.fullPullsOk}/${figures.fullPulls} full pulls ok; ${figures.faultsInjected} faults injected ` +
          `(${Object.entries(figures.faults)
            .map(([k, v]) => `${k} ${v}`)
            .join(
              ", ",
            )}) over ${figures.requests} proxy + ${figures.mirrorRequests} mirror + ${figures.tokenRequests} token requests; ` +
          `${figures.expiredTokenRejections} expired-token 401s, ${figures.expiredRedirectRejections} expired redirects; ` +
          `${(figures.bytesVerified / 2 ** 20).toFixed(0)} MiB verified; wrong bytes: ${figures.wrongBytes}, ` +
          `untyped: ${figures.untypedFailures}, deadline aborts: ${figures.deadlineAborts}, overruns: ${figures.deadlineOverruns}; ` +
          `slowest ${JSON.stringify(figures.slowestMs)}`,
      );
      expect(figures.faultsInjected - faultsBefore).toBeGreaterThan(0);
      expect(figures.wrongSamples).toEqual([]);
      expect(figures.wrongBytes).toBe(0);
      expect(figures.untypedSamples).toEqual([]);
      expect(figures.overrunSamples).toEqual([]);
      expect(figures.deadlineOverruns).toBe(0);
      expect(figures.tempFilesLeftAfterFailedExtract).toBe(0);
      expect(figures.fullPullsOk).toBeGreaterThan(0);
    },
    (SOAK_SECONDS + 300) * 1000,
  );
});
