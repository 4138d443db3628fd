import type { IncomingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';

/**
 * An upstream answer's body, consumed once: streamed on to a client, read whole, or dropped. It is
 * undici's dispatch handler itself, so a relayed answer goes from undici's socket to the client's
 * without a stream, a promise or a listener of its own per chunk.
 */
export interface UpstreamBody {
  /** Reads the rest as UTF-8 text (a leading byte-order mark skipped, as undici's `text()` does). */
  text(): Promise<string>;
  /** Reads and drops the rest so the connection is kept; past 128 KiB it closes the connection instead. */
  dump(): Promise<void>;
  /** Reads until the end or past `limit` bytes; the rest stays unread, for `pipeTo`. */
  readUpTo(limit: number): Promise<{ chunks: Buffer[]; ended: boolean }>;
  /**
   * Streams the rest into `target` with backpressure and ends it; an upstream failure destroys
   * `target`, and `target` closing first cancels the call.
   */
  pipeTo(target: Writable): void;
  /** Cancels the call (its connection is closed) unless the body is over. */
  destroy(): void;
}

/** The status line and headers, once they arrived. */
export interface UpstreamHead {
  status: number;
  headers: IncomingHttpHeaders;
}

/** Where the body's chunks go: `data` answering false asks the upstream to wait. */
interface Sink {
  data(chunk: Buffer): boolean;
  end(): void;
  error(error: Error): void;
}

/** Bytes held for a body nobody reads yet before the upstream is asked to wait. */
const HELD_BYTES = 64 * 1024;
/** What `dump` reads to keep a connection before it closes it instead (undici's own default). */
const DUMP_LIMIT = 128 * 1024;

/**
 * One upstream exchange as undici dispatches it: `head` settles with the status and headers (or the
 * failure before them), then the body is read through the `UpstreamBody` methods.
 */
export class DispatchedExchange implements Dispatcher.DispatchHandler, UpstreamBody {
  readonly head: Promise<UpstreamHead>;
  #settleHead!: { resolve: (head: UpstreamHead) => void; reject: (error: unknown) => void };
  #controller: Dispatcher.DispatchController | undefined;
  /** An abort asked for before undici started the request. */
  #pendingAbort: Error | undefined;
  #started = false;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #sink: Sink | undefined;
  /** The body is over: ended, failed or cancelled. */
  #over = false;
  #ended = false;
  #error: Error | undefined;
  /** Called once the exchange is over, however it ends. */
  readonly #onOver: () => void;

  constructor(onOver: () => void) {
    this.#onOver = onOver;
    this.head = new Promise((resolve, reject) => {
      this.#settleHead = { resolve, reject };
    });
  }

  /** Cancels the exchange at any stage: queued, sending, waiting for headers or reading the body. */
  abort(reason: Error): void {
    if (this.#over) return;
    if (this.#controller) this.#controller.abort(reason);
    else this.#pendingAbort = reason;
    // A call still queued for a connection is given up now; undici drops it when one would take it.
    this.#fail(reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#pendingAbort) controller.abort(this.#pendingAbort);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
  ): void {
    // 1xx answers before the final one are undici's to handle; only a final status settles the head.
    if (status < 200) return;
    this.#started = true;
    this.#settleHead.resolve({ status, headers });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#sink) {
      if (!this.#sink.data(chunk)) controller.pause();
      return;
    }
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes > HELD_BYTES) controller.pause();
  }

  onResponseEnd(): void {
    if (this.#over) return;
    this.#over = true;
    this.#ended = true;
    this.#onOver();
    this.#sink?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#fail(error);
  }

  #fail(error: Error): void {
    if (this.#over) return;
    this.#over = true;
    this.#error = error;
    this.#onOver();
    if (!this.#started) this.#settleHead.reject(error);
    this.#sink?.error(error);
  }

  /** Hands the held chunks, then everything that follows, to `sink`. */
  #attach(sink: Sink): void {
    this.#sink = sink;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    let more = true;
    for (const chunk of held) more = sink.data(chunk) && more;
    if (this.#ended) sink.end();
    else if (this.#error) sink.error(this.#error);
    else if (more) this.#controller?.resume();
    else this.#controller?.pause();
  }

  /** Stops handing chunks on: what arrives from now on is held again. */
  #detach(): void {
    this.#sink = undefined;
  }

  text(): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      this.#attach({
        data: (chunk) => {
          chunks.push(chunk);
          return true;
        },
        end: () => {
          const bytes = Buffer.concat(chunks);
          const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
          resolve(bytes.toString('utf8', bom ? 3 : 0));
        },
        error: reject,
      });
    });
  }

  dump(): Promise<void> {
    return new Promise((resolve) => {
      let read = 0;
      this.#attach({
        data: (chunk) => {
          read += chunk.length;
          if (read > DUMP_LIMIT) this.destroy();
          return true;
        },
        end: resolve,
        error: () => {
          resolve();
        },
      });
    });
  }

  readUpTo(limit: number): Promise<{ chunks: Buffer[]; ended: boolean }> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      this.#attach({
        data: (chunk) => {
          chunks.push(chunk);
          size += chunk.length;
          if (size <= limit) return true;
          this.#detach();
          resolve({ chunks, ended: false });
          return false;
        },
        end: () => {
          resolve({ chunks, ended: true });
        },
        error: reject,
      });
    });
  }

  pipeTo(target: Writable): void {
    if (target.destroyed) {
      this.destroy();
      return;
    }
    const resume = () => this.#controller?.resume();
    target.on('drain', resume);
    target.once('close', () => {
      target.off('drain', resume);
      this.destroy();
    });
    this.#attach({
      data: (chunk) => target.write(chunk),
      end: () => target.end(),
      error: () => target.destroy(),
    });
  }

  destroy(): void {
    // Most calls come from a client's answer closing after the body ended: no error to build then.
    if (!this.#over) this.abort(new Error('the upstream answer was not read to its end'));
  }
}
