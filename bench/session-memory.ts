// Store memory per session at scale: 100,000 sessions with one provider (BillingPlatform) connected,
// sealed exactly as billfold seals them, held by the embedded store and by Redis.
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { createSessionStore } from '../src/billfold.js';
import { systemClock } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { createMemoryBackend } from '../src/session/memory-backend.js';
import { createSessionCodec } from '../src/session/session-codec.js';
import { createStoreKeyNames } from '../src/session/store-key-names.js';

/** Bytes per session in each store, after writing `count` sessions. */
export async function measureSessionMemory(count: number, redisUrl: string) {
  const prefix = `billfold-memory:${process.pid}:`;
  const configOf = (env: Record<string, string>) =>
    loadConfig({ SESSION_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 5).toString('base64url')}`, ...env }).config;
  const storeOf = (config: ReturnType<typeof configOf>, backend?: ReturnType<typeof createMemoryBackend>) =>
    createSessionStore(
      config,
      createLogger('silent'),
      {
        codec: createSessionCodec(config.session.encryptionKeys),
        clock: systemClock,
        limits: config.session,
        timeoutMs: 5000,
        cookie: {},
        keyNames: createStoreKeyNames(config.session.secrets),
        onStoreError: () => undefined,
      },
      backend ? { backend } : {},
    );
  const fill = async ({ repository }: ReturnType<typeof storeOf>) => {
    const now = Date.now();
    for (let i = 0; i < count; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, count - i) }, () =>
          repository.create(randomBytes(24).toString('base64url'), {
            createdAt: now,
            lastSeenAt: now,
            device: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15',
            providers: {
              billingplatform: {
                sessionId: randomBytes(24).toString('base64url'),
                user: 'someone@example.com',
                connectedAt: now,
              },
            },
          }),
        ),
      );
    }
  };

  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const memory = createMemoryBackend({ clock: systemClock, maxEntries: count + 1, sweepIntervalMs: 0 });
  await fill(storeOf(configOf({ SESSION_STORE: 'memory' }), memory));
  global.gc?.();
  const embeddedBytes = (process.memoryUsage().heapUsed - heapBefore) / count;
  await memory.close();

  const redis = createClient({ url: redisUrl });
  await redis.connect();
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  const redisBefore = await usedMemory();
  const store = storeOf(configOf({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix }));
  await fill(store);
  const redisBytes = ((await usedMemory()) - redisBefore) / count;
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 }))
    if (keys.length > 0) await redis.del(keys);
  await store.repository.backend.close();
  redis.destroy();
  return {
    sessions: count,
    embeddedBytesPerSession: Math.round(embeddedBytes),
    redisBytesPerSession: Math.round(redisBytes),
  };
}
