import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { AppError } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { OperatorAuthLimiter } from './middleware/operator-auth-limiter.js';
import {
  BILLFOLD_ERROR_HEADER,
  createErrorHandler,
  sendError,
  type RefusedRequestReader,
} from './middleware/error-handler.js';
import { beginRequest } from './middleware/request-context.js';
import {
  compileTrust,
  createRequestPolicy,
  isSecureRequest,
  refuseOversizedBody,
} from './middleware/request-guards.js';
import { createRelayLimiter } from './middleware/rate-limits.js';
import { createRelayConcurrency } from './middleware/relay-concurrency.js';
import {
  continueIfExpected,
  hasUnmetExpectation,
  markAwaitingContinue,
  markUnmetExpectation,
} from './middleware/expectations.js';
import { createSecurityHeaders, type SecurityHeaders } from './middleware/security-headers.js';
import { createSessionMiddleware } from './middleware/session-middleware.js';
import { createAuthRouter, createProviderRouters, requireJsonBody } from './routes/auth-routes.js';
import { createHealthRouter } from './routes/health-routes.js';
import { createInventoryRouter } from './routes/inventory-routes.js';
import { createMetricsRoute } from './routes/metrics-route.js';
import { createOpenApiRouter } from './routes/openapi-route.js';
import { createOperatorHandler } from './routes/operator-listener.js';
import { createRelayHandler } from './routes/relay-route.js';
import { createSessionRouter } from './routes/session-routes.js';
import { createSessionIdReader } from './session/session-cookie.js';
import type { SessionRepository } from './session/session-repository.js';
import type { SessionStore } from './session/session-store.js';
import type { StoreKeyNames } from './session/store-key-names.js';
import { createCredentialRenewer } from './upstream/credential-renewer.js';
import { isKnownProvider, type AdapterRegistry } from './upstream/provider-adapter.js';
import type { ProviderModule } from './upstream/provider-module.js';
import { checkTargetQuery } from './upstream/relay-policy.js';
import type { UpstreamClient } from './upstream/upstream-client.js';

/** Everything the app is built from; it reads no environment and opens no port. */
export interface AppDeps {
  config: Config;
  clock: Clock;
  logger: Logger;
  /** The express-session store of the /auth routes; its repository is the one below. */
  store: SessionStore;
  repository: SessionRepository;
  /** The provider modules billfold serves; `adapters` holds one entry for each. */
  modules: readonly ProviderModule[];
  adapters: AdapterRegistry;
  client: UpstreamClient;
  metrics: Metrics;
  securityHeaders: SecurityHeaders;
  /** The public handle of a session id (the inventory never shows ids). */
  handleOf: (sessionId: string) => string;
  /** Wrong operator tokens per address, shared by every operator endpoint of this instance. */
  operatorAuthLimiter: OperatorAuthLimiter;
  /** How store keys named after personal values are named (keyed hashes). */
  keyNames: StoreKeyNames;
}

const PROBES = new Set(['/healthz', '/readyz']);
const PUBLIC_DIR = fileURLToPath(new URL('../public', import.meta.url));
// The typed client, compiled by `npm run build` (from src/ and from dist/, one folder up is the repo).
const CLIENT_DIR = fileURLToPath(new URL('../dist/client', import.meta.url));

/**
 * The request listener. Every request first gets its context and the headers every answer carries
 * (`securityHeaders`: helmet's, no-store, Vary, CORS) and passes the HTTPS rule; then relayed calls
 * (`/api/*`) take the lean road straight to the relay, and everything else goes through Express. Both
 * roads share the CSRF/origin policy, the body-size rule and the error writer.
 */
