import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { memoize } from './bounded-cache.js';
import type { AppError } from './errors.js';
import type { AuditObserver } from './logger.js';

/** What the request metrics read of a request: its route template and provider. */
export interface ObservedRequest {
  readonly route: string;
  readonly provider: string | undefined;
}

/** Told of every request once its answer has ended (status 499 when the client left first). */
export type RequestObserver = (
  request: ObservedRequest,
  method: string,
  status: number,
  seconds: number,
) => void;

/**
 * One billfold instance's Prometheus metrics, fed through the seams that already see each event:
 * the request's end, the upstream client's answer, the store call, the audit line. Each instance has
 * its own registry (several live in one test process).
 */
export interface Metrics {
  readonly registry: Registry;
  observeRequest: RequestObserver;
  /** The upstream client's `onResponse`. */
  observeUpstream: (provider: string, status: number | 'error', durationMs: number, error?: AppError) => void;
  /** The repository's `onStoreCall`. */
  observeStoreCall: (operation: string, seconds: number) => void;
  /** Counts one store failure that became a 503. */
  countStoreError(): void;
  observeAudit: AuditObserver;
  /** Counts log lines dropped because the log output was full. */
  countDroppedLogLines(lines: number): void;
  /** How the active-sessions gauge is read, at scrape time. */
  countSessionsWith(count: () => Promise<number>): void;
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const STORE_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
// Clients may send any method; labels carry only the ones billfold serves.
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

const OPERATOR_ROUTES = new Set(['/admin/sessions', '/metrics']);
const rateLimitKind = (route: string | undefined) =>
  route === '/api/:provider'
    ? 'relay'
    : route === '/auth/:provider/login'
      ? 'login'
      : OPERATOR_ROUTES.has(route ?? '')
        ? 'operator'
        : 'other';

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers });
  const histogram = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ) => new Histogram<L>({ name, help, labelNames, buckets, registers });

  const requests = counter(
    'http_requests_total',
    'Requests answered, by route template, method, status and provider.',
    ['route', 'method', 'status', 'provider'],
  );
  const requestSeconds = histogram(
    'http_request_duration_seconds',
    'Time from a request arriving to its answer ending, by route template and provider.',
    ['route', 'provider'],
    SECONDS,
  );
  const upstreamSeconds = histogram(
    'upstream_request_duration_seconds',
    "Time to an upstream answer's headers, by provider and status class (error: no answer).",
    ['provider', 'status_class'],
    SECONDS,
  );
  const upstreamErrors = counter(
    'upstream_errors_total',
    'Upstream calls that got no answer, by provider and the error billfold answered with.',
    ['provider', 'code'],
  );
  const renewals = counter('renewals_total', 'Upstream credential renewals, by provider and outcome.', [
    'provider',
    'outcome',
  ]);
  const loginFailures = counter('login_failures_total', 'Failed logins, by provider and error code.', [
    'provider',
    'reason',
  ]);
  const rateLimited = counter(
    'rate_limited_total',
    'Requests refused with 429, by limit (login, relay or operator token).',
    ['kind'],
  );
  const revoked = counter('sessions_revoked_total', 'Sessions revoked, by who asked (user or operator).', [
    'by',
  ]);
  const storeErrors = counter(
    'store_errors_total',
    'Session store calls that failed or timed out (each answered 503).',
  );
  const droppedLogLines = counter(
    'log_lines_dropped_total',
    'Log lines dropped because the log output (stdout) was slower than they arrived and its buffer full.',
  );
  const storeSeconds = histogram(
    'store_operation_duration_seconds',
    'Session store call time, by operation.',
    ['operation'],
    STORE_SECONDS,
  );
  // Label sets are few, and these run on every relayed request: a labelled child, kept per label set,
  // spares building a labels object for each observation (prom-client still hashes the labels each time).
  const split = (key: string) => key.split('|');
  const requestCounter = memoize((key) => {
    const [route = '', method = '', status = '', provider = ''] = split(key);
    return requests.labels({ route, method, status, provider });
  }, 1000);
  const requestTimer = memoize((key) => {
    const [route = '', provider = ''] = split(key);
    return requestSeconds.labels({ route, provider });
  }, 1000);
  const upstreamTimer = memoize((key) => {
    const [provider = '', statusClass = ''] = split(key);
    return upstreamSeconds.labels({ provider, status_class: statusClass });
  }, 1000);
  const storeTimer = memoize((operation) => storeSeconds.labels({ operation }), 100);

  let countSessions: (() => Promise<number>) | undefined;
  new Gauge({
    name: 'active_sessions',
    help: 'Sessions not yet at their absolute end and not ended by logout, revocation or disconnection.',
    registers,
    async collect() {
      if (!countSessions) return;
      // A store outage keeps the last value; the failure itself is counted in store_errors_total.
      const count = await countSessions().catch(() => undefined);
      if (count !== undefined) this.set(count);
    },
  });

  return {
    registry,
    observeRequest(context, method, status, seconds) {
      const provider = context.provider ?? '';
      requestCounter(
        `${context.route}|${METHODS.has(method) ? method : 'OTHER'}|${status}|${provider}`,
      ).inc();
      requestTimer(`${context.route}|${provider}`).observe(seconds);
    },
    observeUpstream(provider, status, durationMs, error) {
      const statusClass =
        status === 'error' ? 'error' : (STATUS_CLASSES[Math.floor(status / 100) - 1] ?? 'other');
      upstreamTimer(`${provider}|${statusClass}`).observe(durationMs / 1000);
      if (status === 'error') upstreamErrors.inc({ provider, code: error?.code ?? 'upstream_unavailable' });
    },
    observeStoreCall(operation, seconds) {
      storeTimer(operation).observe(seconds);
    },
    countStoreError() {
      storeErrors.inc();
    },
    observeAudit(entry) {
      const provider = entry.provider ?? '';
      if (entry.event === 'renewal') renewals.inc({ provider, outcome: entry.outcome });
      else if (entry.event === 'login' && entry.outcome === 'failure')
        loginFailures.inc({ provider, reason: entry.reason ?? 'internal_error' });
      else if (entry.event === 'rate_limited') rateLimited.inc({ kind: rateLimitKind(entry.route) });
      else if (entry.event === 'session_revoked') revoked.inc({ by: entry.reason ?? 'user' });
    },
    countDroppedLogLines(lines) {
      droppedLogLines.inc(lines);
    },
    countSessionsWith(count) {
      countSessions = count;
    },
  };
}
