import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { Agent, errors, request } from 'undici';
import { AppError } from '../errors.js';
import type { ProviderId } from './provider-id.js';

/** One call to an upstream. The URL is always built by billfold from a configured base URL. */
export interface UpstreamRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string | Buffer | Readable | undefined;
}

/** An upstream answer whose body is still a stream. */
export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable & { text(): Promise<string>; dump(): Promise<void> };
}

/** An upstream answer read as JSON (for billfold's own calls: login, logout, renewal). */
export interface UpstreamJsonResponse {
  status: number;
  headers: IncomingHttpHeaders;
  json: unknown;
}

/** The only way billfold talks to upstreams: pooled keep-alive connections, bounded time, no redirects. */
export interface UpstreamClient {
  /** Sends the request; network failures and redirects become 502/504 AppErrors naming the provider. */
  send(provider: ProviderId, upstreamRequest: UpstreamRequest): Promise<UpstreamResponse>;
  /** Sends and reads a JSON body of at most `maxBytes`; a non-JSON answer is a 502. */
  sendJson(
    provider: ProviderId,
    upstreamRequest: UpstreamRequest,
    maxBytes?: number,
  ): Promise<UpstreamJsonResponse>;
  close(): Promise<void>;
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
    connections: 256,
    keepAliveTimeout: 30_000,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connect: { timeout: Math.min(options.timeoutMs, 10_000) },
  });

  const client: UpstreamClient = {
    async send(provider, upstreamRequest) {
      const started = performance.now();
      // undici's headersTimeout starts only once the body is sent, so a client trickling a streamed
      // body could hold a pooled upstream connection for ever: such an exchange gets the timeout
      // from its start to the answer's headers. (Bodiless and buffered calls need no extra timer.)
      const streamed = upstreamRequest.body instanceof Readable;
      const deadline = streamed ? new AbortController() : undefined;
      const timer =
        deadline && setTimeout(() => deadline.abort(new AnswerDeadlineError()), options.timeoutMs);
      let response: Awaited<ReturnType<typeof request>>;
      try {
        response = await request(upstreamRequest.url, {
          dispatcher: agent,
          method: upstreamRequest.method as 'GET',
          headers: upstreamRequest.headers,
          body: upstreamRequest.body ?? null,
          ...(deadline && { signal: deadline.signal }),
        });
        options.onResponse?.(provider, response.statusCode, performance.now() - started);
      } catch (error) {
        const failure = toUpstreamError(provider, error);
        options.onResponse?.(provider, 'error', performance.now() - started, failure);
        throw failure;
      } finally {
        clearTimeout(timer);
      }
      // Redirects are never followed, nor passed on: a redirect could send the client, or a retry
      // carrying a credential, to somewhere billfold was not configured to call.
      if (response.statusCode >= 300 && response.statusCode < 400) {
        await response.body.dump();
        throw new AppError('upstream_unavailable', {
          provider,
          message: 'The provider answered with a redirect.',
        });
      }
      return { status: response.statusCode, headers: response.headers, body: response.body };
    },

    async sendJson(provider, upstreamRequest, maxBytes = 1024 * 1024) {
      const response = await client.send(provider, upstreamRequest);
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

    close: () => agent.close(),
  };
  return client;
}