export function createApp(deps: AppDeps): RequestListener {
  const { config, logger, repository, metrics, securityHeaders } = deps;
  const trust = compileTrust(config.trustProxy);
  const policy = createRequestPolicy(config);
  // Without a port of its own, /metrics is served here only behind its token (and is a 404 without one).
  const metricsHere =
    config.metrics.port === undefined && config.metrics.token !== undefined
      ? createOperatorHandler({
          logger,
          token: config.metrics.token,
          limiter: deps.operatorAuthLimiter,
          route: createMetricsRoute(metrics),
        })
      : undefined;
  // One renewer for the relay and the organization switch, so both take the same lock. The lock
  // outlives one upstream call and is extended while its holder works; a renewal (Billbora's makes up
  // to three calls in a row) is cancelled past three upstream timeouts.
  const renewer = createCredentialRenewer({
    ...deps,
    lockTtlMs: config.upstreamTimeoutMs,
    renewalDeadlineMs: 3 * config.upstreamTimeoutMs,
  });
  const readSessionId = createSessionIdReader(config.session.cookieName, config.session.secrets);
  const readRefused: RefusedRequestReader = (req) => {
    // Express matches /auth in any case; the provider segment only as the provider spells it.
    const named = /^\/(?:auth|api)\/([^/?]+)/i.exec(req.url ?? '')?.[1];
    return {
      provider: named !== undefined && isKnownProvider(deps.adapters, named) ? named : undefined,
      sessionId: readSessionId(req.headers.cookie),
    };
  };
  const relay = createRelayHandler({
    ...deps,
    policy,
    renewer,
    concurrency: createRelayConcurrency(config.rateLimits.relayConcurrentPerSession),
    readSessionId,
    relayLimiter: createRelayLimiter(
      repository.backend,
      config.rateLimits,
      deps.clock,
      (error) =>
        logger.warn(
          { message: error instanceof Error ? error.message : String(error) },
          'relay counter not written',
        ),
      deps.keyNames,
    ),
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', trust);
  app.set('query parser', 'simple');
  app.use(createHealthRouter(repository, deps.client));
  app.use(createOpenApiRouter());
  app.use(['/auth', '/api'], (req, res, next) => {
    if (policy.isPreflight(req)) {
      // `cors` gave a listed origin its headers; billfold's own needs none; anyone else is refused.
      policy.checkPreflight(req);
      res.status(204).end();
      return;
    }
    policy.check(req);
    // No route of billfold's takes OPTIONS, and it is not a relay method.
    if (req.method === 'OPTIONS') throw new AppError('method_not_allowed');
    continueIfExpected(req, res);
    next();
  });
  app.use(
    '/auth',
    (req, _res, next) => {
      refuseOversizedBody(req, config.bodyLimitBytes);
      next();
    },
    requireJsonBody,
    // The same limit, counted while reading a body whose length was not declared.
    express.json({ limit: config.bodyLimitBytes, strict: true }),
    createSessionMiddleware(config, deps.store),
    createSessionRouter(deps),
    createInventoryRouter(deps),
    ...createProviderRouters({ ...deps, renewer }),
    createAuthRouter({ ...deps, renewer }),
  );
  if (!config.production) {
    app.use(express.static(PUBLIC_DIR, { index: 'index.html' }));
    app.use('/client', express.static(CLIENT_DIR));
  }
  app.use(() => {
    throw new AppError('not_found');
  });
  app.use(createErrorHandler(logger, readRefused));

  return (req: IncomingMessage, res: ServerResponse) => {
    const context = beginRequest(req, res, logger, metrics.observeRequest, trust);
    const url = req.url ?? '';
    // A relayed answer gets its headers in the relay's one `writeHead` (or here, if it fails first);
    // every other answer gets them now, before anything else is set.
    const relayed = url.startsWith('/api/') && req.method !== 'OPTIONS';
    if (!relayed) securityHeaders.write(req, res, context.id);
    const fail = (error: unknown) => {
      if (relayed && !res.headersSent) securityHeaders.write(req, res, context.id);
      sendError(res, error, context, logger, readRefused);
    };
    if (hasUnmetExpectation(req)) {
      fail(new AppError('expectation_failed'));
      return;
    }
    // An absolute-form request line (`GET http://host/...`) names no path of billfold's.
    if (!url.startsWith('/')) {
      fail(new AppError('invalid_path'));
      return;
    }
    const pathname = url.split('?', 1)[0] ?? '';
    if (config.production && !PROBES.has(pathname) && !isSecureRequest(req, trust)) {
      fail(new AppError('https_required'));
      return;
    }
    if (relayed) {
      relay(req, res, context).catch(fail);
      return;
    }
    // The relay checks its query after its path; every other route checks it here, before anything.
    try {
      checkTargetQuery(url);
    } catch (error) {
      fail(error);
      return;
    }
    if (metricsHere && pathname === '/metrics') {
      metricsHere(req, res, context);
      return;
    }
    app(req as express.Request, res as express.Response);
  };
}

/**
 * What every server billfold listens with is created with: a request without Host reaches
 * `serveBillfold`, which answers it in the documented shape, where Node would answer it bare.
 */
export const SERVER_OPTIONS = { requireHostHeader: false } as const;

/**
 * Serves `handler` on `server` (created with `SERVER_OPTIONS`) as billfold answers HTTP:
 * `Expect: 100-continue` is answered by billfold once its checks pass (any other `Expect` gets 417
 * in the error shape), and a request Node's parser refuses is answered only after the answers
 * already in progress on that connection, so a malformed request pipelined behind a slow one never
 * takes its place.
 */
export function serveBillfold(server: Server | HttpsServer, handler: RequestListener, logger: Logger): void {
  // The answers still open on each connection; one listener shared by all forgets each as it closes.
  const answering = new WeakMap<Duplex, Set<ServerResponse>>();
  function forget(this: ServerResponse) {
    answering.get(this.req.socket)?.delete(this);
  }
  const refusals = createEdgeRefusals(logger);
  const track: RequestListener = (req, res) => {
    let open = answering.get(req.socket);
    if (!open) answering.set(req.socket, (open = new Set()));
    open.add(res);
    res.once('close', forget);
    if (!refusals.lacksHost(req, res)) handler(req, res);
  };
  server.on('request', track);
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    markAwaitingContinue(req);
    track(req, res);
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    markUnmetExpectation(req);
    track(req, res);
  });
  server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
    const open = [...(answering.get(socket) ?? [])];
    // A request whose own body is malformed is refused at once (closing the connection cancels it);
    // one pipelined behind complete requests waits for their answers, in order.
    if (open.length === 0 || open.some(({ req }) => !req.complete)) refusals.parserError(error, socket);
    else
      void Promise.all(open.map((res) => new Promise((resolve) => res.once('close', resolve)))).then(() =>
        refusals.parserError(error, socket),
      );
  });
}

