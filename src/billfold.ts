import type { RequestListener } from 'node:http';
import { createApp } from './app.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { observeAudits, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { guardListener } from './middleware/error-boundary.js';
import { traceRequests } from './middleware/request-tracing.js';
import { createOperatorAuthLimiter } from './middleware/operator-auth-limiter.js';
import { compileTrust, createCors } from './middleware/request-guards.js';
import { createSecurityHeaders } from './middleware/security-headers.js';
import { createAdminRoute } from './routes/admin-routes.js';
import { createMetricsRoute } from './routes/metrics-route.js';
import { createOperatorListener } from './routes/operator-listener.js';
import { sessionCookieOptions } from './middleware/session-middleware.js';
import { createMemoryBackend, type MemoryBackend } from './session/memory-backend.js';
import { MemorySessionStore } from './session/memory-session-store.js';
import { createRedisBackend } from './session/redis-backend.js';
import { createRedisConnection } from './session/redis-connection.js';
import { RedisSessionStore } from './session/redis-session-store.js';
import { createSessionCodec } from './session/session-codec.js';
import { createSessionHandles } from './session/session-inventory.js';
import type { SessionRepository } from './session/session-repository.js';
import type { SessionStore, SessionStoreOptions } from './session/session-store.js';
import { createStoreKeyNames } from './session/store-key-names.js';
import type { ProviderModule } from './upstream/provider-module.js';
import { createAdapters, PROVIDER_MODULES } from './upstream/provider-modules.js';
import { createUpstreamClient } from './upstream/upstream-client.js';

/** A billfold instance, assembled but not listening. */
export interface Billfold {
  handler: RequestListener;
  /** The operator API, for `main.ts` to serve on ADMIN_PORT; present only when ADMIN_PORT and ADMIN_TOKEN are set. */
  adminHandler: RequestListener | undefined;
  /** `GET /metrics`, for `main.ts` to serve on METRICS_PORT; present only when it is set. */
  metricsHandler: RequestListener | undefined;
  /** The express-session store the /auth routes use; its repository is what the relay reads. */
  store: SessionStore;
  repository: SessionRepository;
  metrics: Metrics;
  /** Closes the upstream pool and the store connection. */
  close(): Promise<void>;
}

/** What the session store is built with, besides where its records live. */
export interface StoreChoice {
  /** The embedded store's entries, in place of a fresh one (tests pass one that fails on cue). */
  backend?: MemoryBackend;
  /** Builds the Redis store, in place of RedisSessionStore itself (tests pass a subclass). */
  redisStore?: (options: ConstructorParameters<typeof RedisSessionStore>[0]) => RedisSessionStore;
}

/** Builds the session store the configuration names. */
export function createSessionStore(
  config: Config,
  logger: Logger,
  options: SessionStoreOptions extends infer T ? Omit<T, 'backend'> : never,
  choice: StoreChoice = {},
): SessionStore {
  if (config.store.kind === 'memory') {
    const backend =
      choice.backend ??
      createMemoryBackend({ clock: options.clock, maxEntries: config.store.memoryMaxSessions });
    return new MemorySessionStore({ ...options, backend });
  }
  let lastWarned = 0;
  const connection = createRedisConnection({
    url: config.store.redisUrl,
    clusterNodes: config.store.redisClusterNodes,
    ...config.store.redis,
    timeoutMs: config.store.timeoutMs,
    sessionCache:
      config.store.sessionCacheEntries === undefined
        ? undefined
        : { keyPrefix: `${config.store.keyPrefix}s:`, maxEntries: config.store.sessionCacheEntries },
    onError: (error) => {
      // The client retries on its own; one line every few seconds is enough to see an outage.
      const now = Date.now();
      if (now - lastWarned < 5000) return;
      lastWarned = now;
      logger.warn(
        { code: (error as { code?: string }).code, message: error.message },
        'session store connection error',
      );
    },
  });
  const { keyPrefix, timeoutMs } = config.store;
  const backend = createRedisBackend({ connection, keyPrefix, timeoutMs });
  const build = choice.redisStore ?? ((storeOptions) => new RedisSessionStore(storeOptions));
  return build({ ...options, backend, connection, keyPrefix });
}

/** Assembles every part from the configuration; `main.ts` listens, tests call the handler directly. */
export function createBillfold(
  config: Config,
  options: {
    clock: Clock;
    logger: Logger;
    /** The provider modules to serve (the built-in ones unless given; tests add their own). */
    modules?: readonly ProviderModule[];
  } & StoreChoice,
): Billfold {
  const { clock, modules = PROVIDER_MODULES } = options;
  const metrics = createMetrics();
  const logger = observeAudits(options.logger, metrics.observeAudit);
  const keyNames = createStoreKeyNames(config.session.secrets);
  const store = createSessionStore(
    config,
    logger,
    {
      keyNames,
      codec: createSessionCodec(config.session.encryptionKeys),
      clock,
      limits: config.session,
      timeoutMs: config.store.timeoutMs,
      cookie: sessionCookieOptions(config),
      onStoreError: (error) => {
        metrics.countStoreError();
        logger.warn(
          { message: error instanceof Error ? error.message : String(error) },
          'session store operation failed',
        );
      },
      onStoreCall: metrics.observeStoreCall,
    },
    options,
  );
  const { repository } = store;
  metrics.countSessionsWith(() => repository.index.countSessions());
  const client = createUpstreamClient({
    timeoutMs: config.upstreamTimeoutMs,
    onResponse: metrics.observeUpstream,
  });
  const adapters = createAdapters(config, client, clock, modules);
  const securityHeaders = createSecurityHeaders({ cors: createCors(config.corsOrigins) });
  const handleOf = createSessionHandles(config.session.secrets[0] ?? '');
  // One count of wrong operator tokens per address, whichever port (or /metrics on the main one) they hit.
  const operatorAuthLimiter = createOperatorAuthLimiter(config.operatorAuth, clock);
  const deps = {
    config,
    clock,
    logger,
    store,
    repository,
    modules,
    adapters,
    client,
    metrics,
    securityHeaders,
    handleOf,
    operatorAuthLimiter,
    keyNames,
  };
  const operatorPort = {
    logger,
    securityHeaders: createSecurityHeaders(),
    observe: metrics.observeRequest,
    trust: compileTrust(config.trustProxy),
    limiter: operatorAuthLimiter,
  };
  // Every listener is guarded: nothing a client sends can throw out of a request handler.
  return {
    handler: guardListener(traceRequests(createApp(deps)), logger),
    adminHandler:
      config.admin &&
      guardListener(
        traceRequests(
          createOperatorListener({
            ...operatorPort,
            token: config.admin.token,
            route: createAdminRoute(deps),
          }),
        ),
        logger,
      ),
    metricsHandler:
      config.metrics.port === undefined
        ? undefined
        : guardListener(
            traceRequests(
              createOperatorListener({
                ...operatorPort,
                token: config.metrics.token,
                route: createMetricsRoute(metrics),
              }),
            ),
            logger,
          ),
    store,
    repository,
    metrics,
    async close() {
      await Promise.allSettled([client.close(), repository.backend.close()]);
    },
  };
}
