import type { IncomingHttpHeaders, IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
} from '@opentelemetry/api';
import { isLive, tracer } from '../tracing.js';
import type { ProviderId } from '../upstream/provider-id.js';
import { contextOf, routeTemplate } from './request-context.js';

/** The provider the request's context names, once a route has read it. */
function providerOf(req: IncomingMessage): ProviderId | undefined {
  try {
    return contextOf(req).provider;
  } catch {
    // A request refused before its context began names none.
    return undefined;
  }
}

/**
 * The caller's trace, to continue, and nothing else it sent: its baggage and trace state are data of
 * its own choosing, which would otherwise ride to the upstreams on billfold's `traceparent` past the
 * relay's allow-list of client headers.
 */
function fromCaller(headers: IncomingHttpHeaders): Context {
  let extracted = propagation.extract(ROOT_CONTEXT, headers);
  if (propagation.getBaggage(extracted)) extracted = propagation.deleteBaggage(extracted);
  const remote = trace.getSpanContext(extracted);
  if (remote?.traceState) {
    const { traceId, spanId, traceFlags, isRemote } = remote;
    extracted = trace.setSpanContext(extracted, {
      traceId,
      spanId,
      traceFlags,
      ...(isRemote && { isRemote }),
    });
  }
  return extracted;
}

/**
 * The listener with one server span per request, continuing the caller's W3C `traceparent` and made
 * the active context for everything the request does (store calls, upstream calls, log lines).
 */
export function traceRequests(listener: RequestListener): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? '';
    const url = req.url ?? '';
    const queryAt = url.indexOf('?');
    const route = routeTemplate(queryAt === -1 ? url : url.slice(0, queryAt));
    const parent = fromCaller(req.headers);
    const span = tracer.startSpan(
      `${method} ${route}`,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'http.route': route } },
      parent,
    );
    if (!isLive(span)) {
      listener(req, res);
      return;
    }
    const end = () => {
      res.off('finish', end);
      res.off('close', end);
      const status = res.writableFinished ? res.statusCode : 499;
      span.setAttribute('http.response.status_code', status);
      const provider = providerOf(req);
      if (provider) span.setAttribute('billfold.provider', provider);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.on('finish', end);
    res.on('close', end);
    context.with(trace.setSpan(parent, span), () => listener(req, res));
  };
}
