import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { connectRedis } from '../support/redis.js';
import { startOwnRedisCluster, type OwnRedisCluster } from '../support/redis-cluster.js';
import { useStack } from '../support/stack.js';
import { eventually, outcomeOf, sessionIdOf, sleep, timed } from './scale-support.js';
import { signedOut } from '../support/security-expect.js';

const STORE_TIMEOUT_MS = 500;
// What "quickly" means on a loaded 2-core CI machine: the timeout plus a generous margin.
const ANSWER_WITHIN_MS = STORE_TIMEOUT_MS + 1500;
const PREFIX = 'billfold:';

/** One command as MONITOR reports it: its name (upper case) and arguments. */
interface Seen {
  name: string;
  args: string[];
}

function parseMonitorLine(line: string): Seen | undefined {
  // Commands a script runs are listed too, from client `lua`: Redis itself keeps those in the script's slot.
  if (/^\S+ \[\d+ lua\]/.test(line)) return undefined;
  const words = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
  const [name, ...args] = words;
  return name === undefined ? undefined : { name: name.toUpperCase(), args };
}

/** The keys a command names, for the commands billfold may send; undefined for any other command. */
function keysOf({ name, args }: Seen): string[] | undefined {
  switch (name) {
    case 'GET':
    case 'GETDEL':
    case 'SET':
      return args.slice(0, 1);
    case 'DEL':
      return args;
    case 'EVAL':
    case 'EVALSHA':
      return args.slice(2, 2 + Number(args[1]));
    // Connection set-up, health and slot discovery name no key.
    case 'PING':
    case 'HELLO':
    case 'CLIENT':
    case 'CLUSTER':
    case 'INFO':
    case 'COMMAND':
      return [];
    default:
      return undefined;
  }
}

