import { describeByteSource } from "@blobkit/conformance";
import { startServer } from "../test/server.ts";
import { HttpSource } from "./index.ts";

describeByteSource("HttpSource (size discovered)", async (bytes) => {
  const server = await startServer(bytes);
  return {
    source: new HttpSource(server.url),
    expected: bytes,
    cleanup: () => server.close(),
  };
});

describeByteSource("HttpSource (size given)", async (bytes) => {
  const server = await startServer(bytes);
  return {
    source: new HttpSource(server.url, { size: bytes.length }),
    expected: bytes,
    cleanup: () => server.close(),
  };
});

describeByteSource(
  "HttpSource (no HEAD, size from a range probe)",
  async (bytes) => {
    const server = await startServer(bytes, { noHead: true });
    return {
      source: new HttpSource(server.url),
      expected: bytes,
      cleanup: () => server.close(),
    };
  },
  { largeSize: 0 },
);

describeByteSource("HttpSource (server ignores Range, onRangeIgnored: discard)", async (bytes) => {
  const server = await startServer(bytes, { ignoreRange: true });
  return {
    source: new HttpSource(server.url, { onRangeIgnored: "discard" }),
    expected: bytes,
    cleanup: () => server.close(),
  };
});
