// Store memory per session at scale: 100,000 sessions with one provider (BillingPlatform) connected,
// sealed exactly as billfold seals them, held by the embedded store and by Redis.
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { systemClock } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { createMemoryBackend } from '../src/session/memory-backend.js';
import { createRedisBackend } from '../src/session/redis-backend.js';
import type { SessionBackend } from '../src/session/session-backend.js';
import { createSessionCodec } from '../src/session/session-codec.js';
import { createSessionRepository } from '../src/session/session-repository.js';
import { createStoreKeyNames } from '../src/session/store-key-names.js';

/** Bytes per session in each store, after writing `count` sessions. */
export async function measureSessionMemory(count: number, redisUrl: string) {
  const { config } = loadConfig({
    SESSION_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 5).toString('base64url')}`,
  });
  const codec = createSessionCodec(config.session.encryptionKeys);
  const fill = async (backend: SessionBackend) => {
    const repository = createSessionRepository({
      keyNames: createStoreKeyNames(['bench-signing-secret-0123456789abcdefghijkl']),
      backend,
      codec,
      clock: systemClock,
      limits: config.session,
      timeoutMs: 5000,
      onStoreError: () => undefined,
    });
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
  await fill(memory);
  global.gc?.();
  const embeddedBytes = (process.memoryUsage().heapUsed - heapBefore) / count;
  await memory.close();

  const prefix = `billfold-memory:${process.pid}:`;
  const redis = createClient({ url: redisUrl });
  await redis.connect();
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  const redisBefore = await usedMemory();
  const backend = createRedisBackend({
    url: redisUrl,
    keyPrefix: prefix,
    timeoutMs: 5000,
    onError: () => undefined,
  });
  await fill(backend);
  const redisBytes = ((await usedMemory()) - redisBefore) / count;
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 }))
    if (keys.length > 0) await redis.del(keys);
  await backend.close();
  redis.destroy();
  return {
    sessions: count,
    embeddedBytesPerSession: Math.round(embeddedBytes),
    redisBytesPerSession: Math.round(redisBytes),
  };
}
