import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, errors } from 'undici';
import { AppError } from '../errors.js';
import { endUpstreamSpan, startUpstreamSpan } from '../tracing.js';
import type { ProviderId } from './provider-id.js';
import { DispatchedExchange, type UpstreamBody } from './upstream-body.js';

/** One call to an upstream. The URL is always built by billfold from a configured base URL. */
export interface UpstreamRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string | Buffer | Readable | undefined;
  /** Cancels the call at any stage (queued, sending, or reading the answer) and frees its connection. */
  signal?: CancelSignal | undefined;
}

/** What cancels a call: an `AbortSignal`, or anything that behaves as one for an `abort` listener. */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** An upstream answer whose body is still a stream. */
export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: UpstreamBody;
}

/** An upstream answer read as JSON (for billfold's own calls: login, logout, renewal). */
export interface UpstreamJsonResponse {
  status: number;
  headers: IncomingHttpHeaders;
  json: unknown;
}

/** The only way billfold talks to upstreams: pooled keep-alive connections, bounded time, no redirects. */
export interface UpstreamClient {
  /** Sends the request; network failures become 502/504 AppErrors naming the provider. */
  send(provider: ProviderId, upstreamRequest: UpstreamRequest): Promise<UpstreamResponse>;
  /** Sends and reads a JSON body of at most `maxBytes`; a redirect or non-JSON answer is a 502. */
  sendJson(
    provider: ProviderId,
    upstreamRequest: UpstreamRequest,
    maxBytes?: number,
  ): Promise<UpstreamJsonResponse>;
  /** Each provider's pool as undici counts it; `exhausted` when every connection is busy and calls queue. */
  poolStatus(): Record<ProviderId, PoolStatus>;
  close(): Promise<void>;
}

/** One provider's connection pool. */
export interface PoolStatus {
  running: number;
  queued: number;
  connections: number;
  exhausted: boolean;
}

/** Connections per upstream origin: the pool every session of an instance shares. */
export const UPSTREAM_CONNECTIONS = 256;

/** Whether an upstream status is a redirect billfold refuses; 304 Not Modified is not one. */
export function isRedirect(status: number): boolean {
  return status >= 300 && status < 400 && status !== 304;
}

