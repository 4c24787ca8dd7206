import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { anonymousCredentials, Client } from "@blobkit/registry";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The registry package's harness: the real Debian docker-registry on a random loopback port.
import { type RunningRegistry, startRegistry } from "../../registry/test/registry-server.ts";
import { type OpaInput, opaPolicy, restEvaluator, wasmEvaluator } from "../src/index.ts";
import { abiDouble, tempDir } from "./support.ts";

describe("OPA policies on a real registry", () => {
  let registry: RunningRegistry;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let reference: string;
  beforeAll(async () => {
    [registry, temp] = await Promise.all([startRegistry(), tempDir()]);
    const src = join(temp.dir, "src");
    await mkdir(src, { recursive: true });
    await writeFile(join(src, "a.txt"), "alpha");
    await writeFile(join(src, "b.txt"), "bravo!");
    reference = `${registry.host}/acme/configs:v1`;
    const client = new Client({ credentials: anonymousCredentials });
    try {
      await client.push(reference, src, { annotations: { "org.example.team": "payments" } });
    } finally {
      await client.close();
    }
  });
  afterAll(async () => {
    await registry?.stop();
    await temp?.remove();
  });

  it("a wasm policy's deny set stops pull, inspect and fetch with ERR_POLICY; an allowing one lets them through", async () => {
    const wasm = await abiDouble(2);
    const denying = new Client({
      credentials: anonymousCredentials,
      policies: [opaPolicy({ name: "rego", evaluator: wasmEvaluator({ wasm, data: ["unsigned archive"] }) })],
    });
    const allowing = new Client({
      credentials: anonymousCredentials,
      policies: [opaPolicy({ evaluator: wasmEvaluator({ wasm, data: [] }) })],
    });
    try {
      for (const operation of [
        () => denying.pull(reference),
        () => denying.inspect(reference),
        () => denying.fetch(reference),
      ]) {
        await expect(operation()).rejects.toMatchObject({
          code: "ERR_POLICY",
          message: expect.stringMatching(/policy rego denied .*: unsigned archive$/),
        });
      }
      const archive = await allowing.pull(reference);
      expect(await archive.readFile("b.txt", { encoding: "utf8" })).toBe("bravo!");
      await archive.close();
    } finally {
      await denying.close();
      await allowing.close();
    }
  });

  it("the input document a REST policy receives describes the registry artifact", async () => {
    const { createServer } = await import("node:http");
    let received: OpaInput | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { input: OpaInput }).input;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ result: { allow: received.index?.fileCount === 2, deny: [] } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const client = new Client({
      credentials: anonymousCredentials,
      policies: [opaPolicy({ evaluator: restEvaluator({ url: `http://127.0.0.1:${port}` }) })],
    });
    try {
      const fetched = await client.fetch(reference);
      expect(received?.reference).toBe(fetched.reference);
      expect(received?.manifest).toMatchObject({
        digest: fetched.descriptor.digest,
        artifactType: "application/vnd.meigma.blob.v1",
        annotations: { "org.example.team": "payments" },
      });
      expect(received?.index).toMatchObject({ fileCount: 2, totalSize: 11 });
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