/**
 * Answers, in the documented error shape with helmet's headers (HSTS included), and then closes the
 * connection: a request Node's HTTP parser refused before billfold saw it (a malformed request line
 * or header, Transfer-Encoding with Content-Length, headers past the size limit), and an HTTP/1.1
 * request without the Host header it must carry (RFC 9112), which Node would otherwise answer bare.
 */
export function createEdgeRefusals(logger: Logger) {
  const fixed = createSecurityHeaders().fixed;
  const refusal = (message: string, clientAddress: string | undefined, code?: string) => {
    const requestId = randomUUID();
    logger.warn({ requestId, code, clientAddress }, 'refused a request that is not valid HTTP');
    const body = JSON.stringify({ error: { code: 'invalid_request', message, requestId } });
    const headers: (readonly [string, string])[] = [
      ...fixed,
      ['vary', 'Origin'],
      ['content-type', 'application/json; charset=utf-8'],
      ['x-request-id', requestId],
      [BILLFOLD_ERROR_HEADER, 'invalid_request'],
      ['connection', 'close'],
      ['content-length', String(Buffer.byteLength(body))],
    ];
    return { headers, body };
  };
  return {
    parserError(error: Error & { code?: string }, socket: Duplex): void {
      if (error.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
      const { headers, body } = refusal(
        tooLarge ? 'The request headers are too large.' : 'The request is not valid HTTP.',
        (socket as Duplex & { remoteAddress?: string }).remoteAddress,
        error.code,
      );
      const head = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
      socket.end(
        `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n${head}\r\n${body}`,
      );
    },
    /** Answers `req` and returns true when it is HTTP/1.1 without a Host header. */
    lacksHost(req: IncomingMessage, res: ServerResponse): boolean {
      if (req.headers.host !== undefined || req.httpVersion !== '1.1') return false;
      const { headers, body } = refusal(
        'An HTTP/1.1 request must carry a Host header.',
        req.socket.remoteAddress,
      );
      res.writeHead(400, headers.flat());
      res.end(body);
      return true;
    },
  };
}
