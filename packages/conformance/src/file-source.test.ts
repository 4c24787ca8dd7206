import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSource } from "@blobkit/core";
import { describeByteSource } from "./index.ts";

describeByteSource("FileSource", async (bytes) => {
  const dir = await mkdtemp(join(tmpdir(), "blobkit-conformance-"));
  const path = join(dir, "data.bin");
  await writeFile(path, bytes);
  return {
    source: await FileSource.open(path),
    expected: bytes,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
