/**
 * Every status billfold answers with itself, keyed by its machine-readable code: the closed list the
 * server raises, /openapi.json documents and the typed client narrows its errors to.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  invalid_path: 400,
  secret_in_query: 400,
  unauthenticated: 401,
  invalid_credentials: 401,
  provider_not_connected: 401,
  upstream_session_expired: 401,
  mfa_required: 403,
  csrf_header_missing: 403,
  origin_not_allowed: 403,
  https_required: 403,
  forbidden_upstream_path: 403,
  organization_access_denied: 403,
  provider_not_configured: 404,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  expectation_failed: 417,
  rate_limited: 429,
  internal_error: 500,
  upstream_unavailable: 502,
  session_store_unavailable: 503,
  upstream_timeout: 504,
} as const;

/** A code from the closed list of errors billfold can produce. */
export type ErrorCode = keyof typeof ERROR_STATUS;
