import type { CommandSpec } from "../spec.ts";
import { cache } from "./cache.ts";
import { cat } from "./cat.ts";
import { config } from "./config.ts";
import { copy } from "./copy.ts";
import { cp } from "./cp.ts";
import { inspect } from "./inspect.ts";
import { login, logout } from "./login.ts";
import { ls } from "./ls.ts";
import { pull } from "./pull.ts";
import { push } from "./push.ts";
import { sign, verify } from "./sign.ts";
import { tag } from "./tag.ts";
import { tree } from "./tree.ts";
import { version } from "./version.ts";

/** The command table: the parser, `--help` and docs/cli.md are all generated from it. @public */
export const COMMANDS: readonly CommandSpec[] = [
  push,
  pull,
  cat,
  cp,
  ls,
  tree,
  inspect,
  tag,
  copy,
  sign,
  verify,
  login,
  logout,
  cache,
  config,
  version,
];
