import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { AppError } from '../errors.js';
import { audit, type Logger } from '../logger.js';
import { createBearerCheck } from '../middleware/bearer-auth.js';
import { sendError } from '../middleware/error-handler.js';
import type { OperatorAuthLimiter } from '../middleware/operator-auth-limiter.js';
import { beginRequest, type RequestContext, type RequestObserver } from '../middleware/request-context.js';
import type { TrustFunction } from '../middleware/request-guards.js';
import type { SecurityHeaders } from '../middleware/security-headers.js';
import { checkTargetQuery } from '../upstream/relay-policy.js';

/** One operator endpoint: answers, or throws an AppError. `url` is parsed, the path without a host. */
export type OperatorRoute = (
  req: IncomingMessage,
  res: ServerResponse,
  context: RequestContext,
  url: URL,
) => Promise<void>;

/** What an operator endpoint is served with. */
export interface OperatorHandlerOptions {
  logger: Logger;
  /** The bearer token every request must carry; none: the port alone guards it. */
  token: string | undefined;
  /** Counts wrong tokens per client address; an address past its limit is refused (429) until its window ends. */
  limiter: OperatorAuthLimiter;
  route: OperatorRoute;
}

/**
 * An operator endpoint on an existing request context (whose listener wrote the headers): bearer auth
 * and billfold's error shape. A wrong or missing token is audited and counted against the client's
 * address; past the limit, every request from there is refused, the right token included, so
 * guessing cannot go on.
 */
export function createOperatorHandler(
  options: OperatorHandlerOptions,
): (req: IncomingMessage, res: ServerResponse, context: RequestContext) => void {
  const { logger, route } = options;
  const authorized = options.token === undefined ? () => true : createBearerCheck(options.token);
  return (req, res, context) => {
    const fail = (error: unknown) => sendError(res, error, context, logger);
    // As on every other route, a credential in the query is refused before anything reads it: a
    // token sent as `?token=` is never checked, counted or logged.
    try {
      checkTargetQuery(req.url ?? '');
    } catch (error) {
      fail(error);
      return;
    }
    if (options.token !== undefined) {
      const blockedMs = options.limiter.blockedFor(context.clientAddress);
      if (blockedMs > 0) {
        fail(new AppError('rate_limited', { retryAfter: Math.max(1, Math.ceil(blockedMs / 1000)) }));
        return;
      }
    }
    if (!authorized(req.headers.authorization)) {
      options.limiter.recordFailure(context.clientAddress);
      audit(logger, {
        event: 'operator_auth_failed',
        outcome: 'refused',
        requestId: context.id,
        clientAddress: context.clientAddress,
        route: context.route,
      });
      res.setHeader('www-authenticate', 'Bearer');
      fail(new AppError('unauthenticated', { message: 'A valid operator token is required.' }));
      return;
    }
    const url = parseTarget(req.url);
    if (url === undefined) {
      fail(new AppError('invalid_request', { message: 'The request target is not valid.' }));
      return;
    }
    route(req, res, context, url).catch(fail);
  };
}

/**
 * The path and query of an origin-form request target, or undefined for anything else: absolute and
 * authority forms, `*`, and a target starting `//`, which URL parsing would read as a host and port.
 */
function parseTarget(target: string | undefined): URL | undefined {
  if (target === undefined || !target.startsWith('/') || target.startsWith('//')) return undefined;
  try {
    return new URL(`http://operator.invalid${target}`);
  } catch {
    return undefined;
  }
}

/**
 * The same, as the listener of a port of its own: a request id, a log line and metrics per request,
 * and the headers every answer carries (without CORS: no browser calls an operator port).
 */
export function createOperatorListener(
  options: OperatorHandlerOptions & {
    securityHeaders: SecurityHeaders;
    observe?: RequestObserver;
    trust: TrustFunction;
  },
): RequestListener {
  const handle = createOperatorHandler(options);
  return (req, res) => {
    const context = beginRequest(req, res, options.logger, options.observe, options.trust);
    options.securityHeaders.write(req, res, context.id);
    handle(req, res, context);
  };
}

/** Writes a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