/** What the client needs. */
export interface UpstreamClientOptions {
  timeoutMs: number;
  /** Called after every upstream exchange, for metrics and logs; `error` is what a failed one became. */
  onResponse?: (provider: ProviderId, status: number | 'error', durationMs: number, error?: AppError) => void;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** Why a request was aborted when its answer's headers had not arrived within the timeout. */
class AnswerDeadlineError extends Error {}

/** Turns a network-level failure into the AppError the client sees. */
export function toUpstreamError(provider: ProviderId, error: unknown): AppError {
  if (error instanceof AppError) return error;
  const code = error instanceof errors.UndiciError ? error.code : undefined;
  const timedOut = error instanceof AnswerDeadlineError || (code !== undefined && TIMEOUT_CODES.has(code));
  return new AppError(timedOut ? 'upstream_timeout' : 'upstream_unavailable', { provider, cause: error });
}

export function createUpstreamClient(options: UpstreamClientOptions): UpstreamClient {
  const agent = new Agent({
    connections: UPSTREAM_CONNECTIONS,
    keepAliveTimeout: 30_000,
    // The call's own deadline (in `send`) bounds the wait for headers exactly; undici's timer, which
    // can fire early under load, is only a backstop behind it.
    headersTimeout: options.timeoutMs + 1000,
    bodyTimeout: options.timeoutMs,
    connect: { timeout: Math.min(options.timeoutMs, 10_000) },
  });

  const origins = new Map<ProviderId, string>();

  const client: UpstreamClient = {
    async send(provider, upstreamRequest) {
      const started = performance.now();
      const { url, method } = upstreamRequest;
      const { origin } = url;
      origins.set(provider, origin);
      const traced = startUpstreamSpan(provider, method, url, upstreamRequest.headers);
      // The caller's cancellation ends the exchange at any stage, its body included; the listener
      // goes once the exchange is over.
      const cancelled = upstreamRequest.signal;
      const onCancel = () =>
        exchange.abort((cancelled?.reason as Error | undefined) ?? new Error('cancelled'));
      const exchange = new DispatchedExchange(() => cancelled?.removeEventListener('abort', onCancel));
      // One deadline from the start of the call to the answer's headers, whatever holds it up: a wait
      // for a pooled connection (undici's own timers start only once a request is dispatched), or a
      // client trickling a streamed body (headersTimeout starts only once the body is sent). A timer
      // can fire early by the event loop's lag; the deadline is never shorter than the timeout.
      const expire = () => {
        const left = options.timeoutMs - (performance.now() - started);
        if (left > 0) timer = setTimeout(expire, left);
        else exchange.abort(new AnswerDeadlineError());
      };
      let timer = setTimeout(expire, options.timeoutMs);
      if (cancelled?.aborted) onCancel();
      else cancelled?.addEventListener('abort', onCancel, { once: true });
      let head: Awaited<DispatchedExchange['head']>;
      try {
        agent.dispatch(
          {
            origin,
            path: url.pathname + url.search,
            method,
            headers: traced.headers,
            body: upstreamRequest.body ?? null,
          },
          exchange,
        );
        head = await exchange.head;
        options.onResponse?.(provider, head.status, performance.now() - started);
        endUpstreamSpan(traced.span, head.status);
      } catch (error) {
        const failure = toUpstreamError(provider, error);
        endUpstreamSpan(traced.span, failure);
        options.onResponse?.(provider, 'error', performance.now() - started, failure);
        throw failure;
      } finally {
        clearTimeout(timer);
      }
      const response = { status: head.status, headers: head.headers, body: exchange };
      // Redirects are never followed, nor passed on: a redirect could send the client, or a retry
      // carrying a credential, to somewhere billfold was not configured to call. A 304 is no redirect.
      if (isRedirect(response.status)) {
        await response.body.dump();
        throw new AppError('upstream_unavailable', {
          provider,
          message: 'The provider answered with a redirect.',
        });
      }
      return response;
    },

    async sendJson(provider, upstreamRequest, maxBytes = 1024 * 1024) {
      const response = await client.send(provider, upstreamRequest);
      // billfold's own calls send no validators, so a 304 here is an answer without the JSON asked for.
      if (response.status === 304) {
        await response.body.dump();
        throw new AppError('upstream_unavailable', {
          provider,
          message: 'The provider answer was malformed.',
        });
      }
      const declared = Number(response.headers['content-length'] ?? 0);
      if (declared > maxBytes) {
        await response.body.dump();
        throw new AppError('upstream_unavailable', {
          provider,
          message: 'The provider answer was too large.',
        });
      }
      let text: string;
      try {
        text = await response.body.text();
      } catch (error) {
        throw toUpstreamError(provider, error);
      }
      if (text.length > maxBytes) {
        throw new AppError('upstream_unavailable', {
          provider,
          message: 'The provider answer was too large.',
        });
      }
      try {
        return {
          status: response.status,
          headers: response.headers,
          json: text === '' ? null : (JSON.parse(text) as unknown),
        };
      } catch (error) {
        throw new AppError('upstream_unavailable', {
          provider,
          message: 'The provider answer was malformed.',
          cause: error,
        });
      }
    },

    poolStatus() {
      const stats = agent.stats;
      const status: Record<ProviderId, PoolStatus> = {};
      for (const [provider, origin] of origins) {
        const pool = stats[origin] as { running?: number; queued?: number } | undefined;
        const running = pool?.running ?? 0;
        const queued = pool?.queued ?? 0;
        status[provider] = {
          running,
          queued,
          connections: UPSTREAM_CONNECTIONS,
          exhausted: queued > 0 || running >= UPSTREAM_CONNECTIONS,
        };
      }
      return status;
    },

    close: () => agent.close(),
  };
  return client;
}
