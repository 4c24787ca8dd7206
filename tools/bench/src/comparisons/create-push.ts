// Create and push: blobkit `createLocalArchive` / `Client.push(dir)` (fresh Node process) vs
// `tar -cf - | zstd -3` and `tar -czf`, and those blobs uploaded with curl (sha256sum for the digest, then
// the registry's POST + monolithic PUT), into a fresh repository every run (so nothing is skipped as
// already present). All through the same nginx in front of the registry.
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Context } from "../lib/context.ts";
import type { DatasetName } from "../lib/datasets.ts";
import type { Comparison, Result } from "../lib/types.ts";
import { compareSides, MiB, medianOf, row, runChild, sh, shWithRss } from "../lib/util.ts";

const ZSTD = "tar | zstd -3";
const GZ = "tar -czf";

/** Uploads a file as a blob with curl: sha256sum, POST, PUT ?digest=. */
async function curlUpload(ctx: Context, path: string, repository: string): Promise<void> {
  const origin = ctx.nginx.origin;
  const headers = await sh(`curl -sS -X POST -D - -o /dev/null '${origin}/v2/${repository}/blobs/uploads/'`);
  const location = /^location:\s*(\S+)/im.exec(headers)?.[1];
  if (location === undefined) throw new Error(`no upload location: ${headers}`);
  const digest = (await sh(`sha256sum '${path}'`)).split(" ")[0];
  const url = new URL(location, origin);
  url.searchParams.set("digest", `sha256:${digest}`);
  const code = await sh(
    `curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' -T '${path}' '${url.href}'`,
  );
  if (code !== "201") throw new Error(`curl upload answered ${code}`);
}