describe('billfold on a three-master Redis Cluster', () => {
  let cluster: OwnRedisCluster;
  beforeAll(async () => {
    cluster = await startOwnRedisCluster();
  }, 60_000);
  // Unset when its start failed.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  afterAll(() => cluster?.dispose());
  // Two instances, so that a session signed in on one is used on the other.
  const stack = useStack(() => ({
    instances: 2,
    store: { clusterNodes: cluster.nodes },
    prefix: PREFIX,
    env: {
      STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
      // One session sends 50 relays at once here to test single-flight renewal, so its share is wider.
      RELAY_MAX_CONCURRENT_PER_SESSION: '64',
    },
  }));

  /** Which master holds each session, by session id. */
  const sessionHomes = async () => {
    const homes = new Map<string, number>();
    for (const [index, url] of cluster.nodes.entries()) {
      const node = await connectRedis(url);
      for (const key of await node.keys(`${PREFIX}s:*`)) homes.set(key.slice(`${PREFIX}s:`.length), index);
      node.destroy();
    }
    return homes;
  };

  it('uses the cluster client and is ready while every master answers', async () => {
    expect(stack.billfold.config.store).toMatchObject({ kind: 'redis', redisClusterNodes: cluster.nodes });
    expect(stack.billfold.config.store.redisUrl).toBeUndefined();
    expect((await stack.client(0).get('/readyz')).status).toBe(200);
  });

  it('signs in to BillingPlatform, relays GET and POST, signs out, and refuses the old cookie, across instances', async () => {
    const onFirst = stack.client(0);
    const login = await onFirst.post('/auth/billingplatform/login', demo.billingplatform);
    expect(login.status).toBe(200);
    expect(login.body.providers.billingplatform).toMatchObject({
      connected: true,
      user: demo.billingplatform.username,
    });
    const onSecond = stack.client(1);
    onSecond.cookie = onFirst.cookie;
    expect((await onSecond.get('/auth/session')).body.authenticated).toBe(true);
    const read = await onSecond.get('/api/billingplatform/ACCOUNT/1001');
    expect(read.status).toBe(200);
    expect(read.body.retrieveResponse).toBeDefined();
    const created = await onFirst.post('/api/billingplatform/ACCOUNT', { brmObjects: { Name: 'Acme' } });
    expect(created.status).toBe(200);
    expect(created.body.createResponse[0].Id).toBeDefined();

    const oldCookie = onFirst.cookie!;
    expect((await onSecond.post('/auth/logout')).status).toBe(204);
    const replay = await onFirst.get('/api/billingplatform/ACCOUNT/1001', { cookie: oldCookie });
    expect(outcomeOf(replay)).toBe('401 unauthenticated');
    expect((await onFirst.get('/auth/session', { cookie: oldCookie })).body).toEqual(signedOut());
  });

  it('spreads sessions over the masters, each one ciphertext key with a TTL', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const client = stack.client(i % 2 ? 0 : 1);
      expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
      ids.push(sessionIdOf(client.cookie!));
    }
    const homes = await sessionHomes();
    for (const id of ids) expect(homes.has(id)).toBe(true);
    // Twelve random ids on one master out of three would be a 1-in-177,000 chance.
    expect(new Set(ids.map((id) => homes.get(id))).size).toBeGreaterThan(1);
    const node = await connectRedis(cluster.nodes[homes.get(ids[0]!)!]);
    expect(await node.get(`${PREFIX}s:${ids[0]}`)).toMatch(/^k1\.[A-Za-z0-9_-]+$/);
    expect(await node.pTTL(`${PREFIX}s:${ids[0]}`)).toBeGreaterThan(0);
    node.destroy();
  });

  it('lets exactly one Billbora renewal through for 50 concurrent relays split across both instances', async () => {
    const onFirst = stack.client(0);
    expect((await onFirst.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
    const onSecond = stack.client(1);
    onSecond.cookie = onFirst.cookie;
    const before = stack.sandbox.billbora.refreshCalls();
    stack.sandbox.billbora.expireAccessTokens();

    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? onFirst : onSecond).get('/api/billbora/invoices/')),
    );
    expect(answers.map(outcomeOf)).toEqual(Array(50).fill('200'));
    expect(stack.sandbox.billbora.refreshCalls() - before).toBe(1);
    expect(stack.sandbox.billbora.revokedFamilies()).toEqual([]);
    expect((await onSecond.get('/auth/session')).body.providers.billbora.connected).toBe(true);
  });

  it('sends only commands that name one key, so every lock, counter and session write stays in one slot', async () => {
    const monitors = await Promise.all(cluster.nodes.map((url) => connectRedis(url)));
    const seen: Seen[] = [];
    await Promise.all(
      monitors.map((monitor) =>
        monitor.monitor((line) => {
          const command = parseMonitorLine(line);
          if (command) seen.push(command);
        }),
      ),
    );
    try {
      // A failed login (failure counters), a login, relays (the relay counter), a renewal (the lock),
      // and a logout: every kind of store call billfold makes.
      const client = stack.client(0);
      await client.post('/auth/billbora/login', { ...demo.billbora, password: 'wrong' });
      expect((await client.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
      stack.sandbox.billbora.expireAccessTokens();
      expect((await client.get('/api/billbora/invoices/')).status).toBe(200);
      expect((await client.post('/auth/logout')).status).toBe(204);
      await sleep(300);
    } finally {
      for (const monitor of monitors) monitor.destroy();
    }

    const names = new Set(seen.map((command) => command.name));
    for (const expected of ['GET', 'SET', 'EVAL']) expect(names).toContain(expected);
    // The lock is a SET NX with an expiry.
    expect(seen.some((c) => c.name === 'SET' && c.args.includes('NX') && c.args.includes('PX'))).toBe(true);
    const offending = seen.filter((command) => {
      const keys = keysOf(command);
      return keys === undefined || keys.length > 1 || keys.some((key) => !key.startsWith(PREFIX));
    });
    expect(offending.map((c) => `${c.name} ${c.args.slice(0, 3).join(' ')}`)).toEqual([]);
    expect(seen.filter((command) => (keysOf(command) ?? []).length === 1).length).toBeGreaterThan(5);
  });

  it('answers 503 within the bound while a master hangs, and recovers when it returns', async () => {
    const client = stack.client(0);
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    const home = (await sessionHomes()).get(sessionIdOf(client.cookie!))!;
    cluster.pause(home);
    try {
      for (const path of ['/api/billingplatform/ACCOUNT/1001', '/auth/session']) {
        const { result, ms } = await timed(() => client.get(path));
        expect(outcomeOf(result)).toBe('503 session_store_unavailable');
        expect(ms).toBeLessThan(ANSWER_WITHIN_MS);
      }
      const ready = await timed(() => client.get('/readyz'));
      expect(ready.result.status).toBe(503);
      expect(ready.ms).toBeLessThan(ANSWER_WITHIN_MS);
    } finally {
      cluster.resume(home);
    }
    await eventually(
      'the session answering again',
      async () => ((await client.get('/api/billingplatform/ACCOUNT/1001')).status === 200 ? true : undefined),
      { timeoutMs: 15_000 },
    );
    expect((await client.get('/readyz')).status).toBe(200);
  });

  it('starts while every node is down, answers 503 within the bound, and connects when the cluster returns', async () => {
    await Promise.all(cluster.ports.map((_, index) => cluster.kill(index)));
    const late = await stack.start();
    try {
      const client = createCookieClient(late.url, late.config.session.cookieName);
      const ready = await timed(() => client.get('/readyz'));
      expect(ready.result.status).toBe(503);
      expect(ready.ms).toBeLessThan(ANSWER_WITHIN_MS);
      const login = await timed(() => client.post('/auth/billingplatform/login', demo.billingplatform));
      expect(outcomeOf(login.result)).toBe('503 session_store_unavailable');
      expect(login.result.setCookies).toEqual([]);
      expect(login.ms).toBeLessThan(ANSWER_WITHIN_MS);

      await Promise.all(cluster.ports.map((_, index) => cluster.restart(index)));
      await eventually(
        '/readyz 200',
        async () => ((await client.get('/readyz')).status === 200 ? true : undefined),
        { timeoutMs: 15_000 },
      );
      expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
      expect((await client.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    } finally {
      await late.close();
    }
  });
});
