// One HTTP exchange on undici's `dispatch` API: a promise of the status and headers, then a push-model
// body. `dispatcher.request()` wraps every body in a Node `Readable` and an abort listener; on the hot paths
// of HttpSource (thousands of 4 KiB reads a second, GiB-long streams) that wrapper costs more than the
// parsing, so the body here is a small push source with pause/resume and nothing else.
import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";

/** Bytes a body holds for a consumer that has not attached yet before it pauses the socket. */
const HOLD_BYTES = 64 * 1024;

/** What a body needs of its request: backpressure and cancellation. */
interface BodyControl {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

/**
 * The handler methods of undici 6, whose dispatchers (a caller may pass one) call these instead of the
 * `onRequestStart`/`onResponse*` methods of undici 7 and later.
 */
interface LegacyHandler {
  onConnect(abort: (reason?: Error) => void): void;
  onHeaders(statusCode: number, rawHeaders: (Buffer | string)[], resume: () => void): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(error: Error): void;
}

/** Raw header pairs (undici 6) as Node-style headers: lowercase names, repeated ones as arrays. */
function headersOf(raw: (Buffer | string)[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString("latin1").toLowerCase();
    const value = raw[i + 1]!.toString("latin1");
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else out[name] = [seen, value];
  }
  return out;
}

/** Where an attached body delivers its chunks. Each chunk is a view the receiver may keep. */
export interface BodySink {
  data(chunk: Buffer): void;
  end(): void;
  error(error: unknown): void;
}

/** The status and headers of one response (after 1xx), and its body. */
export interface RawResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

/**
 * The body of one response. Chunks that arrive before a consumer attaches are held (the socket pauses once
 * {@link HOLD_BYTES} are held); {@link ResponseBody.pipe} hands them over, then the live ones.
 */
export class ResponseBody {
  #controller: BodyControl | undefined;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #sink: BodySink | undefined;
  #state: "open" | "ended" | "failed" | "destroyed" = "open";
  #error: unknown;
  #paused = false;
  readonly #onSettled: () => void;

  constructor(onSettled: () => void) {
    this.#onSettled = onSettled;
  }

  /** Whether no more events will come (ended, failed or destroyed). */
  get settled(): boolean {
    return this.#state !== "open";
  }

