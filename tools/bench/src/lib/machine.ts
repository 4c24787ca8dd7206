// The machine every result is recorded with.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  loadAverage: number[];
  tools: Record<string, string>;
}

function version(cmd: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return pattern.exec(out)?.[1] ?? out.split("\n")[0]!.trim();
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? "");
    return pattern.exec(stderr)?.[1] ?? "unknown";
  }
}

export function describeMachine(): Machine {
  let cpuModel = os.cpus()[0]?.model ?? "unknown";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1] !== undefined) cpuModel = m[1].trim();
  } catch {}
  let osName = `${os.type()} ${os.release()}`;
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync("/etc/os-release", "utf8"));
    if (m?.[1] !== undefined) osName = `${m[1]} (${os.release()})`;
  } catch {}
  return {
    cores: os.availableParallelism(),
    cpuModel,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: osName,
    node: process.version,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    tools: {
      zstd: version("zstd", ["--version"], /v(\d+\.\d+\.\d+)/),
      tar: version("tar", ["--version"], /\(GNU tar\) (\S+)/),
      gzip: version("gzip", ["--version"], /gzip (\S+)/),
      curl: version("curl", ["--version"], /curl (\S+)/),
      zip: version("zip", ["-v"], /Zip (\d+\.\d+)/),
      nginx: version("/usr/sbin/nginx", ["-v"], /nginx\/(\S+)/),
      "docker-registry": version("/usr/bin/docker-registry", ["--version"], /v?(\d+\.\d+\.\d+\S*)/),
      "redis-server": version("/usr/bin/redis-server", ["--version"], /v=(\S+)/),
    },
  };
}
