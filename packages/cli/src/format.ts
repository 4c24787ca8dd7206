/** Formatting and parsing helpers shared by the commands. */

const UNITS = ["B", "K", "M", "G", "T", "P"];

/** `1536` → `1.5K` (1024-based, one decimal; bytes below 1024 as is). Go's `ls -h` style. */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)}${UNITS[unit]}`;
}

/** `1536` → `1.5 KiB` (for summaries and progress bars). */
export function humanBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$/i;

/**
 * Parses a size: a number of bytes, or a number with a unit — `K`/`M`/`G`/`T` and `KiB`/`MiB`/… are
 * 1024-based, `KB`/`MB`/`GB`/`TB` are 1000-based (`64MiB`, `5GB`, `512K`). Undefined when malformed.
 */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === "number") return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const match = SIZE.exec(text);
  if (match === null) return undefined;
  const [, number, prefix = "", binary = "", b = ""] = match;
  const power = "kmgtp".indexOf(prefix.toLowerCase()) + 1;
  if (prefix === "" && binary !== "") return undefined;
  const base = prefix !== "" && binary === "" && b !== "" ? 1000 : 1024;
  const value = Math.round(Number(number) * base ** power);
  return Number.isSafeInteger(value) ? value : undefined;
}

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/;

/** Parses `500ms`, `30s`, `5m`, `1h` or a bare number of milliseconds into ms. Undefined when malformed. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === "number") return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const match = DURATION.exec(text);
  if (match === null) return undefined;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "ms"] ?? 1;
  return Math.round(Number(match[1]) * factor);
}

/** `0o755` → `-rwxr-xr-x`; directories get a `d`. */
export function modeString(mode: number, directory = false): string {
  const bits = "rwxrwxrwx";
  let out = directory ? "d" : "-";
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : "-";
  return out;
}

/** `0o644` → `"0644"`. */
export function octalMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, "0")}`;
}

/** Pads every column of `rows` to its widest cell (the last column is not padded). */
export function columns(
  rows: readonly (readonly string[])[],
  align: readonly ("left" | "right")[] = [],
): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => {
          if (i === row.length - 1 && align[i] !== "right") return cell;
          return align[i] === "right" ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0);
        })
        .join("  "),
    )
    .join("\n");
}

/** A `redis://user:secret@host` URL with its password (and user) replaced, for display. */
export function redactUrl(location: string): string {
  try {
    const url = new URL(location);
    if (url.password !== "" || url.username !== "") {
      url.password = url.password === "" ? "" : "***";
      return url.toString();
    }
    return location;
  } catch {
    return location;
  }
}