async function createPushRows(ctx: Context, name: DatasetName): Promise<Result[]> {
  const ds = await ctx.dataset(name);
  const out = join(ctx.work, `create-${name}`);
  const fresh = async () => {
    await rm(out, { recursive: true, force: true });
    await mkdir(out, { recursive: true });
  };
  const runs = name === "large" ? ctx.heavyRuns : ctx.runs;
  const tzst = join(out, "tree.tar.zst");
  const tgz = join(out, "tree.tar.gz");
  // `tar -czf` (gzip, ~30 MiB/s here) dominates the run time on the large set: left out of --quick there.
  const withGzip = !(ctx.quick && name === "large");
  let repoSeq = 0;
  const repo = (p: string) => `bench/${p}-${name}-${Date.now()}-${++repoSeq}`;
  const create = await compareSides(
    [
      {
        name: "blobkit",
        before: fresh,
        run: async () => (await runChild("create", [ds.tree, join(out, "archive")])).maxRssKiB,
      },
      {
        name: ZSTD,
        before: fresh,
        run: () => shWithRss(`tar -C '${ds.tree}' -cf - . | zstd -3 -q -o '${tzst}'`, ctx.work),
      },
      ...(withGzip
        ? [{ name: GZ, before: fresh, run: () => shWithRss(`tar -C '${ds.tree}' -czf '${tgz}' .`, ctx.work) }]
        : []),
    ],
    runs,
  );
  const push = await compareSides(
    [
      {
        name: "blobkit",
        before: fresh,
        run: async () =>
          (await runChild("push", [`${ctx.nginx.host}/${repo("push")}:v1`, ds.tree])).maxRssKiB,
      },
      {
        name: `${ZSTD} + curl upload`,
        before: fresh,
        run: async () => {
          const rss = await shWithRss(`tar -C '${ds.tree}' -cf - . | zstd -3 -q -o '${tzst}'`, ctx.work);
          await curlUpload(ctx, tzst, repo("curl-zst"));
          return rss;
        },
      },
      ...(withGzip
        ? [
            {
              name: `${GZ} + curl upload`,
              before: fresh,
              run: async () => {
                const rss = await shWithRss(`tar -C '${ds.tree}' -czf '${tgz}' .`, ctx.work);
                await curlUpload(ctx, tgz, repo("curl-gz"));
                return rss;
              },
            },
          ]
        : []),
    ],
    runs,
    { nginx: ctx.nginx },
  );
  await rm(out, { recursive: true, force: true });
  const size = `${ds.files.length} files, ${(ds.totalBytes / MiB).toFixed(0)} MiB`;
  const m = (
    s: Map<string, import("../lib/util.ts").Sample[]>,
    n: string,
    f: Parameters<typeof medianOf>[1],
  ) => medianOf(s.get(n), f);
  const mibps = (ms: number) => ds.totalBytes / MiB / (ms / 1000);
  const createNames = withGzip ? [ZSTD, GZ] : [ZSTD];
  const createPeers = (f: Parameters<typeof medianOf>[1]) =>
    Object.fromEntries(createNames.map((n) => [n, m(create, n, f)]));
  const pushNames = createNames.map((n) => `${n} + curl upload`);
  const pushPeers = (f: Parameters<typeof medianOf>[1]) =>
    Object.fromEntries(pushNames.map((n) => [n, m(push, n, f)]));
  const rssTarget = name === "large" ? { target: "≤ 200 MiB", check: (b: number) => b <= 200 } : {};
  return [
    row({
      id: `create.${name}`,
      metric: "throughput",
      unit: "MiB/s",
      label: `create an archive file of the ${name} set (${size})`,
      blobkit: mibps(m(create, "blobkit", (s) => s.ms)),
      peers: Object.fromEntries(Object.entries(createPeers((s) => s.ms)).map(([k, v]) => [k, mibps(v)])),
      higherIsBetter: true,
      runs,
      target: `≥ 1.0× ${ZSTD}`,
      check: (_b, r) => (r[ZSTD] ?? 0) >= 1.0,
      note: "blobkit in a fresh Node process (startup included)",
    }),
    row({
      id: `create.${name}`,
      metric: "peak-rss",
      unit: "MiB",
      label: `create an archive file of the ${name} set (${size})`,
      blobkit: m(create, "blobkit", (s) => s.rssKiB) / 1024,
      peers: Object.fromEntries(Object.entries(createPeers((s) => s.rssKiB)).map(([k, v]) => [k, v / 1024])),
      runs,
      ...rssTarget,
    }),
    row({
      id: `push.${name}`,
      metric: "throughput",
      unit: "MiB/s",
      label: `create + push to the registry, ${name} set (${size})`,
      blobkit: mibps(m(push, "blobkit", (s) => s.ms)),
      peers: Object.fromEntries(Object.entries(pushPeers((s) => s.ms)).map(([k, v]) => [k, mibps(v)])),
      higherIsBetter: true,
      runs,
      target: `≥ 1.0× ${ZSTD} + curl upload`,
      check: (_b, r) => (r[`${ZSTD} + curl upload`] ?? 0) >= 1.0,
    }),
    row({
      id: `push.${name}`,
      metric: "bytes-up",
      unit: "B",
      label: `create + push to the registry, ${name} set (${size})`,
      blobkit: m(push, "blobkit", (s) => s.wire?.bytesUp),
      peers: pushPeers((s) => s.wire?.bytesUp),
      runs,
    }),
    row({
      id: `push.${name}`,
      metric: "requests",
      unit: "count",
      label: `create + push to the registry, ${name} set (${size})`,
      blobkit: m(push, "blobkit", (s) => s.wire?.requests),
      peers: pushPeers((s) => s.wire?.requests),
      runs,
    }),
    row({
      id: `push.${name}`,
      metric: "peak-rss",
      unit: "MiB",
      label: `create + push to the registry, ${name} set (${size})`,
      blobkit: m(push, "blobkit", (s) => s.rssKiB) / 1024,
      peers: Object.fromEntries(Object.entries(pushPeers((s) => s.rssKiB)).map(([k, v]) => [k, v / 1024])),
      runs,
      ...rssTarget,
    }),
  ];
}

export const createPush: Comparison = {
  id: "create-push",
  title: "create / push: blobkit vs tar | zstd -3 and tar -czf (+ curl upload)",
  async run(ctx) {
    return [...(await createPushRows(ctx, "source")), ...(await createPushRows(ctx, "large"))];
  },
};
