import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler } from 'express';
import { AppError, toAppError, toErrorBody, type ErrorCode } from '../errors.js';
import { audit, type AuditEvent, type Logger } from '../logger.js';
import { contextOf, type RequestContext } from './request-context.js';

/**
 * The response header on every error billfold itself answers, holding its code. The relay passes
 * upstream headers by allow-list and this one is never on it, so an upstream cannot forge it: a
 * client tells billfold's errors from relayed ones by this header, never by the body's shape.
 */
export const BILLFOLD_ERROR_HEADER = 'x-billfold-error';

const AUDITED: Partial<Record<ErrorCode, AuditEvent>> = {
  csrf_header_missing: 'csrf_refused',
  origin_not_allowed: 'origin_refused',
  https_required: 'https_refused',
  rate_limited: 'rate_limited',
  session_store_unavailable: 'store_unavailable',
};

/**
 * The provider a refused request's path names and the session its cookie carries (validly signed),
 * for its audit line: a request refused before its route read them is still told apart.
 */
export type RefusedRequestReader = (req: IncomingMessage) => {
  provider: string | undefined;
  sessionId: string | undefined;
};

/**
 * The one place an error becomes an HTTP answer, for both roads: the documented JSON shape, no
 * stack, cause or upstream detail in it; refusals and outages are audited, unexpected errors logged.
 */
export function sendError(
  res: ServerResponse,
  thrown: unknown,
  context: RequestContext,
  logger: Logger,
  readRefused?: RefusedRequestReader,
): void {
  const error = toAppError(thrown);
  const event = AUDITED[error.code];
  if (event) {
    const refused = readRefused?.(res.req);
    audit(logger, {
      event,
      outcome: 'refused',
      provider: error.provider ?? context.provider ?? refused?.provider,
      sessionId: context.sessionId ?? refused?.sessionId,
      requestId: context.id,
      clientAddress: context.clientAddress,
      route: context.route,
    });
  }
  if (error.status >= 500) {
    const cause = error.cause as { name?: string; code?: string; message?: string } | undefined;
    logger.warn(
      {
        requestId: context.id,
        code: error.code,
        provider: error.provider,
        cause: cause && { name: cause.name, code: cause.code },
      },
      error.code === 'internal_error' ? `unexpected error: ${cause?.message ?? ''}` : error.message,
    );
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(toErrorBody(error, context.id));
  // The headers every answer carries are on `res` already: every listener writes them first.
  res.statusCode = error.status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader(BILLFOLD_ERROR_HEADER, error.code);
  res.setHeader('content-length', Buffer.byteLength(body));
  if (error.retryAfter !== undefined) res.setHeader('retry-after', String(error.retryAfter));
  res.end(body);
}

/** Errors raised by Express's body parser, by their `type`. */
const BODY_PARSER_ERRORS: Record<string, ErrorCode> = {
  'entity.too.large': 'payload_too_large',
  'entity.parse.failed': 'invalid_request',
  'entity.verify.failed': 'invalid_request',
  'request.aborted': 'invalid_request',
  'request.size.invalid': 'invalid_request',
  'stream.encoding.set': 'invalid_request',
  'encoding.unsupported': 'unsupported_media_type',
  'charset.unsupported': 'unsupported_media_type',
};

/**
 * The code for a client error Express's own machinery raised without a known `type`: a body that does
 * not inflate, a path parameter that does not decode, a static file's unsatisfiable range. Each
 * carries a 4xx `status` (http-errors, or the router's URIError); being the client's fault, none of
 * them is a 500. billfold's own AppErrors keep their code.
 */
function codeOfClientError(thrown: unknown): ErrorCode | undefined {
  const status = (thrown as { status?: unknown } | undefined)?.status;
  if (thrown instanceof AppError || typeof status !== 'number' || status < 400 || status > 499)
    return undefined;
  if (status === 404) return 'not_found';
  if (status === 413) return 'payload_too_large';
  if (status === 415) return 'unsupported_media_type';
  return 'invalid_request';
}

/** Express's error middleware: body-parser failures get their documented codes, the rest go to sendError. */
export function createErrorHandler(logger: Logger, readRefused?: RefusedRequestReader): ErrorRequestHandler {
  return (thrown: unknown, req, res, _next) => {
    const type = (thrown as { type?: unknown } | undefined)?.type;
    const code =
      (typeof type === 'string' ? BODY_PARSER_ERRORS[type] : undefined) ?? codeOfClientError(thrown);
    sendError(
      res,
      code ? new AppError(code, { cause: thrown }) : thrown,
      contextOf(req),
      logger,
      readRefused,
    );
  };
}
