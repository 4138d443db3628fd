import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';

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
