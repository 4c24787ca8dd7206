// Deterministic data generators: a seeded PRNG, source-like text with realistic compressibility (about 3–4×
// with zstd -3, like real sources and configs) and incompressible bytes (AES-CTR keystream of a seed).
import { createCipheriv, createHash } from "node:crypto";

/** mulberry32: small, fast, deterministic. Returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYWORDS = [
  "const",
  "let",
  "return",
  "if",
  "else",
  "for",
  "await",
  "export",
  "import",
  "function",
  "new",
  "throw",
  "case",
  "yield",
  "type",
  "interface",
];
const PUNCT = [" = ", "(", ");", " => {", "}", ", ", ".", " === ", " + ", "[", "];", ": ", " ?? "];

function vocabulary(rand: () => number, n: number): string[] {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 3 + Math.floor(rand() * 10);
    let w = "";
    for (let j = 0; j < len; j++) w += letters[Math.floor(rand() * 26)];
    if (rand() < 0.4) w = w[0]!.toUpperCase() + w.slice(1);
    out.push(w);
  }
  return out;
}
const VOCAB = vocabulary(prng(0x5eed), 1500);

function makeLine(rand: () => number): string {
  const word = () => VOCAB[Math.floor(rand() * rand() * VOCAB.length)]!;
  let line = "  ".repeat(Math.floor(rand() * 5));
  const r = rand();
  if (r < 0.08) line += `// ${word()} ${word()} ${word()} ${word()} ${word()}`;
  else if (r < 0.14) line += "}";
  else {
    line += `${KEYWORDS[Math.floor(rand() * KEYWORDS.length)]} ${word()}`;
    const k = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < k; i++) {
      line += PUNCT[Math.floor(rand() * PUNCT.length)]! + word();
      if (rand() < 0.15) line += String(Math.floor(rand() * 10000));
    }
    line += ";";
  }
  return `${line}\n`;
}

/** A pool of distinct generated lines, in one buffer. */
const POOL_LINES = 40_000;
const pool = (() => {
  const rand = prng(0x11ee);
  const lines = Array.from({ length: POOL_LINES }, () => makeLine(rand));
  const bytes = Buffer.from(lines.join(""), "latin1");
  const starts = new Uint32Array(POOL_LINES + 1);
  let at = 0;
  for (let i = 0; i < POOL_LINES; i++) {
    starts[i] = at;
    at += lines[i]!.length;
  }
  starts[POOL_LINES] = at;
  return { bytes, starts };
})();

/**
 * Source-code-like text of exactly `size` bytes: lines drawn from a pool of 40 000 generated lines
 * (keywords, identifiers from a 1 500-word vocabulary, punctuation, numbers) with a skewed distribution, so
 * lines repeat within a file the way boilerplate does. Compresses about 3–4× with zstd -3 per file.
 */
export function textBytes(size: number, rand: () => number): Buffer {
  const out = Buffer.allocUnsafe(size);
  const { bytes, starts } = pool;
  // Each file draws from its own window of the pool (a "module" has its own vocabulary).
  const base = Math.floor(rand() * POOL_LINES);
  let n = 0;
  while (n < size) {
    const i =
      rand() < 0.8
        ? (base + Math.floor(rand() * rand() * 1500)) % POOL_LINES
        : Math.floor(rand() * rand() * POOL_LINES);
    n += bytes.copy(out, n, starts[i]!, starts[i + 1]!);
  }
  return out;
}

/** `size` incompressible bytes, deterministic in `seed` (AES-128-CTR keystream). */
export function randomBytesSeeded(size: number, seed: string): Buffer {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32));
  return cipher.update(Buffer.alloc(size));
}
