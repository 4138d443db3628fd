import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { AppError, toErrorBody } from '../errors.js';
import type { Logger } from '../logger.js';
import { createSecurityHeaders } from './security-headers.js';

/**
 * The last resort of every listener. Node runs a request listener inside the HTTP parser's event, so
 * anything it throws synchronously, or any promise it returns that rejects, would end the process and
 * every port with it. Here it becomes the documented 500 instead (or a closed connection when the
 * answer had already begun), and the process keeps serving. Errors billfold expects never reach this:
 * each road answers its own through `sendError`.
 */
export function guardListener(handler: RequestListener, logger: Logger): RequestListener {
  const fixed = createSecurityHeaders().fixed;
  const answer = (req: IncomingMessage, res: ServerResponse, error: unknown) => {
    try {
      const { name, message } = (error ?? {}) as { name?: unknown; message?: unknown };
      logger.error(
        { name, message, clientAddress: req.socket.remoteAddress },
        'a request handler failed outside every error handler',
      );
    } catch {
      // The answer matters more than the line.
    }
    try {
      if (res.headersSent || res.writableEnded) {
        res.destroy();
        return;
      }
      const given = res.getHeader('x-request-id');
      const requestId = typeof given === 'string' ? given : randomUUID();
      const body = JSON.stringify(toErrorBody(new AppError('internal_error'), requestId));
      res.statusCode = 500;
      for (const [name, value] of fixed) res.setHeader(name, value);
      res.setHeader('x-request-id', requestId);
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.setHeader('cache-control', 'no-store');
      res.setHeader('content-length', Buffer.byteLength(body));
      res.end(body);
    } catch {
      res.destroy();
    }
  };
  return (req: IncomingMessage, res: ServerResponse) => {
    try {
      // A listener typed to return nothing may still return a promise (an async one does).
      // eslint-disable-next-line @typescript-eslint/no-confusing-void-expression
      const returned = handler(req, res) as unknown;
      if (returned instanceof Promise)
        returned.catch((error: unknown) => {
          answer(req, res, error);
        });
    } catch (error) {
      answer(req, res, error);
    }
  };
}
