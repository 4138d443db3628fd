import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { AppError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createBearerCheck } from '../middleware/bearer-auth.js';
import { sendError } from '../middleware/error-handler.js';
import { beginRequest, type RequestContext, type RequestObserver } from '../middleware/request-context.js';
import type { SecurityHeaders } from '../middleware/security-headers.js';

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
  securityHeaders: SecurityHeaders;
  /** The bearer token every request must carry; none: the port alone guards it. */
  token: string | undefined;
  route: OperatorRoute;
}

/** An operator endpoint on an existing request context: bearer auth, billfold's headers and error shape. */
export function createOperatorHandler(
  options: OperatorHandlerOptions,
): (req: IncomingMessage, res: ServerResponse, context: RequestContext) => void {
  const { logger, route } = options;
  const authorized = options.token === undefined ? () => true : createBearerCheck(options.token);
  return (req, res, context) => {
    for (const [name, value] of options.securityHeaders.fixed) res.setHeader(name, value);
    res.setHeader('cache-control', 'no-store');
    const fail = (error: unknown) => sendError(res, error, context, logger);
    if (!authorized(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer');
      fail(new AppError('unauthenticated'));
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

/** The same, as the listener of a port of its own (a request id, a log line and metrics per request). */
export function createOperatorListener(
  options: OperatorHandlerOptions & { observe?: RequestObserver },
): RequestListener {
  const handle = createOperatorHandler(options);
  return (req, res) => handle(req, res, beginRequest(req, res, options.logger, options.observe));
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
