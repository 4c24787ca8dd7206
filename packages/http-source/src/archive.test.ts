import { Archive, createArchive } from "@blobkit/core";
import { describe, expect, it } from "vitest";
import { startServer } from "../test/server.ts";
import { HttpSource } from "./index.ts";

describe("HttpSource with the core Archive reader", () => {
  it("reads verified files of an archive whose data blob is served over HTTP", async () => {
    const chunks: Uint8Array[] = [];
    const sink = new WritableStream<Uint8Array>({ write: (chunk) => void chunks.push(chunk.slice()) });
    const big = "x".repeat(100_000);
    const result = await createArchive(
      [
        { path: "config/app.json", content: '{"ok":true}' },
        { path: "data/big.txt", content: big },
      ],
      sink,
    );
    const server = await startServer(Buffer.concat(chunks));
    const source = new HttpSource(server.url, { size: result.dataSize, id: result.dataDigest });
    try {
      const archive = await Archive.open({ index: result.index, source });
      expect(await archive.readFile("config/app.json", { encoding: "utf8" })).toBe('{"ok":true}');
      expect(await archive.readFile("data/big.txt", { encoding: "utf8" })).toBe(big);
      expect(server.requests.every((r) => r.method === "GET" && r.headers.range !== undefined)).toBe(true);
    } finally {
      await source.close();
      await server.close();
    }
  });
});
