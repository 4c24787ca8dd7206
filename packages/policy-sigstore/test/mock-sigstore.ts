import { createHash, generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
// Deep imports: the package index also loads `nock`, which would patch Node's HTTP stack for the whole
// test process. The handlers themselves are plain functions from request body to response.
import { fulcioHandler, initializeCA, initializeCTLog } from "@sigstore/mock/dist/fulcio/index.js";
import { initializeTLog, rekorHandler } from "@sigstore/mock/dist/rekor/index.js";
import { initializeTSA, tsaHandler } from "@sigstore/mock/dist/timestamp/index.js";

// A complete offline Sigstore for tests: @sigstore/mock's Fulcio (+ CT log), Rekor v1 and TSA handlers behind
// one real HTTP server on 127.0.0.1 (random port), with the workarounds from
// reference/sigstore-opa-notes.md, and the TrustedRoot JSON that trusts exactly this instance.

/** A running mock Sigstore. */
export interface MockSigstore {
  /** `http://127.0.0.1:<port>`: Fulcio, Rekor and TSA base URL alike. */
  url: string;
  /** TrustedRoot protobuf-JSON trusting this instance's CA, CT log, Rekor and TSA. */
  trustedRoot: Record<string, unknown>;
  /** An unsigned OIDC JWT (the mock only decodes it): SAN = `sub` (a URI), issuer = `iss`. */
  token(claims: { iss: string; sub: string } & Record<string, unknown>): string;
  /** Paths of the requests served so far. */
  requests: string[];
  close(): Promise<void>;
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Mock bug 1: the mock Rekor stores the *proposed* DSSE entry as the body, while @sigstore/verify expects
 * Rekor's canonical form. Convert before logging.
 */
function canonicalDsseEntry(body: string): string {
  const proposed = JSON.parse(body) as {
    kind?: string;
    apiVersion?: string;
    spec?: { proposedContent?: { envelope: string; verifiers: string[] } };
  };
  const content = proposed.spec?.proposedContent;
  if (proposed.kind !== "dsse" || content === undefined) return body;
  const envelope = JSON.parse(content.envelope) as {
    payload: string;
    signatures: { sig: string }[];
  };
  return JSON.stringify({
    apiVersion: proposed.apiVersion ?? "0.0.1",
    kind: "dsse",
    spec: {
      envelopeHash: { algorithm: "sha256", value: sha256Hex(content.envelope) },
      payloadHash: { algorithm: "sha256", value: sha256Hex(Buffer.from(envelope.payload, "base64")) },
      signatures: envelope.signatures.map((s) => ({ signature: s.sig, verifier: content.verifiers[0] })),
    },
  });
}

/** Starts a mock Sigstore on loopback. */
export async function startMockSigstore(): Promise<MockSigstore> {
  const start = new Date(Date.now() - 60_000);
  const ctKeys = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const caKeys = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const rekorKeys = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const tsaKeys = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ctlog = await initializeCTLog(ctKeys);
  const ca = await initializeCA(caKeys, ctlog);
  // Mock bug 2: the TSA writes GeneralizedTime without trailing zeros and @sigstore/core only accepts three
  // fractional digits. The TSA reads this (mutable) clock; it is set before every request, never on a ms
  // value that ends in 0.
  const tsaClock = new Date();
  const tsa = await initializeTSA(tsaKeys, tsaClock);
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Mock bug 3: Rekor v2 entries of the mock cannot be verified; Rekor v1 is used.
  const tlog = await initializeTLog(url, rekorKeys);
  const handlers = new Map(
    [fulcioHandler(ca), rekorHandler(tlog), tsaHandler(tsa)].map((h) => [h.path, h.fn] as const),
  );
  const requests: string[] = [];
  server.on("request", (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const path = new URL(req.url ?? "/", url).pathname;
      requests.push(path);
      const handler = req.method === "POST" ? handlers.get(path) : undefined;
      if (handler === undefined) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found");
        return;
      }
      let body = Buffer.concat(chunks).toString("utf8");
      if (path === "/api/v1/log/entries") body = canonicalDsseEntry(body);
      if (path === "/api/v1/timestamp") {
        const now = Date.now();
        tsaClock.setTime(now % 10 === 0 ? now + 1 : now);
      }
      handler(body).then(
        ({ statusCode, response, contentType }) => {
          res.writeHead(statusCode, { "content-type": contentType ?? "text/plain" });
          res.end(
            typeof response === "string"
              ? response
              : Buffer.from(response.buffer, response.byteOffset, response.byteLength),
          );
        },
        (error: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" }).end(String(error));
        },
      );
    });
  });
  const spki = (key: typeof rekorKeys.publicKey): Buffer => key.export({ format: "der", type: "spki" });
  const validFor = { start: start.toISOString() };
  const trustedRoot = {
    mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [
      {
        baseUrl: url,
        hashAlgorithm: "SHA2_256",
        publicKey: {
          rawBytes: b64(spki(rekorKeys.publicKey)),
          keyDetails: "PKIX_ECDSA_P256_SHA_256",
          validFor,
        },
        logId: { keyId: b64(createHash("sha256").update(spki(rekorKeys.publicKey)).digest()) },
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: "sigstore.mock", commonName: "sigstore" },
        uri: url,
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate as Uint8Array) }] },
        validFor,
      },
    ],
    ctlogs: [
      {
        baseUrl: url,
        hashAlgorithm: "SHA2_256",
        publicKey: { rawBytes: b64(ctlog.publicKey), keyDetails: "PKIX_ECDSA_P256_SHA_256", validFor },
        logId: { keyId: b64(ctlog.logID as Uint8Array) },
      },
    ],
    timestampAuthorities: [
      {
        subject: { organization: "sigstore.mock", commonName: "tsa" },
        uri: url,
        certChain: {
          certificates: [
            { rawBytes: b64(tsa.intCertificate as Uint8Array) },
            { rawBytes: b64(tsa.rootCertificate as Uint8Array) },
          ],
        },
        validFor,
      },
    ],
  };
  return {
    url,
    trustedRoot,
    requests,
    token(claims) {
      const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
      return `${part({ alg: "none", typ: "JWT" })}.${part({ aud: "sigstore", ...claims })}.`;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
