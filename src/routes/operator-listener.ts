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
  /** The bearer token every request must carry; none: the port alone guards it. */
  token: string | undefined;
  route: OperatorRoute;
}

/** An operator endpoint on an existing request context (whose listener wrote the headers): bearer auth and billfold's error shape. */
export function createOperatorHandler(
  options: OperatorHandlerOptions,
): (req: IncomingMessage, res: ServerResponse, context: RequestContext) => void {
  const { logger, route } = options;
  const authorized = options.token === undefined ? () => true : createBearerCheck(options.token);
  return (req, res, context) => {
    const fail = (error: unknown) => sendError(res, error, context, logger);
    if (!authorized(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer');
      fail(new AppError('unauthenticated'));
      return;
    }
    route(req, res, context, new URL(req.url ?? '/', 'http://operator.invalid')).catch(fail);
  };
}

/**
 * The same, as the listener of a port of its own: a request id, a log line and metrics per request,
 * and the headers every answer carries (without CORS: no browser calls an operator port).
 */
export function createOperatorListener(
  options: OperatorHandlerOptions & { securityHeaders: SecurityHeaders; observe?: RequestObserver },
): RequestListener {
  const handle = createOperatorHandler(options);
  return (req, res) => {
    const context = beginRequest(req, res, options.logger, options.observe);
    options.securityHeaders.write(req, res);
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
