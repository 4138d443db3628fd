import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import proxyAddr from 'proxy-addr';
import { hashSessionId, type Logger } from '../logger.js';
import type { RequestObserver } from '../metrics.js';
import type { ProviderId } from '../upstream/provider-id.js';
import type { TrustFunction } from './request-guards.js';

/** What billfold knows about one request while it answers it. */
export interface RequestContext {
  readonly id: string;
  readonly startedAt: number;
  /** The route template (`/api/:provider`, `/auth/:provider/login`, ...): what metrics and audits name. */
  readonly route: string;
  /** The client's address as TRUST_PROXY resolves it (Express's `req.ip`), for log and audit lines. */
  readonly clientAddress: string | undefined;
  sessionId: string | undefined;
  provider: ProviderId | undefined;
}

export type { RequestObserver } from '../metrics.js';

const FIXED_ROUTES = new Set([
  '/auth/session',
  '/auth/sessions',
  '/auth/logout',
  '/auth/billbora/organization',
  '/healthz',
  '/readyz',
  '/metrics',
  '/admin/sessions',
]);
const PROVIDER_ROUTE = /^\/auth\/[^/]+\/(login|logout)$/;

/**
 * The template a path answers under, never the raw path, so a label or log field built from it has a
 * handful of values whatever clients send. Anything unrouted (a 404, a demo page file) is `other`.
 */
export function routeTemplate(path: string): string {
  if (path.startsWith('/api/')) return '/api/:provider';
  if (FIXED_ROUTES.has(path)) return path;
  if (path.startsWith('/auth/sessions/') && path.indexOf('/', '/auth/sessions/'.length) === -1)
    return '/auth/sessions/:id';
  const action = PROVIDER_ROUTE.exec(path)?.[1];
  return action ? `/auth/:provider/${action}` : 'other';
}

const contexts = new WeakMap<IncomingMessage, RequestContext>();

/**
 * The client's address: the connecting one, or the one a trusted proxy names in X-Forwarded-For, by
 * the rules Express's `req.ip` follows (so the two always agree).
 */
export function clientAddressOf(req: IncomingMessage, trust: TrustFunction | undefined): string | undefined {
  if (trust === undefined || req.headers['x-forwarded-for'] === undefined) return req.socket.remoteAddress;
  return proxyAddr(req, trust);
}

// The request line holds only fields chosen here (the path without its query, a hashed session id),
// so it skips the redaction pass every other log line gets, which would cost a few percent per request.
const requestLoggers = new WeakMap<Logger, Logger>();
function withoutRedaction(logger: Logger): Logger {
  const child = logger.child({}, { redact: { paths: [] } });
  requestLoggers.set(logger, child);
  return child;
}
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Gives the request an id (the caller's X-Request-Id when it is safe to echo; the security headers
 * write it on the answer) and writes one log line when the response ends, then tells `observe`.
 * The line holds the path without its query and a hash of the session id.
 */
export function beginRequest(
  req: IncomingMessage,
  res: ServerResponse,
  logger: Logger,
  observe?: RequestObserver,
  trust?: TrustFunction,
): RequestContext {
  const requestLog = requestLoggers.get(logger) ?? withoutRedaction(logger);
  const given = req.headers['x-request-id'];
  // Captured now: Express rewrites req.url inside mounted routers. The query is never logged.
  const url = req.url ?? '';
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  const context: RequestContext = {
    id: typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID(),
    startedAt: performance.now(),
    route: routeTemplate(path),
    clientAddress: clientAddressOf(req, trust),
    sessionId: undefined,
    provider: undefined,
  };
  contexts.set(req, context);
  (res as AnsweringResponse)[ANSWERING] = { req, context, path, requestLog, observe };
  res.on('finish', endRequest);
  res.on('close', endRequest);
  return context;
}

const ANSWERING = Symbol('billfold request being answered');
type AnsweringResponse = ServerResponse & {
  [ANSWERING]?:
    | {
        req: IncomingMessage;
        context: RequestContext;
        path: string;
        requestLog: Logger;
        observe: RequestObserver | undefined;
      }
    | undefined;
};

// One listener shared by every response, its request's state on the response itself: nothing is
// allocated per request to say that it ended.
function endRequest(this: AnsweringResponse): void {
  const answering = this[ANSWERING];
  if (!answering) return;
  this[ANSWERING] = undefined;
  this.off('finish', endRequest);
  this.off('close', endRequest);
  const { req, context, path, requestLog, observe } = answering;
  const status = this.writableFinished ? this.statusCode : 499;
  const ms = performance.now() - context.startedAt;
  observe?.(context, req.method ?? '', status, ms / 1000);
  if (!requestLog.isLevelEnabled('info')) return;
  requestLog.info(
    {
      requestId: context.id,
      clientAddress: context.clientAddress,
      method: req.method,
      path,
      status,
      durationMs: Math.round(ms * 10) / 10,
      session: hashSessionId(context.sessionId),
      provider: context.provider,
    },
    'request',
  );
}

/** The context `beginRequest` gave this request. */
export function contextOf(req: IncomingMessage): RequestContext {
  const context = contexts.get(req);
  if (!context) throw new Error('request context missing: beginRequest must run first');
  return context;
}
