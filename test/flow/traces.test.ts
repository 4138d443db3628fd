import { randomBytes } from 'node:crypto';
import { context, propagation, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { tracesRequested } from '../../src/tracing.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billogram;
const ORIGIN = 'https://app.example';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])$/;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const idOf = (span: ReadableSpan) => span.spanContext().spanId;

describe('traces', () => {
  const exporter = new InMemorySpanExporter();
  const spansOf = (traceId: string) =>
    exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);

  beforeAll(() => {
    // The SDK main.ts starts, with an in-memory exporter in place of OTLP.
    const sdk = new NodeSDK({
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
      metricReaders: [],
      logRecordProcessors: [],
      autoDetectResources: false,
    });
    sdk.start();
    // After the stack's own teardown: billfold stops before its tracer does.
    return async () => {
      await sdk.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    };
  });
  const stack = useStack({ env: { CORS_ORIGINS: ORIGIN } });
  beforeEach(() => {
    exporter.reset();
    stack.sandbox.reset();
  });

  it("continues a browser's traceparent through the session store to the upstream call, as one trace", async () => {
    const client = stack.client();
    expect((await client.post('/auth/billogram/login', demo, { origin: ORIGIN })).status).toBe(200);
    const traceId = hex(16);
    const callerSpanId = hex(8);
    stack.sandbox.billogram.clearRequests();
    exporter.reset();

    const answer = await client.get('/api/billogram/customer/1', {
      origin: ORIGIN,
      traceparent: `00-${traceId}-${callerSpanId}-01`,
    });
    expect(answer.status).toBe(200);

    // The upstream was called inside the same trace, by billfold's client span.
    const received = stack.sandbox.billogram.requests.at(-1)!.headers.traceparent;
    const [, upstreamTraceId, upstreamParentId, sampled] = TRACEPARENT.exec(String(received)) ?? [];
    expect(upstreamTraceId).toBe(traceId);
    expect(sampled).toBe('1');

    const spans = spansOf(traceId);
    const server = spans.find((span) => span.name === 'GET /api/:provider')!;
    expect(server).toBeDefined();
    expect(parentOf(server)).toBe(callerSpanId);
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/api/:provider',
      'http.response.status_code': 200,
      'billfold.provider': 'billogram',
    });
    const upstream = spans.find((span) => span.name === 'GET billogram')!;
    expect(idOf(upstream)).toBe(upstreamParentId);
    expect(parentOf(upstream)).toBe(idOf(server));
    expect(upstream.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'billfold.provider': 'billogram',
    });
    const store = spans.filter((span) => span.name.startsWith('store '));
    expect(store.length).toBeGreaterThan(0);
    for (const span of store) expect(parentOf(span)).toBe(idOf(server));

    // The request's log line names the same trace and span.
    const line = stack.billfold.logs
      .map((each) => JSON.parse(each) as Record<string, unknown>)
      .find((each) => each.msg === 'request' && each.trace_id === traceId);
    expect(line).toMatchObject({ path: '/api/billogram/customer/1', span_id: idOf(server) });
  });

  it('starts a trace of its own for a caller that sends none or a malformed one', async () => {
    const client = stack.client();
    await client.post('/auth/billogram/login', demo, { origin: ORIGIN });
    for (const traceparent of [undefined, '00-zz-yy-01', `00-${'0'.repeat(32)}-${hex(8)}-01`]) {
      exporter.reset();
      stack.sandbox.billogram.clearRequests();
      const answer = await client.get('/api/billogram/customer/1', {
        origin: ORIGIN,
        ...(traceparent && { traceparent }),
      });
      expect(answer.status).toBe(200);
      const server = exporter.getFinishedSpans().find((span) => span.name === 'GET /api/:provider')!;
      expect(parentOf(server)).toBeUndefined();
      const received = String(stack.sandbox.billogram.requests.at(-1)!.headers.traceparent);
      expect(TRACEPARENT.exec(received)?.[1]).toBe(server.spanContext().traceId);
    }
  });

  it('passes no baggage or trace state of the caller to the upstream, only the trace', async () => {
    const client = stack.client();
    await client.post('/auth/billogram/login', demo, { origin: ORIGIN });
    const traceId = hex(16);
    stack.sandbox.billogram.clearRequests();
    const answer = await client.get('/api/billogram/customer/1', {
      origin: ORIGIN,
      traceparent: `00-${traceId}-${hex(8)}-01`,
      tracestate: 'vendor=client-chosen',
      baggage: 'role=admin,tenant=someone-else',
    });
    expect(answer.status).toBe(200);
    const { headers } = stack.sandbox.billogram.requests.at(-1)!;
    expect(TRACEPARENT.exec(String(headers.traceparent))?.[1]).toBe(traceId);
    expect(headers.baggage).toBeUndefined();
    expect(headers.tracestate).toBeUndefined();
  });

  it("keeps a caller's decision not to sample: nothing recorded, the upstream told the same", async () => {
    const client = stack.client();
    await client.post('/auth/billogram/login', demo, { origin: ORIGIN });
    const traceId = hex(16);
    exporter.reset();
    stack.sandbox.billogram.clearRequests();
    const answer = await client.get('/api/billogram/customer/1', {
      origin: ORIGIN,
      traceparent: `00-${traceId}-${hex(8)}-00`,
    });
    expect(answer.status).toBe(200);
    const [, upstreamTraceId, , sampled] =
      TRACEPARENT.exec(String(stack.sandbox.billogram.requests.at(-1)!.headers.traceparent)) ?? [];
    expect(upstreamTraceId).toBe(traceId);
    expect(sampled).toBe('0');
    expect(spansOf(traceId)).toEqual([]);
  });

  it("records the upstream's refusal on the client span and billfold's answer on the server span", async () => {
    const client = stack.client();
    await client.post('/auth/billogram/login', demo, { origin: ORIGIN });
    stack.sandbox.billogram.expireAllSessions();
    exporter.reset();
    const answer = await client.get('/api/billogram/customer/1', { origin: ORIGIN });
    expect(answer.status).toBe(401);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((span) => span.name === 'GET /api/:provider')!;
    const upstream = spans.find((span) => span.name === 'GET billogram')!;
    expect(upstream.attributes['http.response.status_code']).toBe(401);
    expect(server.attributes['http.response.status_code']).toBe(401);
    expect(parentOf(upstream)).toBe(idOf(server));
  });

  it('puts no credential, cookie, session id, path or query in any span', async () => {
    const client = stack.client();
    const login = await client.post('/auth/billogram/login', demo, { origin: ORIGIN });
    expect(login.status).toBe(200);
    const cookieValue = decodeURIComponent(client.cookie!.split('=')[1]!);
    const sessionId = cookieValue.slice(2).split('.')[0]!;
    await client.get('/api/billogram/customer/1?secret-query=kept-out', {
      origin: ORIGIN,
      authorization: 'Bearer client-sent-token-kept-out',
    });
    await client.post('/auth/billogram/logout', undefined, { origin: ORIGIN });
    const spans = exporter.getFinishedSpans();
    expect(spans.length).toBeGreaterThan(4);
    const written = JSON.stringify(
      spans.map((span) => ({
        name: span.name,
        attributes: span.attributes,
        events: span.events,
        status: span.status,
        links: span.links,
      })),
    );
    const basic = Buffer.from(`${demo.apiUserId}:${demo.apiPassword}`).toString('base64');
    for (const secret of [
      demo.apiPassword,
      demo.apiUserId,
      basic,
      cookieValue,
      sessionId,
      'client-sent-token-kept-out',
      'secret-query',
      '/customer/1',
    ]) {
      expect(written).not.toContain(secret);
    }
  });
});

describe('tracesRequested', () => {
  it.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_SERVICE_NAME: 'billfold-eu' }, false],
  ] as const)('%j asks for traces: %s', (env, expected) => {
    expect(tracesRequested(env)).toBe(expected);
  });
});