  /** Attaches the one consumer: held chunks and the outcome so far are delivered at once, in order. */
  pipe(sink: BodySink): void {
    if (this.#sink !== undefined) throw new Error("the response body already has a consumer");
    this.#sink = sink;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    for (const chunk of held) {
      if (this.#state === "destroyed") return;
      sink.data(chunk);
    }
    if (this.#state === "ended") sink.end();
    else if (this.#state === "failed") sink.error(this.#error);
    else if (this.#state === "open" && !this.#paused) this.#controller?.resume();
  }

  /** Stops the socket from delivering more of this body until {@link ResponseBody.resume}. */
  pause(): void {
    this.#paused = true;
    this.#controller?.pause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#sink !== undefined) this.#controller?.resume();
  }

  /** Drops the body (and the connection, unless it already ended). No more sink calls follow. */
  destroy(reason?: unknown): void {
    if (this.#state === "destroyed") return;
    const open = this.#state === "open";
    this.#state = "destroyed";
    this.#held = [];
    if (open) {
      this.#controller?.abort((reason ?? new Error("response body destroyed")) as Error);
      this.#onSettled();
    }
  }

  /**
   * Reads the whole body into one array. Resolves `undefined` (and drops the connection) as soon as it
   * grows past `limit` bytes.
   */
  readAll(limit: number = Number.POSITIVE_INFINITY): Promise<Uint8Array | undefined> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let received = 0;
      this.pipe({
        data: (chunk) => {
          received += chunk.byteLength;
          if (received > limit) {
            this.destroy();
            resolve(undefined);
            return;
          }
          chunks.push(chunk);
        },
        // One chunk that fills its own buffer is kept as is; anything else is copied, so a small body never
        // pins the socket's 64 KiB read buffer it was parsed from.
        end: () => {
          const only = chunks.length === 1 ? chunks[0]! : undefined;
          if (only !== undefined && only.byteLength === only.buffer.byteLength) return resolve(only);
          const out = new Uint8Array(received); // not Buffer.concat: small results would share a pool slab
          let at = 0;
          for (const chunk of chunks) {
            out.set(chunk, at);
            at += chunk.byteLength;
          }
          resolve(out);
        },
        error: reject,
      });
    });
  }

  /**
   * Lets a short body finish (the connection can be reused) and drops a longer one. Never rejects; a body
   * that already has a consumer (an earlier dump) is left to it.
   */
  dump(limit: number): Promise<void> {
    if (this.#sink !== undefined) return Promise.resolve();
    return this.readAll(limit).then(
      () => undefined,
      () => undefined,
    );
  }

  // ── fed by the dispatch handler ────────────────────────────────────────────────────────────────────

  /** @internal */
  attach(controller: BodyControl): void {
    this.#controller = controller;
  }

  /** @internal */
  push(chunk: Buffer): void {
    if (this.#state !== "open") return;
    if (this.#sink !== undefined) {
      this.#sink.data(chunk);
      return;
    }
    this.#held.push(chunk);
    this.#heldBytes += chunk.byteLength;
    if (this.#heldBytes >= HOLD_BYTES) this.#controller?.pause();
  }

  /** @internal */
  end(): void {
    if (this.#state !== "open") return;
    this.#state = "ended";
    this.#onSettled();
    this.#sink?.end();
  }

  /** @internal */
  fail(error: unknown): void {
    if (this.#state !== "open") return;
    this.#state = "failed";
    this.#error = error;
    this.#onSettled();
    this.#sink?.error(error);
  }
}

/**
 * Sends one request and resolves when its final status and headers arrive (1xx answers are skipped).
 * Aborting `signal` before then rejects with its reason; afterwards it fails the body with the reason.
 * Errors before the headers (connection, timeouts) reject with undici's error.
 */
export function dispatchRequest(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  signal: AbortSignal,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    let controller: BodyControl | undefined;
    let body: ResponseBody | undefined;
    // Before the request reaches a socket (queued behind busy connections, or connecting) there is no
    // controller yet: reject now; `onRequestStart` then aborts the request when it gets there.
    const onAbort = (): void => {
      if (controller === undefined) reject(signal.reason);
      else controller.abort(signal.reason as Error);
    };
    const unlink = (): void => signal.removeEventListener("abort", onAbort);
    signal.addEventListener("abort", onAbort, { once: true });
    const started = (control: BodyControl, statusCode: number, headers: IncomingHttpHeaders): void => {
      body = new ResponseBody(unlink);
      body.attach(control);
      resolve({ statusCode, headers, body });
    };
    const failed = (error: unknown): void => {
      unlink();
      const reason = signal.aborted ? signal.reason : error;
      if (body === undefined) reject(reason);
      else body.fail(reason);
    };
    const ended = (): void => {
      body?.end();
      unlink();
    };
    // undici 6: `onData` returning false pauses the socket, `resume` (from `onHeaders`) restarts it.
    let legacyPaused = false;
    const handler: Dispatcher.DispatchHandler & LegacyHandler = {
      onRequestStart(control) {
        controller = control;
        if (signal.aborted) control.abort(signal.reason as Error);
      },
      onResponseStart(control, statusCode, headers) {
        if (statusCode >= 200) started(control, statusCode, headers);
      },
      onResponseData(_control, chunk) {
        body?.push(chunk);
      },
      onResponseEnd: ended,
      onResponseError: (_control, error) => failed(error),
      onConnect(abort) {
        controller = { pause() {}, resume() {}, abort }; // the body gets its own control at the headers
        if (signal.aborted) abort(signal.reason as Error);
      },
      onHeaders(statusCode, rawHeaders, resume) {
        if (statusCode < 200) return true;
        const control: BodyControl = {
          pause: () => {
            legacyPaused = true;
          },
          resume: () => {
            if (!legacyPaused) return;
            legacyPaused = false;
            resume();
          },
          abort: (reason) => controller?.abort(reason),
        };
        started(control, statusCode, headersOf(rawHeaders));
        return !legacyPaused;
      },
      onData(chunk) {
        body?.push(chunk);
        return !legacyPaused;
      },
      onComplete: ended,
      onError: failed,
    };
    try {
      dispatcher.dispatch(options, handler);
    } catch (error) {
      unlink();
      reject(error);
    }
  });
}
