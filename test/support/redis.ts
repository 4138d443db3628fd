import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { afterAll, beforeAll } from 'vitest';

/** The Redis server the tests use (CI starts one on the default port). */
export const REDIS_URL = 'redis://127.0.0.1:6379';

/** A key prefix no other test shares, so suites can run side by side on one server. */
export function uniquePrefix(): string {
  return `billfold-test:${randomUUID().slice(0, 8)}:`;
}

/** A plain Redis client for reading what billfold wrote. */
export async function connectRedis(url = REDIS_URL) {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

type RedisClient = Awaited<ReturnType<typeof connectRedis>>;

/** A plain client and the commands naming a prefix that any client sent, as `useRedisWatch` keeps them. */
export interface RedisWatch {
  redis: RedisClient;
  monitored: string[];
}

/**
 * For a suite: a plain client for reading what billfold wrote, and every command any client sends
 * Redis that names `prefix`, watched from before the suite's tests (register it before the stack,
 * and it watches until after the stack has stopped: vitest runs after-hooks last-registered first).
 */
export function useRedisWatch(prefix: string): RedisWatch {
  // Filled in by `beforeAll`: tests read it as connected.
  const watch = { monitored: [] } as unknown as RedisWatch;
  let monitor: RedisClient | undefined;
  beforeAll(async () => {
    watch.redis = await connectRedis();
    monitor = await connectRedis();
    await monitor.monitor((line: string) => {
      if (line.includes(prefix)) watch.monitored.push(line);
    });
  });
  afterAll(() => {
    monitor?.destroy();
    watch.redis.destroy();
  });
  return watch;
}
