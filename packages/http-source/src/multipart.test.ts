import { describe, expect, it } from "vitest";
import { byterangesBoundary, parseByteranges } from "./multipart.ts";

function body(
  boundary: string,
  parts: { start: number; data: Buffer; total?: string }[],
  tail = "--\r\n",
): Buffer {
  const out: Buffer[] = [Buffer.from("\r\n")];
  for (const part of parts) {
    const end = part.start + part.data.length - 1;
    out.push(
      Buffer.from(
        `--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${part.start}-${end}/${part.total ?? "1000"}\r\n\r\n`,
      ),
      part.data,
      Buffer.from("\r\n"),
    );
  }
  out.push(Buffer.from(`--${boundary}${tail}`));
  return Buffer.concat(out);
}

describe("byterangesBoundary", () => {
  it.each([
    ["multipart/byteranges; boundary=abc123", "abc123"],
    ['multipart/byteranges; boundary="a b:c"', "a b:c"],
    ["Multipart/ByteRanges;charset=x; boundary=zz", "zz"],
  ])("%s → %s", (type, boundary) => {
    expect(byterangesBoundary(type)).toBe(boundary);
  });

  it.each([undefined, "application/octet-stream", "multipart/mixed; boundary=x", "multipart/byteranges"])(
    "%s → undefined",
    (type) => {
      expect(byterangesBoundary(type)).toBeUndefined();
    },
  );
});

describe("parseByteranges", () => {
  it("splits parts by their Content-Range lengths, even when the boundary occurs inside the data", () => {
    const boundary = "XYZ";
    const tricky = Buffer.from(`ab\r\n--${boundary}\r\ncd`);
    const parsed = parseByteranges(
      body(boundary, [
        { start: 0, data: Buffer.from("hello") },
        { start: 100, data: tricky },
      ]),
      boundary,
    );
    expect(parsed?.map((p) => [p.start, p.end, p.total, Buffer.from(p.data).toString()])).toEqual([
      [0, 4, 1000, "hello"],
      [100, 100 + tricky.length - 1, 1000, tricky.toString()],
    ]);
  });

  it("accepts an unknown total (*)", () => {
    expect(
      parseByteranges(body("b", [{ start: 5, data: Buffer.from("x"), total: "*" }]), "b")?.[0]?.total,
    ).toBe(undefined);
  });

  it.each([
    ["no delimiter", Buffer.from("hello"), "b"],
    ["no close delimiter", body("b", [{ start: 0, data: Buffer.from("x") }], "\r\n"), "b"],
    ["no parts", Buffer.from("--b--\r\n"), "b"],
    [
      "data shorter than its range",
      Buffer.from("--b\r\nContent-Range: bytes 0-9/100\r\n\r\nabc\r\n--b--"),
      "b",
    ],
    [
      "garbage after the data",
      Buffer.from("--b\r\nContent-Range: bytes 0-2/100\r\n\r\nabcJUNK\r\n--b--"),
      "b",
    ],
    ["no Content-Range", Buffer.from("--b\r\nContent-Type: x\r\n\r\nabc\r\n--b--"), "b"],
    ["an inverted range", Buffer.from("--b\r\nContent-Range: bytes 5-2/100\r\n\r\nabc\r\n--b--"), "b"],
    ["a range past the total", Buffer.from("--b\r\nContent-Range: bytes 0-2/2\r\n\r\nabc\r\n--b--"), "b"],
    ["headers that never end", Buffer.from("--b\r\nContent-Range: bytes 0-2/100\r\n"), "b"],
    ["another boundary", body("c", [{ start: 0, data: Buffer.from("x") }]), "b"],
  ])("rejects %s (undefined, so the caller falls back)", (_name, bytes, boundary) => {
    expect(parseByteranges(bytes, boundary)).toBeUndefined();
  });
});
