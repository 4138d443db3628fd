import type { RequestListener } from 'node:http';
import { createApp } from './app.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { createMemoryBackend } from './session/memory-backend.js';
import { createRedisBackend } from './session/redis-backend.js';
import type { SessionBackend } from './session/session-backend.js';
import { createSessionCodec } from './session/session-codec.js';
import { createSessionRepository, type SessionRepository } from './session/session-repository.js';
import { createAdapters } from './upstream/adapter-registry.js';
import { createUpstreamClient } from './upstream/upstream-client.js';

/** A billfold instance, assembled but not listening. */
export interface Billfold {
  handler: RequestListener;
  repository: SessionRepository;
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
  const { clock, logger } = options;
  const backend = options.backend ?? createBackend(config, clock, logger);
  const repository = createSessionRepository({
    backend,
    codec: createSessionCodec(config.session.encryptionKeys),
    clock,
    limits: config.session,
    timeoutMs: config.store.timeoutMs,
    onStoreError: (error) =>
      logger.warn(
        { message: error instanceof Error ? error.message : String(error) },
        'session store operation failed',
      ),
  });
  const client = createUpstreamClient({ timeoutMs: config.upstreamTimeoutMs });
  const adapters = createAdapters(config, client, clock);
  const handler = createApp({ config, clock, logger, repository, adapters, client });
  return {
    handler,
    repository,
    async close() {
      await Promise.allSettled([client.close(), backend.close()]);
    },
  };
}
