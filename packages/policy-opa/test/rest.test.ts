import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type OpaInput, opaPolicy, restEvaluator } from "../src/index.ts";
import { type ArchiveFixture, archiveFixture } from "./support.ts";

type Mode = "ok" | "no-result" | "500" | "404" | "malformed" | "slow" | "huge" | "not-object";

/** A local stub of OPA's Data API: `POST /v1/data/<path>` with `{"input": …}` → `{"result": …}`. */
class DataApiStub {
  mode: Mode = "ok";
  result: unknown = { allow: true, deny: [] };
  requests: { method: string; url: string; headers: IncomingHttpHeaders; body: unknown }[] = [];
  readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          body = undefined;
        }
        this.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
        const json = (status: number, value: unknown) => {
          res.writeHead(status, { "content-type": "application/json" });
          res.end(JSON.stringify(value));
        };
        if (req.method !== "POST" || !req.url?.startsWith("/v1/data/"))
          return json(404, { code: "not_found" });
        switch (this.mode) {
          case "ok":
            return json(200, { result: this.result, decision_id: "d1" });
          case "no-result":
            return json(200, { decision_id: "d2" });
          case "not-object":
            return json(200, [1, 2]);
          case "500":
            return json(500, { code: "internal_error", message: "error(s) occurred while evaluating query" });
          case "404":
            res.writeHead(404, { "content-type": "text/plain" });
            return res.end("404 page not found");
          case "malformed":
            res.writeHead(200, { "content-type": "application/json" });
            return res.end('{"result": {"allow": tr');
          case "huge":
            return json(200, { result: { allow: true, padding: "x".repeat(64 * 1024) } });
          case "slow":
            setTimeout(() => json(200, { result: this.result }), 1500).unref();
            return;
        }
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe("restEvaluator against a stub of the Data API", () => {
  const stub = new DataApiStub();
  let url: string;
  let fixture: ArchiveFixture;
  beforeAll(async () => {
    [url, fixture] = await Promise.all([stub.start(), archiveFixture()]);
  });
  afterAll(async () => {
    await stub.stop();
    await fixture?.close();
  });
  beforeEach(() => {
    stub.mode = "ok";
    stub.result = { allow: true, deny: [] };
    stub.requests = [];
  });

  it("POSTs the input document to /v1/data/<entrypoint> with the configured headers", async () => {
    const evaluator = restEvaluator({ url, headers: { authorization: "Bearer s3cret" } });
    const decision = await opaPolicy({ evaluator }).evaluate(fixture.context);
    expect(decision).toEqual({ allow: true, reasons: [] });
    expect(stub.requests).toHaveLength(1);
    const request = stub.requests[0]!;
    expect(request.method).toBe("POST");
    expect(request.url).toBe("/v1/data/blob/policy");
    expect(request.headers.authorization).toBe("Bearer s3cret");
    const sent = (request.body as { input: OpaInput }).input;
    expect(sent.manifest.digest).toBe(fixture.context.descriptor.digest);
    expect(sent.index).toMatchObject({ fileCount: 3, totalSize: 16 });
    expect(sent.attestations).toEqual([]);
  });

  it("uses an explicit path and a custom fetch", async () => {
    let calls = 0;
    const evaluator = restEvaluator({
      url: `${url}/`,
      path: "acme/archives/decision",
      fetch: (request, init) => {
        calls++;
        return fetch(request, init);
      },
    });
    await opaPolicy({ evaluator }).evaluate(fixture.context);
    expect(stub.requests[0]?.url).toBe("/v1/data/acme/archives/decision");
    expect(calls).toBe(1);
  });

  it("applies the decision rule to the server's result", async () => {
    stub.result = { allow: true, deny: ["provenance missing", "too many files"] };
    expect(await opaPolicy({ evaluator: restEvaluator({ url }) }).evaluate(fixture.context)).toEqual({
      allow: false,
      reasons: ["provenance missing", "too many files"],
    });
    stub.result = { allow: false };
    expect(
      (await opaPolicy({ evaluator: restEvaluator({ url }) }).evaluate(fixture.context)).reasons,
    ).toEqual(["allow is boolean false, not true"]);
  });

  it.each([
    ["no-result", /the policy decision is undefined/],
    ["not-object", /evaluation failed/],
    ["500", /evaluation failed: .*error\(s\) occurred while evaluating query/],
    ["404", /evaluation failed: .*404/],
    ["malformed", /evaluation failed: .*OPA server sent malformed JSON \(HTTP 200\)/],
    ["huge", /evaluation failed: .*OPA server response is .*more than 1024 bytes/],
  ] as const)("denies on %s", async (mode, reason) => {
    stub.mode = mode;
    const policy = opaPolicy({ evaluator: restEvaluator({ url, maxResponseBytes: 1024 }) });
    const decision = await policy.evaluate(fixture.context);
    expect(decision.allow).toBe(false);
    expect(decision.reasons?.join("\n")).toMatch(reason);
    expect(decision.reasons?.join("\n")).not.toContain("s3cret");
  });

  it("denies on timeouts (policy and request) and on an unreachable server", async () => {
    stub.mode = "slow";
    const byPolicy = await opaPolicy({ evaluator: restEvaluator({ url }), timeoutMs: 150 }).evaluate(
      fixture.context,
    );
    expect(byPolicy).toEqual({ allow: false, reasons: [`opa-rest ${url}: timed out after 150 ms`] });
    const byRequest = await opaPolicy({ evaluator: restEvaluator({ url, timeoutMs: 150 }) }).evaluate(
      fixture.context,
    );
    expect(byRequest.reasons?.[0]).toMatch(/timed out after 150 ms/);

    const closed = new DataApiStub();
    const deadUrl = await closed.start();
    await closed.stop();
    const unreachable = await opaPolicy({ evaluator: restEvaluator({ url: deadUrl }) }).evaluate(
      fixture.context,
    );
    expect(unreachable.allow).toBe(false);
    expect(unreachable.reasons?.[0]).toMatch(/evaluation failed: .*(connect|ECONNREFUSED|fetch failed)/i);
  });

  it("rejects with the caller's abort reason", async () => {
    stub.mode = "slow";
    const reason = new Error("shutting down");
    const controller = new AbortController();
    const pending = opaPolicy({ evaluator: restEvaluator({ url }) }).evaluate({
      ...fixture.context,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);
  });

  it("validates its options", () => {
    expect(() => restEvaluator({ url: "not a url" })).toThrow(/not a valid URL/);
    expect(() => restEvaluator({ url: "ftp://x" })).toThrow(/http/);
    expect(() => restEvaluator({ url: "http://user:pw@127.0.0.1:1" })).toThrow(/credentials/);
    expect(() => restEvaluator({ url, path: "a/../b" })).toThrow(/invalid OPA data path/);
    expect(() => restEvaluator({ url, path: "a?x=1" })).toThrow(/invalid OPA data path/);
    expect(restEvaluator({ url: `${url}/opa/` }).name).toBe(`opa-rest ${url}/opa`);
  });
});
