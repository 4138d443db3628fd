import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import {
  REDIS_USER,
  redisCli,
  startOwnSecureCluster,
  startOwnSentinel,
  type OwnSecureCluster,
  type OwnSentinel,
} from '../support/redis-ha.js';
import { useStack } from '../support/stack.js';
import { eventually, outcomeOf } from './scale-support.js';

const PREFIX = 'billfold:';

/** Sign-in, relay, renewal and inventory: what every topology must carry end to end. */
async function fullFlow(billfold: RunningBillfold, sandbox: Sandbox) {
  const client = () => createCookieClient(billfold.url, billfold.config.session.cookieName);
  await eventually('billfold ready', async () =>
    (await client().get('/readyz')).status === 200 ? true : undefined,
  );
  // Enough sessions that every master of a cluster holds some (24 on one of three: 1 in 10^4).
  const laptops = Array.from({ length: 24 }, client);
  for (const laptop of laptops) {
    const login = await laptop.post('/auth/billingplatform/login', demo.billingplatform);
    expect(outcomeOf(login)).toBe('200');
    expect(outcomeOf(await laptop.get('/api/billingplatform/ACCOUNT/1001'))).toBe('200');
  }
  const listed = await laptops[0]!.get('/auth/sessions');
  expect(listed.status).toBe(200);
  expect((listed.body.sessions as unknown[]).length).toBeGreaterThanOrEqual(2);

  const billbora = client();
  expect(outcomeOf(await billbora.post('/auth/billbora/login', demo.billbora))).toBe('200');
  const refreshes = sandbox.billbora.refreshCalls();
  sandbox.billbora.expireAccessTokens();
  expect(outcomeOf(await billbora.get('/api/billbora/invoices/'))).toBe('200');
  expect(sandbox.billbora.refreshCalls()).toBe(refreshes + 1);
  expect(outcomeOf(await billbora.get('/api/billbora/invoices/'))).toBe('200');

  const leaving = laptops[1]!;
  const cookie = leaving.cookie;
  expect((await leaving.post('/auth/logout')).status).toBe(204);
  expect(outcomeOf(await leaving.get('/api/billingplatform/ACCOUNT/1001', { cookie: cookie! }))).toBe(
    '401 unauthenticated',
  );
}

describe('Redis Cluster over TLS behind an ACL user, three masters with replicas', () => {
  let cluster: OwnSecureCluster;
  beforeAll(async () => {
    cluster = await startOwnSecureCluster();
  }, 60_000);
  // Unset when its start failed.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  afterAll(() => cluster?.dispose());
  const stack = useStack(() => ({
    prefix: PREFIX,
    // The cluster in place of the stack's plain Redis. One root node only, its credentials in the
    // URL: every other node is discovered, and gets the ACL user, the CA and the client certificate
    // all the same.
    env: { REDIS_URL: undefined, ...cluster.env, MAX_SESSIONS_PER_IDENTITY: '100' },
  }));

  it('signs in, relays, renews and lists sessions, with sessions on every master', async () => {
    await fullFlow(stack.billfold, stack.sandbox);
    const masters = (await cluster.topology()).map((shard) => shard.master);
    const counts = await Promise.all(
      masters.map(async (port) =>
        Number(
          await redisCli(
            cluster.tls,
            port,
            'EVAL',
            `return #redis.call('KEYS', ARGV[1])`,
            '0',
            `${PREFIX}s:*`,
          ),
        ),
      ),
    );
    for (const count of counts) expect(count).toBeGreaterThan(0);
  }, 60_000);
});

describe('Redis Sentinel over TLS behind an ACL user, and the wrong secrets', () => {
  let sentinel: OwnSentinel;
  beforeAll(async () => {
    sentinel = await startOwnSentinel();
  }, 60_000);
  // Unset when its start failed.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  afterAll(() => sentinel?.dispose());
  // Each test starts its own instance, for one test only.
  const stack = useStack({ instances: 0, prefix: PREFIX });
  /** An instance on the Sentinel deployment, in place of the stack's plain Redis, `env` on top. */
  const onSentinel = (env: Record<string, string>) =>
    stack.start({ REDIS_URL: undefined, ...sentinel.env, ...env });

  it('Sentinel with the ACL user and TLS for sentinels and the master they name: the full flow', async () => {
    const billfold = await onSentinel({ MAX_SESSIONS_PER_IDENTITY: '100' });
    try {
      await fullFlow(billfold, stack.sandbox);
    } finally {
      await billfold.close();
    }
  }, 60_000);

  const refused = async (env: Record<string, string>) => {
    const billfold = await onSentinel({ ...env, STORE_TIMEOUT_MS: '300' });
    try {
      const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
      expect((await client.get('/readyz')).status).toBe(503);
      const login = await client.post('/auth/billingplatform/login', demo.billingplatform);
      expect(outcomeOf(login)).toBe('503 session_store_unavailable');
      expect(login.setCookies).toEqual([]);
    } finally {
      await billfold.close();
    }
  };

  it('answers 503 session_store_unavailable, never a 500, with a wrong password', async () => {
    await refused({ REDIS_PASSWORD: `${REDIS_USER.password}-wrong` });
  });

  it('answers 503 session_store_unavailable without the client certificate the servers require', async () => {
    await refused({ REDIS_TLS_CERT_FILE: '', REDIS_TLS_KEY_FILE: '' });
  });

  it('answers 503 session_store_unavailable when TLS is off against TLS-only servers', async () => {
    await refused({ REDIS_TLS_CA_FILE: '', REDIS_TLS_CERT_FILE: '', REDIS_TLS_KEY_FILE: '' });
  });

  it('a single server over rediss:// with the ACL user in the URL: signs in and relays', async () => {
    const master = await sentinel.masterPort();
    const billfold = await stack.start({
      REDIS_URL: `rediss://${REDIS_USER.username}:${REDIS_USER.password}@127.0.0.1:${master}`,
      REDIS_TLS_CA_FILE: sentinel.tls.caFile,
      REDIS_TLS_CERT_FILE: sentinel.tls.clientCert,
      REDIS_TLS_KEY_FILE: sentinel.tls.clientKey,
      REDIS_KEY_PREFIX: `${PREFIX}single:`,
    });
    try {
      const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
      await eventually('ready', async () =>
        (await client.get('/readyz')).status === 200 ? true : undefined,
      );
      expect(outcomeOf(await client.post('/auth/billingplatform/login', demo.billingplatform))).toBe('200');
      expect(outcomeOf(await client.get('/api/billingplatform/ACCOUNT/1001'))).toBe('200');
    } finally {
      await billfold.close();
    }
  });
});
