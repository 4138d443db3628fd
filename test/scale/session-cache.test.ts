import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient, startBillfold, type RunningBillfold } from '../support/billfold-harness.js';
import { startOwnRedisCluster, type OwnRedisCluster } from '../support/redis-cluster.js';
import { startOwnRedis, type OwnRedis } from '../support/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { createTestClock, type TestClock } from '../support/test-clock.js';
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
  let redis: OwnRedis;
  let sandbox: Sandbox;
  let watcher: Redis;
  let clock: TestClock;
  let instances: RunningBillfold[];

  beforeAll(async () => {
    [redis, sandbox] = await Promise.all([startOwnRedis(), startSandbox()]);
    watcher = await connect(redis.url);
    clock = createTestClock(Date.now());
    const env = { ...sandbox.env, ...LOGINS, REDIS_URL: redis.url, ADMIN_PORT: '0', ADMIN_TOKEN };
    instances = await Promise.all([0, 1, 2].map(() => startBillfold(env, { clock })));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.close()));
    watcher.destroy();
    await Promise.all([sandbox.close(), redis.dispose()]);
  });

  it('relays in steady state without reading Redis, on every instance', async () => {
    const cookie = await signIn(instances[0]!);
    await warm(instances, cookie);
    const before = await calls(watcher, 'get');
    for (let round = 0; round < 10; round++)
      for (const instance of instances) expect(await relayOn(instance, cookie)).toBe('200');
    expect(await calls(watcher, 'get')).toBe(before);
    // One tracking connection per instance, nothing more.
    expect((await trackingClients(watcher)).length).toBe(3);
  });

  it('refuses the cookie on the instance that logged it out at once, and on the two others', async () => {
    const cookie = await signIn(instances[0]!);
    await warm(instances, cookie);
    const held = instances.map(cachedOn);
    expect((await on(instances[0]!, cookie).post('/auth/logout')).status).toBe(204);
    // Redis does not tell the connection that wrote: the instance itself forgets what it changed.
    expect(await relayOn(instances[0]!, cookie)).toBe('401 unauthenticated');
    for (const i of [1, 2]) await refusedOn(instances[i]!, cookie, held[i]!, '401 unauthenticated');
  });

  it('honours an operator revocation on the two others', async () => {
    const cookie = await signIn(instances[0]!);
    await warm(instances, cookie);
    const held = instances.map(cachedOn);
    const revoked = await fetch(
      `${instances[2]!.adminUrl!}/admin/sessions?provider=billingplatform&user=${demo.billingplatform.username}`,
      { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
    );
    expect(revoked.status).toBe(200);
    for (const i of [0, 1]) await refusedOn(instances[i]!, cookie, held[i]!, '401 unauthenticated');
  });

  it('honours a provider disconnect on the two others, and keeps the rest of the session', async () => {
    const client = on(instances[1]!, undefined);
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    expect((await client.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    const cookie = client.cookie!;
    await warm(instances, cookie);
    const held = instances.map(cachedOn);
    expect((await on(instances[1]!, cookie).post('/auth/billingplatform/logout')).status).toBe(200);
    for (const i of [0, 2]) {
      await refusedOn(instances[i]!, cookie, held[i]!, '401 provider_not_connected');
      expect(outcomeOf(await on(instances[i]!, cookie).get('/api/billogram/customer'))).toBe('200');
    }
  });

  it('ends an idle session on every instance on time, cached or not', async () => {
    const cookie = await signIn(instances[0]!);
    await warm(instances, cookie);
    clock.advance(instances[0]!.config.session.idleTimeoutMs + 1000);
    for (const instance of instances) expect(await relayOn(instance, cookie)).toBe('401 unauthenticated');
  });
});

describe('the session cache when its tracking connection goes away', () => {
  let redis: OwnRedis;
  let sandbox: Sandbox;
  let proxy: TcpProxy;
  let watcher: Redis;
  // `cached` reaches Redis through a proxy the test can cut; `writer` directly.
  let cached: RunningBillfold;
  let writer: RunningBillfold;

  beforeAll(async () => {
    [redis, sandbox] = await Promise.all([startOwnRedis(), startSandbox()]);
    proxy = await startTcpProxy(redis.port);
    watcher = await connect(redis.url);
  }, 60_000);
  beforeEach(async () => {
    const env = { ...sandbox.env, STORE_TIMEOUT_MS: '300' };
    [cached, writer] = await Promise.all([
      startBillfold({ ...env, REDIS_URL: proxy.url }),
      startBillfold({ ...env, REDIS_URL: redis.url }),
    ]);
  });
  afterEach(async () => {
    proxy.restore();
    await Promise.all([cached.close(), writer.close()]);
  });
  afterAll(async () => {
    watcher.destroy();
    await proxy.close();
    await Promise.all([sandbox.close(), redis.dispose()]);
  });

  it('drops the cache on CLIENT KILL, so a revocation Redis could not tell it about is honoured', async () => {
    const cookie = await signIn(writer);
    await warm([cached], cookie);
    expect(cachedOn(cached)).toBe(1);
    const [connection] = proxy.upstreamAddresses();
    if (!connection) throw new Error('no connection through the proxy');
    const key = `${writer.config.store.keyPrefix}s:${sessionIdOf(cookie)}`;
    // The kill and the delete in one step: the killed connection is gone before the delete, so no
    // invalidation for it is ever sent.
    const [killed, deleted] = await watcher
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
    await redis.kill();
    await redis.start();
    await refusedAfterOutage(cached, cookie);
    const restarted = await connect(redis.url);
    // After the restart the record is read from Redis again, not from the cache.
    expect(await calls(restarted, 'get')).toBeGreaterThan(0);
    restarted.destroy();
    watcher.destroy();
    watcher = await connect(redis.url);
  });
});

describe('the session cache on Redis Cluster', () => {
  let cluster: OwnRedisCluster;
  let sandbox: Sandbox;
  let instances: RunningBillfold[];

  beforeAll(async () => {
    [cluster, sandbox] = await Promise.all([startOwnRedisCluster(), startSandbox()]);
    const env = { ...sandbox.env, ...LOGINS, REDIS_CLUSTER_NODES: cluster.nodes.join(',') };
    instances = await Promise.all([startBillfold(env), startBillfold(env)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.close()));
    await Promise.all([sandbox.close(), cluster.dispose()]);
  });

  it('tracks every node, and a logout on one instance is refused on the other', async () => {
    const cookies: string[] = [];
    // One at a time: a login burst of one user is refused by design.
    for (let i = 0; i < 6; i++) cookies.push(await signIn(instances[0]!));
    for (const cookie of cookies) await warm(instances, cookie);
    for (const node of cluster.nodes) {
      const client = await connect(node);
      expect((await trackingClients(client)).length).toBeGreaterThanOrEqual(2);
      client.destroy();
    }
    for (const cookie of cookies) {
      const held = cachedOn(instances[0]!);
      expect((await on(instances[1]!, cookie).post('/auth/logout')).status).toBe(204);
      await refusedOn(instances[0]!, cookie, held, '401 unauthenticated');
    }
  });
});

describe('SESSION_CACHE=off', () => {
  let redis: OwnRedis;
  let sandbox: Sandbox;
  let watcher: Redis;
  let instance: RunningBillfold;

  beforeAll(async () => {
    [redis, sandbox] = await Promise.all([startOwnRedis(), startSandbox()]);
    watcher = await connect(redis.url);
    instance = await startBillfold({ ...sandbox.env, REDIS_URL: redis.url, SESSION_CACHE: 'off' });
  }, 60_000);
  afterAll(async () => {
    await instance.close();
    watcher.destroy();
    await Promise.all([sandbox.close(), redis.dispose()]);
  });

  it('reads the record from Redis on every relayed request and tracks nothing', async () => {
    const cookie = await signIn(instance);
    await warm([instance], cookie);
    const before = await calls(watcher, 'get');
    for (let i = 0; i < 10; i++) expect(await relayOn(instance, cookie)).toBe('200');
    expect((await calls(watcher, 'get')) - before).toBe(10);
    expect(await trackingClients(watcher)).toEqual([]);
  });
});
