import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';

/**
 * billfold's spans, through the OpenTelemetry API alone. Until an SDK is registered (main.ts starts
 * one when the OTEL_* environment asks for traces) every call below is the API's no-op: no span is
 * recorded, no header is read or written, nothing is allocated past an empty span object.
 *
 * Attributes name only what a metric label already may: a route template, a method, a status, a
 * provider, a store operation, an upstream host. Never a path, a query, a header or a session id,
 * so a trace backend learns no credential and no personal value.
 */
export const tracer = trace.getTracer('billfold');

/** Whether a span is a real one (an SDK is registered and made it), so work for the no-op is skipped. */
export const isLive = (span: Span) => trace.isSpanContextValid(span.spanContext());

/** One client span per upstream call; `headers` gains the `traceparent` the upstream continues. */
export function startUpstreamSpan(
  provider: string,
  method: string,
  url: URL,
  headers: Record<string, string>,
): { span: Span; headers: Record<string, string> } {
  const span = tracer.startSpan(`${method} ${provider}`, { kind: SpanKind.CLIENT });
  if (!isLive(span)) return { span, headers };
  // Set once the span is known to be real: reading a URL's parts is most of a no-op span's cost.
  span.setAttributes({
    'http.request.method': method,
    'server.address': url.hostname,
    'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    'billfold.provider': provider,
  });
  // A copy: the caller's headers may be reused for a retry, which gets a span of its own.
  const sent = { ...headers };
  propagation.inject(trace.setSpan(context.active(), span), sent);
  return { span, headers: sent };
}

/** Ends an upstream span with the answer's status, or with the error code the call became. */
export function endUpstreamSpan(span: Span, outcome: number | { code: string }): void {
  if (!isLive(span)) return;
  if (typeof outcome === 'number') {
    span.setAttribute('http.response.status_code', outcome);
    if (outcome >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  } else {
    // The code, never the error's message or cause: those may quote an upstream's answer.
    span.setAttribute('error.type', outcome.code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
  }
  span.end();
}

/** One internal span per session-store call, named by its operation. */
export function startStoreSpan(operation: string): Span {
  const span = tracer.startSpan(`store ${operation}`, { kind: SpanKind.CLIENT });
  if (isLive(span)) span.setAttribute('db.operation.name', operation);
  return span;
}

/** Ends a store span; `failed` marks the call that became a 503. */
export function endStoreSpan(span: Span, failed: boolean): void {
  if (!isLive(span)) return;
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: 'session_store_unavailable' });
  span.end();
}

/**
 * Whether the environment asks for traces: an OTLP endpoint or a traces exporter named (other than
 * `none`), and the SDK not disabled. Otherwise the SDK is never loaded.
 */
export function tracesRequested(env: Record<string, string | undefined>): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((each) => each.trim())
    .filter(Boolean);
  if (exporters.includes('none')) return false;
  return (
    exporters.length > 0 ||
    Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()) ||
    Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim())
  );
}
