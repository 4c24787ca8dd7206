// Test harness: a real `redis-server` on 127.0.0.1, a random free port and a temp dir, no persistence,
// stopped by PID. Used by the integration tests and the benchmark.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

const BINARY = process.env.REDIS_SERVER ?? "/usr/bin/redis-server";

/** A running test Redis. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** PID of the current process (changes on restart). */
  readonly pid: number;
  /** Sends a signal to the server process (SIGKILL, SIGSTOP, SIGCONT…). */
  signal(signal: NodeJS.Signals): void;
  /** Resolves when the current process has exited. */
  exited(): Promise<void>;
  /** Starts a fresh process on the same port (after the previous one exited); resolves when it answers PING. */
  restart(): Promise<void>;
  /** Stops the server (SIGCONT + SIGTERM, SIGKILL after 3 s) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** Start a one-node Redis Cluster owning every slot (cluster-enabled, CLUSTER ADDSLOTSRANGE 0 16383). */
  cluster?: boolean;
  /** Listen on this port instead of a random free one. */
  port?: number;
  /** Extra `redis-server` arguments, e.g. `["--maxmemory", "10mb"]`. */
  args?: string[];
}

/** A TCP port nothing listens on right now (127.0.0.1). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** True when a raw `PING` on `port` is answered with `+PONG` within `ms`. */
function ping(port: number, ms = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (data) => {
      reply += data.toString("latin1");
      if (reply.includes("\r\n")) finish(reply.startsWith("+PONG"));
    });
    socket.on("error", () => finish(false));
  });
}

/** Starts `redis-server`; fails loudly when the binary is missing. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  if (!existsSync(BINARY)) {
    throw new Error(
      `redis-server not found at ${BINARY}: install it with \`apt-get install -y redis-server\` (or set REDIS_SERVER)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), "blobkit-redis-"));
  const port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let exit: Promise<void> = Promise.resolve();
  let log = "";
  let stopped = false;

  const launch = async (): Promise<void> => {
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--protected-mode",
      "no",
      "--logfile",
      "",
      ...(options.cluster
        ? [
            "--cluster-enabled",
            "yes",
            "--cluster-announce-ip",
            "127.0.0.1",
            "--cluster-config-file",
            join(dir, `nodes-${Date.now()}.conf`),
          ]
        : []),
      ...(options.args ?? []),
    ];
    const proc = spawn(BINARY, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    log = "";
    const keep = (data: Buffer) => {
      log = (log + data.toString()).slice(-4000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    exit = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + 10_000;
    while (!(await ping(port))) {
      if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`redis-server did not start on port ${port}:\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (options.cluster) await assignAllSlots(port);
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid ?? -1;
    },
    signal(signal) {
      if (child?.pid !== undefined) process.kill(child.pid, signal);
    },
    exited: () => exit,
    async restart() {
      await exit;
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const proc = child;
      if (proc?.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
        process.kill(proc.pid, "SIGCONT");
        process.kill(proc.pid, "SIGTERM");
        const timer = setTimeout(() => proc.pid !== undefined && process.kill(proc.pid, "SIGKILL"), 3000);
        await exit;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function assignAllSlots(port: number): Promise<void> {
  const admin = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await admin.connect();
    await admin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    const deadline = Date.now() + 10_000;
    for (;;) {
      const info = String(await admin.call("CLUSTER", "INFO"));
      if (info.includes("cluster_state:ok")) return;
      if (Date.now() > deadline) throw new Error(`cluster did not become ok:\n${info}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    admin.disconnect();
  }
}
