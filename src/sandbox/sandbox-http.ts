import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';

/** One request as an emulator received it, kept in its control's request log. */
export interface RecordedRequest {
  readonly method: string;
  /** The path below the emulator's mount prefix, still percent-encoded, without the query string. */
  readonly path: string;
  /** The raw query string without its `?` (empty when there is none). */
  readonly query: string;
  /** Header names are lower-cased (as Node gives them). */
  readonly headers: IncomingHttpHeaders;
  /** The raw body text (empty when there was none). */
  readonly body: string;
  readonly receivedAt: number;
}

/** An emulator's answer, built whole before it is sent. */
export interface Reply {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: string;
}

/** How an emulator answers one recorded request. */
export type Route = (request: RecordedRequest, query: URLSearchParams) => Reply | Promise<Reply>;

/** What every emulator's control surface offers, besides its own switches. */
export interface EmulatorControl {
  /** The last received requests, oldest first (bounded by `requestLogLimit`). */
  readonly requests: readonly RecordedRequest[];
  clearRequests(): void;
  /** The next `count` requests are accepted and never answered (`Infinity` keeps hanging until `reset`). */
  hangNext(count?: number): void;
  /** The next `count` requests are answered with a redirect to `location`. */
  redirectNext(location: string, options?: { status?: 301 | 302 | 303 | 307 | 308; count?: number }): void;
  /** Clears the request log and every switch; sessions and data stay. */
  reset(): void;
}

/** One emulated upstream: a handler for requests below its mount prefix, and its control surface. */
export interface Emulator<C extends EmulatorControl> {
  /** `path` is the request target with the mount prefix removed, query string included. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void;
  readonly control: C;
}

/** Limits every emulator factory accepts. */
export interface EmulatorLimits {
  /** How many requests the log keeps (default 1000). */
  requestLogLimit?: number;
  /** The largest request body accepted, in bytes (default 1 MiB). */
  bodyLimit?: number;
}

const DEFAULT_REQUEST_LOG_LIMIT = 1000;
const DEFAULT_BODY_LIMIT = 1024 * 1024;
const JSON_TYPE = 'application/json; charset=utf-8';

/** A JSON answer. */
export function jsonReply(status: number, body: unknown, headers: OutgoingHttpHeaders = {}): Reply {
  return { status, headers: { 'content-type': JSON_TYPE, ...headers }, body: JSON.stringify(body) };
}

/** An answer without a body (204, redirects). */
export function emptyReply(status: number, headers: OutgoingHttpHeaders = {}): Reply {
  return { status, headers, body: '' };
}

/** The `text/html` answer every emulator serves, so billfold's relay tests can prove it is neutralised. */
export function htmlReply(upstream: string): Reply {
  return {
    status: 200,
    headers: { 'content-type': 'text/html; charset=utf-8' },
    body: `<!doctype html><title>${upstream} sandbox</title><script>document.title = 'ran'</script>`,
  };
}

/**
 * Adds the `Set-Cookie` and `WWW-Authenticate` headers an upstream might send on success, so billfold's
 * relay tests can prove they never reach a browser.
 */
export function withUpstreamAuthHeaders(reply: Reply, scheme: string): Reply {
  return {
    ...reply,
    headers: {
      ...reply.headers,
      'set-cookie': ['sandbox_upstream=tracking; Path=/; HttpOnly', 'sandbox_other=1; Path=/'],
      'www-authenticate': `${scheme} realm="sandbox"`,
    },
  };
}

/** The body as JSON, or undefined when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The body as a plain JSON object, or undefined when it is anything else. */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  const value = parseJson(text);
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer +(\S+)$/i.exec(headers.authorization ?? '');
  return match?.[1];
}

/** A random URL-safe identifier of `bytes` random bytes. */
export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

/** Appends to a log and drops the oldest entry past `limit`, so logs stay bounded under load. */
export function appendBounded<T>(log: T[], entry: T, limit: number): void {
  log.push(entry);
  if (log.length > limit) log.shift();
}

