import type { Clock } from '../../src/clock.js';
import type { EncryptionKey } from '../../src/config.js';
import { createMemoryBackend, type MemoryBackend } from '../../src/session/memory-backend.js';
import { MemorySessionStore } from '../../src/session/memory-session-store.js';
import { createRedisBackend } from '../../src/session/redis-backend.js';
import { createRedisConnection } from '../../src/session/redis-connection.js';
import { RedisSessionStore, type RedisSessionStoreOptions } from '../../src/session/redis-session-store.js';
import { createSessionCodec } from '../../src/session/session-codec.js';
import type { SessionLimits } from '../../src/session/session-record.js';
import type { SessionStore } from '../../src/session/session-store.js';
import { createStoreKeyNames } from '../../src/session/store-key-names.js';
import { REDIS_URL, uniquePrefix } from './redis.js';
import { TEST_SECRETS, testConfig } from './test-config.js';

/** The limits most store tests use: billfold's defaults (SESSION_IDLE_TIMEOUT_S, SESSION_ABSOLUTE_TIMEOUT_S). */
export const TEST_LIMITS: SessionLimits = { idleTimeoutMs: 30 * 60_000, absoluteTimeoutMs: 12 * 3_600_000 };

/** What a store is built with in a test; everything has a default. */
export interface TestStoreOptions {
  clock: Clock;
  limits?: SessionLimits;
  timeoutMs?: number;
  encryptionKeys?: readonly EncryptionKey[];
  onStoreError?: (error: unknown) => void;
  /** Told of every store call the repository makes, by operation. */
  onStoreCall?: (operation: string, seconds: number) => void;
}

const commonOptions = (options: TestStoreOptions) => ({
  codec: createSessionCodec(options.encryptionKeys ?? testConfig().session.encryptionKeys),
  clock: options.clock,
  limits: options.limits ?? TEST_LIMITS,
  timeoutMs: options.timeoutMs ?? 1000,
  cookie: { path: '/', httpOnly: true },
  keyNames: createStoreKeyNames([TEST_SECRETS.SESSION_SECRETS]),
  onStoreError: options.onStoreError ?? (() => undefined),
  ...(options.onStoreCall && { onStoreCall: options.onStoreCall }),
});

/** The embedded store, over `backend` when given. */
export function createTestMemoryStore(
  options: TestStoreOptions & { backend?: MemoryBackend },
): MemorySessionStore & { close(): Promise<void> } {
  const backend =
    options.backend ?? createMemoryBackend({ clock: options.clock, maxEntries: 1000, sweepIntervalMs: 0 });
  return Object.assign(new MemorySessionStore({ ...commonOptions(options), backend }), {
    close: () => backend.close(),
  });
}

/** The connect-redis store on one Redis (REDIS_URL unless `url`) or on a cluster's nodes, under its own prefix. */
export function createTestRedisStore(
  options: TestStoreOptions & {
    url?: string;
    clusterNodes?: readonly string[];
    prefix?: string;
    /** A subclass to build instead (a test breaking one guarantee on purpose). */
    build?: (storeOptions: RedisSessionStoreOptions) => RedisSessionStore;
  },
): RedisSessionStore & { prefix: string; close(): Promise<void> } {
  const timeoutMs = options.timeoutMs ?? 1000;
  const connection = createRedisConnection({
    ...(options.clusterNodes ? { clusterNodes: options.clusterNodes } : { url: options.url ?? REDIS_URL }),
    timeoutMs,
    onError: () => undefined,
  });
  const keyPrefix = options.prefix ?? uniquePrefix();
  const backend = createRedisBackend({ connection, keyPrefix, timeoutMs });
  const storeOptions = { ...commonOptions(options), backend, connection, keyPrefix };
  const store = options.build?.(storeOptions) ?? new RedisSessionStore(storeOptions);
  return Object.assign(store, { close: () => connection.close() });
}

/** Any test store, for suites that run on each. */
export type TestStore = SessionStore & { close(): Promise<void> };
