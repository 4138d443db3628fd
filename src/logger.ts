import { createHash } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import { pino, type DestinationStream, type Logger } from 'pino';
import { memoize } from './bounded-cache.js';

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

/** The active span's ids, so a log line can be found from its trace and the trace from the line. */
function traceIds(): object {
  const span = trace.getActiveSpan();
  // A fresh object each time: pino merges the line's own fields into it.
  if (!span) return {};
  const { traceId, spanId, traceFlags } = span.spanContext();
  return { trace_id: traceId, span_id: spanId, trace_flags: traceFlags.toString(16).padStart(2, '0') };
}

/** A JSON logger; pass a destination to capture lines (tests) or to write asynchronously (production). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  // pino's ISO time, formatted once per millisecond: a busy instance writes several lines in each.
  let formattedAt = 0;
  let timeField = '';
  const isoTime = () => {
    const now = Date.now();
    if (now !== formattedAt) {
      formattedAt = now;
      timeField = `,"time":"${new Date(now).toISOString()}"`;
    }
    return timeField;
  };
  return pino(
    {
      level,
      base: { service: 'billfold' },
      timestamp: isoTime,
      redact: { paths: [...REDACTED_FIELDS, ...REDACTED_FIELDS.map((f) => `*.${f}`)], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceIds,
    },
    destination,
  );
}

/** What `createLogDestination` writes to and how much it may hold. */
export interface LogDestinationOptions {
  /** A file descriptor or path; stdout by default. */
  dest?: number | string;
  /** Bytes held while the output is slower than the lines arriving; past it, lines are dropped. */
  maxBytes: number;
  /** Told how many lines were dropped, each time some are. */
  onDrop: (lines: number) => void;
}

/**
 * Log lines written asynchronously in batches, so a slow stdout never stalls a request and a busy
 * instance does not pay a write per line; and bounded, so a blocked stdout and a flood of requests
 * cost at most `maxBytes` of memory: past it, lines are dropped (and counted) until the output drains.
 */
export function createLogDestination(options: LogDestinationOptions): ReturnType<typeof pino.destination> {
  const destination = pino.destination({
    dest: options.dest ?? 1,
    sync: false,
    // Written once 12 KiB are held (sonic-boom writes at most 16 KiB at once), or by the second's flush.
    minLength: 12 * 1024,
    maxLength: options.maxBytes,
  });
  destination.on('drop', (data: string | Buffer) => {
    let lines = 0;
    for (let at = data.indexOf('\n'); at !== -1; at = data.indexOf('\n', at + 1)) lines++;
    options.onDrop(Math.max(lines, 1));
  });
  return destination;
}

/** A short, stable, non-reversible name for a session id, the only form in which one is logged. */
export function hashSessionId(sessionId: string | undefined): string | undefined {
  return sessionId ? hashOnce(sessionId) : undefined;
}

const hashOnce = memoize((sessionId: string) =>
  createHash('sha256').update(sessionId).digest('base64url').slice(0, 12),
);

/** The audit events, each documented in docs/audit.md. */
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
  | 'mfa_step_up'
  | 'operator_auth_failed'
  | 'admin_sessions_listed';

/** One audit line: what happened, to which provider and session, and how it ended. */
export interface AuditEntry {
  event: AuditEvent;
  outcome: 'success' | 'failure' | 'refused';
  provider?: string | undefined;
  /** The raw session id; only its hash is written. */
  sessionId?: string | undefined;
  requestId?: string | undefined;
  /** The client's address, as TRUST_PROXY resolves it (none for work no client asked for). */
  clientAddress?: string | undefined;
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
