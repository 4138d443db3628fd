import { createHash } from 'node:crypto';
import { pino, type DestinationStream, type Logger } from 'pino';
import { memoize } from './bounded-cache.js';
import type { ProviderId } from './upstream/provider-id.js';

export type { Logger };

/**
 * Field names that may hold a secret anywhere in a log object, censored as defence in depth: billfold
 * logs only fields it chose, and never a credential on purpose.
 */
const REDACTED_FIELDS = [
  'password',
  'apiPassword',
  'cookie',
  'authorization',
  'sessionid',
  'sessionId',
  'devKey',
  'token',
  'access',
  'refresh',
  'apiKey',
  'basic',
  'supabaseToken',
  'supabaseRefresh',
  'rememberMeId',
  'tokenValue',
  'set-cookie',
];

/** A JSON logger; pass a destination to capture lines (tests) or to write asynchronously (production). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'billfold' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACTED_FIELDS, ...REDACTED_FIELDS.map((f) => `*.${f}`)], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A short, stable, non-reversible name for a session id, the only form in which one is logged. */
export function hashSessionId(sessionId: string | undefined): string | undefined {
  return sessionId ? hashOnce(sessionId) : undefined;
}

const hashOnce = memoize((sessionId: string) =>
  createHash('sha256').update(sessionId).digest('base64url').slice(0, 12),
);

/** The audit events of SPEC section 6, plus revocations (documented in docs/audit.md). */
export type AuditEvent =
  | 'login'
  | 'logout'
  | 'renewal'
  | 'upstream_session_expired'
  | 'csrf_refused'
  | 'origin_refused'
  | 'https_refused'
  | 'rate_limited'
  | 'store_unavailable'
  | 'session_revoked'
  | 'mfa_step_up';

/** One audit line: what happened, to which provider and session, and how it ended. */
export interface AuditEntry {
  event: AuditEvent;
  outcome: 'success' | 'failure' | 'refused';
  provider?: ProviderId | undefined;
  /** The raw session id; only its hash is written. */
  sessionId?: string | undefined;
  requestId?: string | undefined;
  /** The route template of the refused request (refusals only). */
  route?: string | undefined;
  reason?: string | undefined;
}

/** Something told of every audit event as it is written (the metrics). */
export type AuditObserver = (entry: AuditEntry) => void;

const auditObservers = new WeakMap<Logger, AuditObserver>();

/**
 * A child of `logger` whose audit lines are also handed to `observe`. Metrics count what the audit
 * line says, at the one place every audited event already passes, so the two never disagree and no
 * call site has to remember both. Keyed by the child, so each billfold instance has its own.
 */
export function observeAudits(logger: Logger, observe: AuditObserver): Logger {
  const child = logger.child({});
  auditObservers.set(child, observe);
  return child;
}

/** Writes an audit line with the session id hashed. */
export function audit(logger: Logger, entry: AuditEntry): void {
  const { sessionId, ...rest } = entry;
  logger.info({ audit: true, ...rest, session: hashSessionId(sessionId) }, `audit ${entry.event}`);
  auditObservers.get(logger)?.(entry);
}
