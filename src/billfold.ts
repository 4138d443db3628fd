import type { RequestListener } from 'node:http';
import { createApp } from './app.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { observeAudits, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createSecurityHeaders } from './middleware/security-headers.js';
import { createAdminRoute } from './routes/admin-routes.js';
import { createMetricsRoute } from './routes/metrics-route.js';
import { createOperatorListener } from './routes/operator-listener.js';
import { createMemoryBackend } from './session/memory-backend.js';
import { createRedisBackend } from './session/redis-backend.js';
import type { SessionBackend } from './session/session-backend.js';
import { createSessionCodec } from './session/session-codec.js';
import { createSessionHandles } from './session/session-inventory.js';
import { createSessionRepository, type SessionRepository } from './session/session-repository.js';
import { createStoreKeyNames } from './session/store-key-names.js';
import { createAdapters } from './upstream/adapter-registry.js';
import { createUpstreamClient } from './upstream/upstream-client.js';

/** A billfold instance, assembled but not listening. */
export interface Billfold {
  handler: RequestListener;
  /** The operator API, for `main.ts` to serve on ADMIN_PORT; present only when ADMIN_PORT and ADMIN_TOKEN are set. */
  adminHandler: RequestListener | undefined;
  /** `GET /metrics`, for `main.ts` to serve on METRICS_PORT; present only when it is set. */
  metricsHandler: RequestListener | undefined;
  repository: SessionRepository;
  metrics: Metrics;
  /** Closes the upstream pool and the store connection. */
  close(): Promise<void>;
}

/** Builds the session store the configuration names. */
export function createBackend(config: Config, clock: Clock, logger: Logger): SessionBackend {
  if (config.store.kind === 'memory') {
    return createMemoryBackend({ clock, maxEntries: config.store.memoryMaxSessions });
  }
  let lastWarned = 0;
  return createRedisBackend({
    url: config.store.redisUrl,
    clusterNodes: config.store.redisClusterNodes,
    keyPrefix: config.store.keyPrefix,
    timeoutMs: config.store.timeoutMs,
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
}

/** Assembles every part from the configuration; `main.ts` listens, tests call the handler directly. */
export function createBillfold(
  config: Config,
  options: { clock: Clock; logger: Logger; backend?: SessionBackend },
): Billfold {
  const { clock } = options;
  const metrics = createMetrics();
  const logger = observeAudits(options.logger, metrics.observeAudit);
  const backend = options.backend ?? createBackend(config, clock, logger);
  const keyNames = createStoreKeyNames(config.session.secrets);
  const repository = createSessionRepository({
    keyNames,
    backend,
    codec: createSessionCodec(config.session.encryptionKeys),
    clock,
    limits: config.session,
    timeoutMs: config.store.timeoutMs,
    onStoreError: (error) => {
      metrics.countStoreError();
      logger.warn(
        { message: error instanceof Error ? error.message : String(error) },
        'session store operation failed',
      );
    },
    onStoreCall: metrics.observeStoreCall,
  });
  metrics.countSessionsWith(() => repository.index.countSessions());
  const client = createUpstreamClient({
    timeoutMs: config.upstreamTimeoutMs,
    onResponse: metrics.observeUpstream,
  });
  const adapters = createAdapters(config, client, clock);
  const securityHeaders = createSecurityHeaders();
  const handleOf = createSessionHandles(config.session.secrets[0] ?? '');
  const deps = {
    config,
    clock,
    logger,
    repository,
    adapters,
    client,
    metrics,
    securityHeaders,
    handleOf,
    keyNames,
  };
  const operatorPort = { logger, securityHeaders, observe: metrics.observeRequest };
  return {
    handler: createApp(deps),
    adminHandler:
      config.admin &&
      createOperatorListener({ ...operatorPort, token: config.admin.token, route: createAdminRoute(deps) }),
    metricsHandler:
      config.metrics.port === undefined
        ? undefined
        : createOperatorListener({
            ...operatorPort,
            token: config.metrics.token,
            route: createMetricsRoute(metrics),
          }),
    repository,
    metrics,
    async close() {
      await Promise.allSettled([client.close(), backend.close()]);
    },
  };
}
