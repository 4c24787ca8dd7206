import { OciLayoutStore } from "../src/layout.ts";
import { pushSimple } from "./layout-fixtures.ts";

// One of several processes updating the same image layout at once (layout.test.ts): each pushes `count`
// manifests, each under its own tag, and moves the shared tag `latest` to each of them. Prints the
// tag → digest pairs it pushed as JSON.
const [dir, id, count] = process.argv.slice(2);
const store = await OciLayoutStore.open(dir!);
const pushed: Record<string, string> = {};
for (let i = 0; i < Number(count); i++) {
  const tag = `w${id}-${i}`;
  // Every worker also pushes the same shared blob (concurrent pushes of one blob).
  await pushSimple(store, "shared layer");
  const { manifest } = await pushSimple(store, `worker ${id} item ${i}`, tag);
  await store.tag(manifest, "latest");
  pushed[tag] = manifest.digest;
}
await store.close();
process.stdout.write(JSON.stringify(pushed));
