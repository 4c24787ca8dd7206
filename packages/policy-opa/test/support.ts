import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { Client, type PolicyContext, parseReference } from "@blobkit/registry";
import wabtInit from "wabt";

const WAT = fileURLToPath(new URL("./abi-double.wat", import.meta.url));
const compiled = new Map<number, Uint8Array>();

/**
 * The OPA Wasm ABI test double (`abi-double.wat`), compiled with wabt for ABI minor version `minor`
 * (2: the SDK's `opa_eval` fast path; 1: the `opa_eval_ctx_*` + `eval` path).
 */
export async function abiDouble(minor: 1 | 2): Promise<Uint8Array> {
  const cached = compiled.get(minor);
  if (cached !== undefined) return cached;
  const { readFile } = await import("node:fs/promises");
  const text = (await readFile(WAT, "utf8")).replaceAll("__MINOR__", String(minor));
  const wabt = await wabtInit();
  const module = wabt.parseWat("abi-double.wat", text);
  try {
    module.validate();
    const { buffer } = module.toBinary({});
    compiled.set(minor, buffer);
    return buffer;
  } finally {
    module.destroy();
  }
}

/** A gzip-compressed ustar archive of `files` (name → content), like an OPA bundle. */
export function tarGz(files: Record<string, Uint8Array | string>): Uint8Array {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const body = Buffer.from(content);
    const header = Buffer.alloc(512);
    header.write(name, 0, 100, "utf8");
    header.write("0000644\0", 100, "latin1");
    header.write("0000000\0", 108, "latin1");
    header.write("0000000\0", 116, "latin1");
    header.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124, "latin1");
    header.write("00000000000\0", 136, "latin1");
    header.write("        ", 148, "latin1");
    header.write("0", 156, "latin1");
    header.write("ustar\0", 257, "latin1");
    header.write("00", 263, "latin1");
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return new Uint8Array(gzipSync(Buffer.concat(blocks)));
}

/** A temporary directory removed by the returned function. */
export async function tempDir(
  prefix = "blobkit-opa-",
): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A real archive pushed to an OCI layout, and the policy context a Client would build for it. */
export interface ArchiveFixture {
  client: Client;
  layout: string;
  reference: string;
  context: PolicyContext;
  /** How many times `fetchBlob` was called on the context's store. */
  fetches: () => number;
  close: () => Promise<void>;
}

/**
 * Pushes a 3-file archive (sizes 5, 11 and 0 bytes) with an annotation to a temporary OCI layout and builds the
 * {@link PolicyContext} for it, with a store that counts index fetches.
 */
export async function archiveFixture(): Promise<ArchiveFixture> {
  const temp = await tempDir();
  const src = join(temp.dir, "src");
  await mkdir(join(src, "conf"), { recursive: true });
  await writeFile(join(src, "hello.txt"), "hello");
  await writeFile(join(src, "conf", "app.json"), '{"a": true}');
  await writeFile(join(src, "empty"), "");
  const layout = join(temp.dir, "layout");
  const client = new Client();
  const reference = `oci:${layout}:v1`;
  await client.push(reference, src, { annotations: { "org.example.team": "payments" } });
  const fetched = await client.fetch(reference);
  const store = await client.store(parseReference(reference));
  let fetches = 0;
  const counting = new Proxy(store, {
    get(target, property, receiver) {
      if (property === "fetchBlob") {
        return (...args: Parameters<typeof store.fetchBlob>) => {
          fetches++;
          return target.fetchBlob(...args);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    client,
    layout,
    reference,
    context: {
      reference: fetched.reference,
      descriptor: fetched.descriptor,
      manifest: fetched.manifest,
      store: counting,
    },
    fetches: () => fetches,
    close: async () => {
      await client.close();
      await temp.remove();
    },
  };
}

/** An in-toto statement about `digest` (`sha256:<hex>`). */
export function statement(
  digest: string,
  predicateType = "https://slsa.dev/provenance/v1",
  predicate: unknown = {},
) {
  return {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "archive", digest: { sha256: digest.slice("sha256:".length) } }],
    predicateType,
    predicate,
  };
}
