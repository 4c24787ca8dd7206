// Proves that the conformance suites catch real bugs: runs them (in a child vitest) against the deliberately
// broken implementations in test/broken/ and checks that each one fails, on the tests that target its bug,
// while the correct control implementations pass everything.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const config = fileURLToPath(new URL("../test/broken/vitest.config.ts", import.meta.url));

/** Suite (the top-level describe of one describeByteSource/describeCache call) → tests that must fail. */
const EXPECTED_FAILURES: Record<string, readonly string[]> = {
  "ByteSource conformance: broken: off-by-one end check": [
    "reads the whole source in one read",
    "reads the last byte",
    "reads a range ending exactly at the end",
    "reads at boundary offsets and lengths",
  ],
  "ByteSource conformance: broken: lenient end check": [
    "rejects a read ending one byte past the end with ERR_OUT_OF_RANGE",
    "rejects a read of size + 1 bytes at offset 0 with ERR_OUT_OF_RANGE",
  ],
  "ByteSource conformance: broken: lax arguments": [
    "rejects a negative offset with ERR_INVALID_ARGUMENT",
    "rejects a negative length with ERR_INVALID_ARGUMENT",
    "rejects a NaN offset with ERR_INVALID_ARGUMENT",
    "rejects a NaN length with ERR_INVALID_ARGUMENT",
    "rejects a non-integer offset with ERR_INVALID_ARGUMENT",
    "rejects a non-integer length with ERR_INVALID_ARGUMENT",
    "rejects an infinite length with ERR_INVALID_ARGUMENT",
  ],
  "ByteSource conformance: broken: ignores abort": [
    "a read with an already-aborted signal rejects with signal.reason",
    "a read whose signal is aborted while it is in flight rejects with signal.reason",
    "size() with an already-aborted signal rejects with signal.reason",
  ],
  "ByteSource conformance: broken: wrong abort reason": [
    "a read with an already-aborted signal rejects with signal.reason",
    "a read whose signal is aborted while it is in flight rejects with signal.reason",
  ],
  "ByteSource conformance: broken: aliased results": [
    "mutating a returned array does not change later reads",
    "concurrent reads of the same range return equal, independent arrays",
  ],
  "ByteSource conformance: broken: shared file position": [
    "50 concurrent random reads all return the right bytes",
  ],
  "ByteSource conformance: broken: ignores close": [
    "read() after close() rejects with ERR_CLOSED",
    "stream() after close() errors with ERR_CLOSED",
  ],
  "ByteSource conformance: broken: truncating stream": [
    "stream() yields the same bytes as the whole source",
    "stream() yields the bytes of an interior range and of the tail",
  ],
  "ByteSource conformance: broken: stream ignores abort": [
    "stream() with an aborted signal errors with signal.reason",
    "stream() aborted before it is read errors with signal.reason",
  ],
  "Cache conformance: broken: aliased values": [
    "mutating the array passed to set() does not change the stored value",
    "mutating a returned array does not change the stored value",
  ],
  "Cache conformance: broken: torn writes": [
    "20 concurrent sets of one key leave one whole value",
    "gets during concurrent sets see a whole value or undefined",
  ],
  "Cache conformance: broken: ignores TTL": ["entries expire after their TTL; entries without one do not"],
  "Cache conformance: broken: serves damaged entries": [
    "a corrupted entry reads as a miss or the original value, never other bytes",
  ],
  "Cache conformance: broken: throws on damaged entries": [
    "a corrupted entry reads as a miss or the original value, never other bytes",
  ],
  "Cache conformance: broken: empty value reads as a miss": ["round-trips an empty value"],
  "Cache conformance: broken: ignores close": ["operations after close() reject with ERR_CLOSED"],
  "Cache conformance: broken: mangled keys": [
    "handles keys with unusual characters",
    "keys differing only in case or by a prefix are distinct",
  ],
};

/** Correct implementations: every test must pass (none may fail), and the optional features they have run. */
const CONTROLS: Record<string, { minPassed: number }> = {
  "ByteSource conformance: control: reference source": { minPassed: 25 },
  "ByteSource conformance: control: reference streaming source": { minPassed: 35 },
  "Cache conformance: control: reference cache": { minPassed: 22 },
};

interface SuiteOutcome {
  passed: string[];
  failed: string[];
  skipped: string[];
}

interface JsonReport {
  testResults: {
    name: string;
    status: string;
    message?: string;
    assertionResults: { ancestorTitles: string[]; title: string; status: string }[];
  }[];
}

let suites: Map<string, SuiteOutcome>;
let report: JsonReport;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), "blobkit-catches-bugs-"));
  try {
    const outputFile = join(dir, "report.json");
    // The child must not think it is a worker of this run.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("VITEST")));
    const args = [
      "node_modules/vitest/vitest.mjs",
      "run",
      "--config",
      config,
      "--reporter=json",
      "--outputFile",
      outputFile,
    ];
    const child = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, args, { cwd: repoRoot, env, timeout: 90_000 }, (error, _stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stderr });
      });
    });
    // Exit code 1 = some tests failed, which is the point; anything else is a broken run.
    expect(child.code, `child vitest exited abnormally:\n${child.stderr}`).toBe(1);
    report = JSON.parse(await readFile(outputFile, "utf8")) as JsonReport;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  suites = new Map();
  for (const file of report.testResults) {
    for (const test of file.assertionResults) {
      const suite = test.ancestorTitles[0] ?? "";
      let outcome = suites.get(suite);
      if (outcome === undefined) {
        outcome = { passed: [], failed: [], skipped: [] };
        suites.set(suite, outcome);
      }
      const list =
        test.status === "passed"
          ? outcome.passed
          : test.status === "failed"
            ? outcome.failed
            : outcome.skipped;
      list.push(test.title);
    }
  }
}, 120_000);

describe("the conformance suites catch bugs", () => {
  it("the child run loaded every broken file", () => {
    const broken = report.testResults.filter((f) => f.assertionResults.length === 0);
    expect(broken.map((f) => `${f.name}: ${f.message}`)).toEqual([]);
    expect(report.testResults.length).toBe(Object.keys(EXPECTED_FAILURES).length + 1);
    expect([...suites.keys()].sort()).toEqual(
      [...Object.keys(EXPECTED_FAILURES), ...Object.keys(CONTROLS)].sort(),
    );
  });

  for (const [suite, { minPassed }] of Object.entries(CONTROLS)) {
    it(`the control passes: ${suite}`, () => {
      const outcome = suites.get(suite);
      expect(outcome, "suite missing from the child run").toBeDefined();
      expect(outcome!.failed).toEqual([]);
      expect(outcome!.passed.length).toBeGreaterThanOrEqual(minPassed);
    });
  }

  for (const [suite, expected] of Object.entries(EXPECTED_FAILURES)) {
    it(`${suite.replace(" conformance: broken:", "")} fails: ${expected.join("; ")}`, () => {
      const outcome = suites.get(suite);
      expect(outcome, "suite missing from the child run").toBeDefined();
      expect(outcome!.failed.length).toBeGreaterThan(0);
      for (const title of expected) {
        expect(outcome!.failed, `"${title}" should fail for ${suite}`).toContain(title);
      }
      // The suites are precise: a single bug does not fail everything.
      expect(outcome!.passed.length).toBeGreaterThan(outcome!.failed.length);
    });
  }
});
