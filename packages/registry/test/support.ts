import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Agent, type Dispatcher } from "undici";
import type { Signer } from "../src/policy.ts";

/** Deterministic incompressible bytes (core's test helper). */
export { pseudoRandomBytes } from "../../core/src/test-support/build-archive.ts";

/** One file of a test tree. */
export interface TreeFile {
  path: string;
  content: Uint8Array | string;
  mode?: number;
}

/** Writes `files` under `root`. */
export async function writeTree(root: string, files: readonly TreeFile[]): Promise<void> {
  for (const file of files) {
    const target = join(root, file.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.content);
    await chmod(target, file.mode ?? 0o644);
  }
}

/** Every regular file under `root` with its bytes and permission bits, by relative path. */
export async function readTree(root: string): Promise<Map<string, { bytes: Buffer; mode: number }>> {
  const out = new Map<string, { bytes: Buffer; mode: number }>();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory()) await walk(join(dir, entry.name), path);
      else if (entry.isFile()) {
        const full = join(dir, entry.name);
        out.set(path, { bytes: await readFile(full), mode: (await stat(full)).mode & 0o777 });
      }
    }
  };
  await walk(root, "");
  return out;
}

/** A request seen by a {@link RecordingAgent}. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** An undici Agent that records every request it dispatches (method, path, headers). */
export class RecordingAgent extends Agent {
  readonly requests: RecordedRequest[] = [];

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const headers: Record<string, string> = {};
    const raw = options.headers;
    if (Array.isArray(raw)) {
      for (let i = 0; i + 1 < raw.length; i += 2) headers[String(raw[i]).toLowerCase()] = String(raw[i + 1]);
    } else if (raw !== null && raw !== undefined && typeof raw === "object") {
      for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
        headers[name.toLowerCase()] = String(value);
      }
    }
    this.requests.push({ method: options.method, path: options.path, headers });
    return super.dispatch(options, handler);
  }

  /** Forgets what was recorded so far. */
  reset(): void {
    this.requests.length = 0;
  }
}

/** A test signer whose single layer is the signed digest (real signers live in policy-sigstore). */
export const digestSigner: Signer = {
  async sign(subject) {
    return {
      artifactType: "application/vnd.blobkit.test.sig",
      layers: [
        { mediaType: "application/octet-stream", bytes: new TextEncoder().encode(subject.descriptor.digest) },
      ],
    };
  },
};
