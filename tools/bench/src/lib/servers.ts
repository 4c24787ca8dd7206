// The loopback servers every reader goes through: one nginx that serves the peers' files (zip, tar.gz,
// tar.zst and blobkit's own data/index blobs, with its own Range implementation) under `/data/` and proxies
// `/v2/` to the real docker-registry started by the registry test harness. Requests and bytes on the wire
// are counted the same way for every reader: from nginx's access log (server-side counters).
import { type ChildProcess, spawn } from "node:child_process";
import { open, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { freePort } from "../../../../packages/registry/test/registry-server.ts";

export interface WireCount {
  /** Requests completed. */
  requests: number;
  /** Response body bytes sent to clients. */
  bytesDown: number;
  /** Request bytes received (headers + bodies: uploads). */
  bytesUp: number;
  /** The log lines (method, uri, status, range) for debugging. */
  lines: string[];
}

export interface Nginx {
  origin: string;
  /** `127.0.0.1:<port>`, the registry host of references. */
  host: string;
  /** URL of a file under the data root (`bench/.data`). */
  url(relativePath: string): string;
  /** A position in the access log. */
  mark(): Promise<number>;
  /** What went over the wire since `mark` (waits for the log to settle). */
  since(mark: number): Promise<WireCount>;
  stop(): Promise<void>;
}

export async function startNginx(work: string, dataRoot: string, registryOrigin: string): Promise<Nginx> {
  const port = await freePort();
  const log = join(work, "access.log");
  const registryPort = new URL(registryOrigin).port;
  await writeFile(
    join(work, "nginx.conf"),
    `daemon off; user root; worker_processes 2; pid ${work}/nginx.pid; error_log ${work}/error.log warn;
events { worker_connections 4096; }
http {
  log_format bench '$request_method $uri $status $request_length $bytes_sent $body_bytes_sent "$http_range"';
  access_log ${log} bench;
  sendfile on; tcp_nopush on; keepalive_requests 1000000; keepalive_timeout 120s;
  client_body_temp_path ${work}/b; proxy_temp_path ${work}/p; fastcgi_temp_path ${work}/f;
  uwsgi_temp_path ${work}/u; scgi_temp_path ${work}/s;
  upstream registry { server 127.0.0.1:${registryPort}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location /data/ { alias ${dataRoot}/; }
    location /v2/ {
      proxy_pass http://registry; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $http_host; proxy_set_header X-Forwarded-Proto http;
      proxy_buffering off; proxy_request_buffering off; client_max_body_size 0;
      proxy_read_timeout 600s; proxy_send_timeout 600s; proxy_max_temp_file_size 0;
    }
  }
}
`,
  );
  await writeFile(log, "");
  const child: ChildProcess = spawn(
    "/usr/sbin/nginx",
    ["-c", join(work, "nginx.conf"), "-p", work, "-e", join(work, "error.log")],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    try {
      const r = await request(`${origin}/v2/`);
      await r.body.dump();
      if (r.statusCode === 200) break;
    } catch {}
    if (i > 200) throw new Error(`nginx did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const size = async () => (await stat(log)).size;
  return {
    origin,
    host: `127.0.0.1:${port}`,
    url: (p) => `${origin}/data/${p}`,
    mark: size,
    async since(mark) {
      // nginx logs a request when it finalizes it, a moment after the client has the last byte: wait until
      // the log has not grown for 40 ms.
      let last = await size();
      let stableSince = performance.now();
      while (performance.now() - stableSince < 40) {
        await new Promise((r) => setTimeout(r, 10));
        const now = await size();
        if (now !== last) {
          last = now;
          stableSince = performance.now();
        }
      }
      const fh = await open(log, "r");
      try {
        const buf = Buffer.alloc(last - mark);
        await fh.read(buf, 0, buf.length, mark);
        const lines = buf.toString("utf8").split("\n").filter(Boolean);
        const count: WireCount = { requests: 0, bytesDown: 0, bytesUp: 0, lines };
        for (const line of lines) {
          const [, , , reqLen, , body] = line.split(" ");
          count.requests++;
          count.bytesUp += Number(reqLen);
          count.bytesDown += Number(body);
        }
        return count;
      } finally {
        await fh.close();
      }
    },
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) {
        const exited = new Promise((r) => child.once("exit", r));
        process.kill(child.pid, "SIGTERM");
        const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