/** An ISO timestamp without milliseconds, as the upstreams print them. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** What a route table yields for one request: its handler and the decoded `:name` parameters. */
export interface RouteMatch<H> {
  handler: H;
  params: Record<string, string>;
}

/**
 * A method + path router over keys like `'GET /ACCOUNT/:id'`. Static paths are one map lookup; a
 * parameter that does not decode does not match.
 */
export function createRouter<H>(
  table: Record<string, H>,
): (method: string, path: string) => RouteMatch<H> | undefined {
  const exact = new Map<string, H>();
  const patterns: { method: string; segments: string[]; handler: H }[] = [];
  for (const [key, handler] of Object.entries(table)) {
    const [method = '', pattern = ''] = key.split(' ');
    if (pattern.includes('/:')) patterns.push({ method, segments: pattern.split('/'), handler });
    else exact.set(key, handler);
  }
  return (method, path) => {
    const handler = exact.get(`${method} ${path}`);
    if (handler !== undefined) return { handler, params: {} };
    const parts = path.split('/');
    for (const route of patterns) {
      if (route.method !== method || route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const matched = route.segments.every((segment, index) => {
        const part = parts[index] ?? '';
        if (!segment.startsWith(':')) return segment === part;
        try {
          params[segment.slice(1)] = decodeURIComponent(part);
        } catch {
          return false;
        }
        return part !== '';
      });
      if (matched) return { handler: route.handler, params };
    }
    return undefined;
  };
}

/** A table of sessions that die after `idleTimeoutMs` without use; every use slides the timer. */
export interface IdleSessionTable<T> {
  /** Stores `data` under a new random session id and returns the id; `idleTimeoutMs` overrides the table's. */
  create(data: T, idleTimeoutMs?: number): string;
  /** The session's data with its idle timer restarted; undefined (and forgotten) when unknown or idle too long. */
  touch(id: string): T | undefined;
  /** Like `touch`, without counting as use. */
  peek(id: string): T | undefined;
  delete(id: string): void;
  clear(): void;
  /** The live session ids. */
  ids(): string[];
}

/** An in-memory idle-expiring session table on the given clock. */
export function createIdleSessionTable<T>(clock: Clock, idleTimeoutMs: number): IdleSessionTable<T> {
  const entries = new Map<string, { data: T; lastUsed: number; idleMs: number }>();
  let sweepAt = 1024;
  const alive = (entry: { lastUsed: number; idleMs: number }) => clock.now() - entry.lastUsed < entry.idleMs;
  const live = (id: string) => {
    const entry = entries.get(id);
    if (entry && alive(entry)) return entry;
    entries.delete(id);
    return undefined;
  };
  return {
    create(data, idleMs = idleTimeoutMs) {
      // Expired sessions are swept now and then, so a login-heavy benchmark cannot grow the table forever.
      if (entries.size >= sweepAt) {
        for (const [id, entry] of entries) if (!alive(entry)) entries.delete(id);
        sweepAt = Math.max(1024, entries.size * 2);
      }
      const id = randomToken(18);
      entries.set(id, { data, lastUsed: clock.now(), idleMs });
      return id;
    },
    touch(id) {
      const entry = live(id);
      if (entry) entry.lastUsed = clock.now();
      return entry?.data;
    },
    peek: (id) => live(id)?.data,
    delete: (id) => void entries.delete(id),
    clear: () => entries.clear(),
    ids: () => [...entries.keys()].filter((id) => live(id)),
  };
}

/** Writes a whole reply (unless the client has already gone). */
export function sendReply(res: ServerResponse, reply: Reply): void {
  if (res.destroyed) return;
  // 204 and 304 must not carry a Content-Length (RFC 9110 §8.6).
  const headers =
    reply.status === 204 || reply.status === 304
      ? reply.headers
      : { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) };
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

function failureReply(error: unknown): Reply {
  return jsonReply(500, {
    error: 'sandbox_failure',
    message: error instanceof Error ? error.message : String(error),
  });
}

/**
 * Reads a request body up to `limit` bytes and calls `done` with its text, or with undefined when it is
 * larger (the rest is drained so the connection stays usable). Bodiless requests answer synchronously.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  done: (body: string | undefined) => void,
): void {
  const declared = req.headers['content-length'];
  if ((declared === undefined || declared === '0') && req.headers['transfer-encoding'] === undefined) {
    done('');
    return;
  }
  if (declared !== undefined && Number(declared) > limit) {
    req.resume();
    done(undefined);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  });
  req.on('end', () => done(size <= limit ? Buffer.concat(chunks).toString('utf8') : undefined));
  // A client that goes away mid-body gets no answer; the listener only keeps the error from being unhandled.
  req.on('error', () => undefined);
}

/**
 * Builds an emulator from its route and its own control surface, adding what every emulator shares:
 * body reading with a size cap, the bounded request log, and the hang and redirect switches.
 */
export function createEmulator<C extends EmulatorControl>(spec: {
  clock: Clock;
  limits?: EmulatorLimits | undefined;
  route: Route;
  /** The emulator's own control methods. */
  control: Omit<C, keyof EmulatorControl>;
  /** Turns the emulator's own switches back to their defaults. */
  resetSwitches(): void;
  /** When given, holds the requests received and not yet answered (BILL's concurrency limit counts them). */
  inFlight?: Set<RecordedRequest>;
}): Emulator<C> {
  const { clock, route, inFlight } = spec;
  const logLimit = spec.limits?.requestLogLimit ?? DEFAULT_REQUEST_LOG_LIMIT;
  const bodyLimit = spec.limits?.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const requests: RecordedRequest[] = [];
  let hangs = 0;
  let redirect: { location: string; status: number; count: number } | undefined;

  const answer = (request: RecordedRequest, res: ServerResponse) => {
    if (hangs > 0) {
      hangs -= 1;
      return;
    }
    if (redirect) {
      const { location, status } = redirect;
      if (--redirect.count <= 0) redirect = undefined;
      sendReply(res, emptyReply(status, { location }));
      return;
    }
    let reply: Reply | Promise<Reply>;
    try {
      reply = route(request, new URLSearchParams(request.query));
    } catch (error) {
      reply = failureReply(error);
    }
    if (reply instanceof Promise) {
      reply.then(
        (value) => sendReply(res, value),
        (error: unknown) => sendReply(res, failureReply(error)),
      );
    } else {
      sendReply(res, reply);
    }
  };

  const control: EmulatorControl = {
    requests,
    clearRequests: () => void (requests.length = 0),
    hangNext(count = 1) {
      hangs = count;
    },
    redirectNext(location, options = {}) {
      redirect = { location, status: options.status ?? 302, count: options.count ?? 1 };
    },
    reset() {
      requests.length = 0;
      hangs = 0;
      redirect = undefined;
      spec.resetSwitches();
    },
  };

  return {
    // The emulator's own surface plus the shared one is exactly C.
    control: { ...spec.control, ...control } as C,
    handle(req, res, target) {
      const mark = target.indexOf('?');
      const path = mark === -1 ? target : target.slice(0, mark);
      const query = mark === -1 ? '' : target.slice(mark + 1);
      readBody(req, bodyLimit, (body) => {
        if (body === undefined) {
          sendReply(res, jsonReply(413, { error: 'payload_too_large', limit: bodyLimit }));
          return;
        }
        const request: RecordedRequest = {
          method: req.method ?? 'GET',
          path,
          query,
          headers: req.headers,
          body,
          receivedAt: clock.now(),
        };
        appendBounded(requests, request, logLimit);
        if (inFlight) {
          inFlight.add(request);
          res.once('close', () => inFlight.delete(request));
        }
        answer(request, res);
      });
    },
  };
}
