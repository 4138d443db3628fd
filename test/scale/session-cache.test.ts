import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { startOwnRedisCluster, type OwnRedisCluster } from '../support/redis-cluster.js';
import { startOwnRedis, type OwnRedis } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { createTestClock } from '../support/test-clock.js';
import { eventually, outcomeOf, sessionIdOf, sleep } from './scale-support.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdefghijklmnopqrstuvwxyz';
const ACCOUNT = '/api/billingplatform/ACCOUNT/1001';
// Generous: revocation reaches the other instances within milliseconds; this only has to tell "soon"
// from "never" (a cache nobody invalidates serves the record forever).
const REFUSED_WITHIN_MS = 3000;

// Several sessions of one user from one address: no login limit is under test.
const LOGINS = { LOGIN_MAX_SUCCESSES_PER_IP: '1000000', MAX_SESSIONS_PER_IDENTITY: '10000' };

type Redis = Awaited<ReturnType<typeof connect>>;

async function connect(url: string) {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * A redis-server of the suite's own, started before its stack and disposed of after it (its
 * command counts and client list are the suite's alone), with a plain client watching it.
 */
function useOwnRedis() {
  const own = {} as { redis: OwnRedis; watcher: Redis };
  beforeAll(async () => {
    own.redis = await startOwnRedis();
    own.watcher = await connect(own.redis.url);
  }, 60_000);
  afterAll(async () => {
    own.watcher.destroy();
    await own.redis.dispose();
  });
  return own;
}

/** How many times Redis has run `command` since it started. */
async function calls(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

/** The connections that have CLIENT TRACKING on. */
async function trackingClients(redis: Redis) {
  const list = await redis.clientList();
  return list.filter((client) => client.flags.includes('t'));
}

const on = (instance: RunningBillfold, cookie: string | undefined) => {
  const client = createCookieClient(instance.url, instance.config.session.cookieName);
  client.cookie = cookie;
  return client;
};

const relayOn = async (instance: RunningBillfold, cookie: string | undefined) =>
  outcomeOf(await on(instance, cookie).get(ACCOUNT));

async function signIn(instance: RunningBillfold): Promise<string> {
  const client = on(instance, undefined);
  expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
  return client.cookie!;
}

/** Relays on every instance until each has the record in its cache. */
async function warm(instances: readonly RunningBillfold[], cookie: string) {
  for (const instance of instances) {
    expect(await relayOn(instance, cookie)).toBe('200');
    expect(await relayOn(instance, cookie)).toBe('200');
  }
}

/** How many records `instance` holds in its session cache. */
const cachedOn = (instance: RunningBillfold) =>
  (
    instance.billfold.store as unknown as { connection: { sessionCache: { size(): number } } }
  ).connection.sessionCache.size();

/**
 * Waits until `instance` has dropped a record from its cache without being asked (only Redis's
 * invalidation can do that), then expects its next answer to be `refusal`.
 */
async function refusedOn(instance: RunningBillfold, cookie: string, held: number, refusal: string) {
  await eventually(
    `an invalidation on ${instance.url}`,
    () => Promise.resolve(cachedOn(instance) < held || undefined),
    { timeoutMs: REFUSED_WITHIN_MS, intervalMs: 10 },
  );
  expect(await relayOn(instance, cookie)).toBe(refusal);
}

/** Relays on `instance` until it refuses, failing if it ever serves the session meanwhile. */
async function refusedAfterOutage(instance: RunningBillfold, cookie: string) {
  await eventually(
    `a refusal from ${instance.url}`,
    async () => {
      const outcome = await relayOn(instance, cookie);
      if (outcome === '401 unauthenticated') return outcome;
      expect(outcome, 'a revoked session was served').toBe('503 session_store_unavailable');
      return undefined;
    },
    { timeoutMs: REFUSED_WITHIN_MS, intervalMs: 20 },
  );
}

describe('the session cache, three instances on one Redis', () => {
  const own = useOwnRedis();
  const clock = createTestClock(Date.now());
  const stack = useStack(() => ({
    instances: 3,
    store: { url: own.redis.url },
    env: { ...LOGINS, ADMIN_PORT: '0', ADMIN_TOKEN },
    clock,
  }));

  it('relays in steady state without reading Redis, on every instance', async () => {
    const cookie = await signIn(stack.instances[0]!);
    await warm(stack.instances, cookie);
    const before = await calls(own.watcher, 'get');
    for (let round = 0; round < 10; round++)
      for (const instance of stack.instances) expect(await relayOn(instance, cookie)).toBe('200');
    expect(await calls(own.watcher, 'get')).toBe(before);
    // One tracking connection per instance, nothing more.
    expect((await trackingClients(own.watcher)).length).toBe(3);
  });

  it('refuses the cookie on the instance that logged it out at once, and on the two others', async () => {
    const cookie = await signIn(stack.instances[0]!);
    await warm(stack.instances, cookie);
    const held = stack.instances.map(cachedOn);
    expect((await on(stack.instances[0]!, cookie).post('/auth/logout')).status).toBe(204);
    // Redis does not tell the connection that wrote: the instance itself forgets what it changed.
    expect(await relayOn(stack.instances[0]!, cookie)).toBe('401 unauthenticated');
    for (const i of [1, 2]) await refusedOn(stack.instances[i]!, cookie, held[i]!, '401 unauthenticated');
  });

  it('honours an operator revocation on the two others', async () => {
    const cookie = await signIn(stack.instances[0]!);
    await warm(stack.instances, cookie);
    const held = stack.instances.map(cachedOn);
    const revoked = await fetch(
      `${stack.instances[2]!.adminUrl!}/admin/sessions?provider=billingplatform&user=${demo.billingplatform.username}`,
      { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
    );
    expect(revoked.status).toBe(200);
    for (const i of [0, 1]) await refusedOn(stack.instances[i]!, cookie, held[i]!, '401 unauthenticated');
  });

  it('honours a provider disconnect on the two others, and keeps the rest of the session', async () => {
    const client = on(stack.instances[1]!, undefined);
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    expect((await client.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    const cookie = client.cookie!;
    await warm(stack.instances, cookie);
    const held = stack.instances.map(cachedOn);
    expect((await on(stack.instances[1]!, cookie).post('/auth/billingplatform/logout')).status).toBe(200);
    for (const i of [0, 2]) {
      await refusedOn(stack.instances[i]!, cookie, held[i]!, '401 provider_not_connected');
      expect(outcomeOf(await on(stack.instances[i]!, cookie).get('/api/billogram/customer'))).toBe('200');
    }
  });

  it('ends an idle session on every instance on time, cached or not', async () => {
    const cookie = await signIn(stack.instances[0]!);
    await warm(stack.instances, cookie);
    clock.advance(stack.instances[0]!.config.session.idleTimeoutMs + 1000);
    for (const instance of stack.instances)
      expect(await relayOn(instance, cookie)).toBe('401 unauthenticated');
  });
});

describe('the session cache when its tracking connection goes away', () => {
  const own = useOwnRedis();
  let proxy: TcpProxy;
  const stack = useStack(() => ({
    instances: 0,
    store: { url: own.redis.url },
    env: { STORE_TIMEOUT_MS: '300' },
  }));
  // `cached` reaches Redis through a proxy the test can cut; `writer` directly.
  let cached: RunningBillfold;
  let writer: RunningBillfold;

  beforeAll(async () => {
    proxy = await startTcpProxy(own.redis.port);
  });
  // Fresh instances per test: the proxy carries the connections of this test's `cached` only.
  beforeEach(async () => {
    [cached, writer] = await Promise.all([stack.start({ REDIS_URL: proxy.url }), stack.start()]);
  });
  afterEach(async () => {
    proxy.restore();
    await Promise.all([cached.close(), writer.close()]);
  });
  afterAll(() => proxy.close());

  it('drops the cache on CLIENT KILL, so a revocation Redis could not tell it about is honoured', async () => {
    const cookie = await signIn(writer);
    await warm([cached], cookie);
    expect(cachedOn(cached)).toBe(1);
    const [connection] = proxy.upstreamAddresses();
    if (!connection) throw new Error('no connection through the proxy');
    const key = `${writer.config.store.keyPrefix}s:${sessionIdOf(cookie)}`;
    // The kill and the delete in one step: the killed connection is gone before the delete, so no
    // invalidation for it is ever sent.
    const [killed, deleted] = await own.watcher
      .multi()
      .clientKill({ filter: 'ADDR', address: connection })
      .getDel(key)
      .exec();
    expect(killed).toBe(1);
    expect(deleted).not.toBeNull();
    await refusedAfterOutage(cached, cookie);
  });

  it('serves nothing while cut off, and honours a logout made meanwhile once it is back', async () => {
    const cookie = await signIn(writer);
    await warm([cached], cookie);
    proxy.cut();
    await eventually('the cache dropped', () => Promise.resolve(cachedOn(cached) === 0 || undefined));
    expect(await relayOn(cached, cookie)).toBe('503 session_store_unavailable');
    expect((await on(writer, cookie).post('/auth/logout')).status).toBe(204);
    await sleep(200);
    expect(await relayOn(cached, cookie)).toBe('503 session_store_unavailable');
    proxy.restore();
    await refusedAfterOutage(cached, cookie);
  });

  it('drops the cache when Redis restarts, so a record lost with it is not served', async () => {
    const cookie = await signIn(writer);
    await warm([cached], cookie);
    // No append-only file: the session dies with the process.
    await own.redis.kill();
    await own.redis.start();
    await refusedAfterOutage(cached, cookie);
    const restarted = await connect(own.redis.url);
    // After the restart the record is read from Redis again, not from the cache.
    expect(await calls(restarted, 'get')).toBeGreaterThan(0);
    restarted.destroy();
    own.watcher.destroy();
    own.watcher = await connect(own.redis.url);
  });
});

describe('the session cache on Redis Cluster', () => {
  let cluster: OwnRedisCluster;
  beforeAll(async () => {
    cluster = await startOwnRedisCluster();
  }, 60_000);
  afterAll(() => cluster.dispose());
  const stack = useStack(() => ({ instances: 2, store: { clusterNodes: cluster.nodes }, env: LOGINS }));

  it('tracks every node, and a logout on one instance is refused on the other', async () => {
    const cookies: string[] = [];
    // One at a time: a login burst of one user is refused by design.
    for (let i = 0; i < 6; i++) cookies.push(await signIn(stack.instances[0]!));
    for (const cookie of cookies) await warm(stack.instances, cookie);
    for (const node of cluster.nodes) {
      const client = await connect(node);
      expect((await trackingClients(client)).length).toBeGreaterThanOrEqual(2);
      client.destroy();
    }
    for (const cookie of cookies) {
      const held = cachedOn(stack.instances[0]!);
      expect((await on(stack.instances[1]!, cookie).post('/auth/logout')).status).toBe(204);
      await refusedOn(stack.instances[0]!, cookie, held, '401 unauthenticated');
    }
  });
});

describe('SESSION_CACHE=off', () => {
  const own = useOwnRedis();
  const stack = useStack(() => ({ store: { url: own.redis.url }, env: { SESSION_CACHE: 'off' } }));

  it('reads the record from Redis on every relayed request and tracks nothing', async () => {
    const cookie = await signIn(stack.billfold);
    await warm([stack.billfold], cookie);
    const before = await calls(own.watcher, 'get');
    for (let i = 0; i < 10; i++) expect(await relayOn(stack.billfold, cookie)).toBe('200');
    expect((await calls(own.watcher, 'get')) - before).toBe(10);
    expect(await trackingClients(own.watcher)).toEqual([]);
  });
});
