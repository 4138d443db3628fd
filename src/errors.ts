import { ERROR_STATUS, type ErrorCode } from './client/error-codes.js';

export { ERROR_STATUS, type ErrorCode };

const DEFAULT_MESSAGES: Record<ErrorCode, string> = {
  invalid_request: 'The request is not valid.',
  invalid_path: 'The relay path is not allowed.',
  secret_in_query: 'Credentials must not be sent in the query string.',
  unauthenticated: 'No valid session.',
  invalid_credentials: 'The provider rejected the credentials.',
  provider_not_connected: 'This session is not signed in to the provider.',
  upstream_session_expired: 'The provider session has expired; sign in again.',
  mfa_required:
    'The provider requires an MFA-trusted session for this call; complete the MFA step-up and retry.',
  csrf_header_missing: 'The X-CSRF: 1 header is required.',
  origin_not_allowed: 'The request origin is not allowed.',
  https_required: 'HTTPS is required.',
  forbidden_upstream_path: 'This provider endpoint cannot be called through the relay.',
  organization_access_denied: 'The provider refused access to that organization.',
  provider_not_configured: 'This provider is not configured.',
  not_found: 'Not found.',
  method_not_allowed: 'Method not allowed.',
  payload_too_large: 'The request body is too large.',
  unsupported_media_type: 'The request body must be JSON.',
  expectation_failed: 'Only Expect: 100-continue is supported.',
  rate_limited: 'Too many requests; retry later.',
  internal_error: 'Internal error.',
  upstream_unavailable: 'The provider could not be reached.',
  session_store_unavailable: 'The session store is unavailable; retry shortly.',
  upstream_timeout: 'The provider did not answer in time.',
};

/** Options an AppError may carry beyond its code. */
export interface AppErrorOptions {
  message?: string;
  provider?: string;
  /** Seconds, sent as Retry-After. */
  retryAfter?: number;
  cause?: unknown;
}

/** The one error type billfold turns into an HTTP answer; anything else becomes a bare 500. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly provider: string | undefined;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, options: AppErrorOptions = {}) {
    super(options.message ?? DEFAULT_MESSAGES[code], { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.provider = options.provider;
    this.retryAfter = options.retryAfter;
  }
}

/** The JSON body of every error billfold answers (`ErrorBody` in /openapi.json). */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; provider?: string; requestId: string };
}

/** Builds the documented error body; never includes causes, stacks or upstream details. */
export function toErrorBody(error: AppError, requestId: string): ErrorBody {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.provider ? { provider: error.provider } : {}),
      requestId,
    },
  };
}

/** Maps anything thrown to an AppError: AppErrors pass through, everything else is an internal error. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError('internal_error', { cause: error });
}
