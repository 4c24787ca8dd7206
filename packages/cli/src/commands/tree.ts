import { usageError } from "../exit-codes.ts";
import { array, integer, type JsonSchema, object, oneOf, string } from "../json-schema.ts";
import type { CommandSpec } from "../spec.ts";
import { arg, openArchive, SKIP_CACHE } from "./common.ts";

interface Node {
  name: string;
  path: string;
  type: "file" | "directory";
  size: number;
  children?: Node[];
}

const nodeSchema: JsonSchema = {
  type: "object",
  properties: {
    name: string(),
    path: string(),
    type: oneOf(["file", "directory"]),
    size: integer("file size; for directories the sum of the subtree"),
    children: array({ $ref: "#/$defs/node" }, "directories only"),
  },
  required: ["name", "path", "type", "size"],
};

export const tree: CommandSpec = {
  name: "tree",
  summary: "Show an archive (or a subtree) as a tree",
  args: [
    { name: "ref", required: true, description: "registry reference or oci:<dir>[:tag|@digest]" },
    { name: "path", description: "subtree (default: the root)" },
  ],
  options: [
    {
      flags: "-L, --level <n>",
      parser: "int",
      description: "descend at most n levels (0 = unlimited)",
      defaultValue: 0,
    },
    { flags: "--dirs-first", description: "list directories before files" },
    SKIP_CACHE,
  ],
  examples: [
    { command: "blob tree oci:./store:v1", description: "the whole archive" },
    { command: "blob tree ghcr.io/acme/configs:v1 /config -L 1", description: "one level of a subtree" },
  ],
  json: {
    ...object({
      reference: string(),
      digest: string(),
      path: string(),
      root: { $ref: "#/$defs/node" },
      directoryCount: integer(),
      fileCount: integer(),
    }),
    $defs: { node: nodeSchema },
  },
  async action(ctx, args, opts) {
    const level = typeof opts.level === "number" ? opts.level : 0;
    if (level < 0) throw usageError("--level must be ≥ 0");
    const { archive, reference, digest } = await openArchive(ctx, arg(args, "ref"), {
      skipCache: opts.skipCache === true,
    });
    const top = await archive.stat(typeof args.path === "string" ? args.path : ".");
    const root: Node = {
      name: top.path === "." ? "." : top.name,
      path: top.path,
      type: top.type,
      size: top.size,
    };
    let fileCount = 0;
    let directoryCount = 0;
    if (top.type === "directory") {
      root.children = [];
      const prefix = top.path === "." ? "" : `${top.path}/`;
      const dirs = new Map<string, Node>();
      for await (const file of archive.walk(top.path)) {
        const segments = file.path.slice(prefix.length).split("/");
        let parent = root;
        parent.size += file.size;
        let path = top.path === "." ? "" : top.path;
        for (const segment of segments.slice(0, -1)) {
          path = path === "" ? segment : `${path}/${segment}`;
          let node = dirs.get(path);
          if (node === undefined) {
            node = { name: segment, path, type: "directory", size: 0, children: [] };
            parent.children?.push(node);
            dirs.set(path, node);
            directoryCount++;
          }
          node.size += file.size;
          parent = node;
        }
        parent.children?.push({ name: file.name, path: file.path, type: "file", size: file.size });
        fileCount++;
      }
      const sort = (node: Node): void => {
        node.children?.sort((a, b) =>
          opts.dirsFirst === true && a.type !== b.type
            ? a.type === "directory"
              ? -1
              : 1
            : a.name < b.name
              ? -1
              : a.name > b.name
                ? 1
                : 0,
        );
        node.children?.forEach(sort);
      };
      sort(root);
    } else fileCount = 1;
    const prune = (node: Node, depth: number): Node => {
      if (node.children === undefined) return node;
      if (level > 0 && depth >= level) return { ...node, children: [] };
      return { ...node, children: node.children.map((c) => prune(c, depth + 1)) };
    };
    const shown = prune(root, 0);
    await ctx.result(
      { reference, digest, path: top.path, root: shown, directoryCount, fileCount },
      () => {
        const lines = [shown.type === "directory" ? ctx.style(shown.name, "blue") : shown.name];
        const draw = (node: Node, indent: string): void => {
          const children = node.children ?? [];
          children.forEach((child, i) => {
            const last = i === children.length - 1;
            lines.push(
              `${indent}${last ? "└── " : "├── "}${child.type === "directory" ? ctx.style(child.name, "blue") : child.name}`,
            );
            draw(child, `${indent}${last ? "    " : "│   "}`);
          });
        };
        draw(shown, "");
        lines.push(
          "",
          `${directoryCount} ${directoryCount === 1 ? "directory" : "directories"}, ${fileCount} ${fileCount === 1 ? "file" : "files"}`,
        );
        return lines.join("\n");
      },
      { quietable: false },
    );
  },
};
