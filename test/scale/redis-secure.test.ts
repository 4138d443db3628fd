import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient, startBillfold, type RunningBillfold } from '../support/billfold-harness.js';
import {
  REDIS_USER,
  redisCli,
  startOwnSecureCluster,
  startOwnSentinel,
  type OwnSecureCluster,
  type OwnSentinel,
} from '../support/redis-ha.js';
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
  let sandbox: Sandbox;
  let billfold: RunningBillfold;
  beforeAll(async () => {
    [cluster, sandbox] = await Promise.all([startOwnSecureCluster(), startSandbox()]);
    // One root node only, its credentials in the URL: every other node is discovered, and gets the
    // ACL user, the CA and the client certificate all the same.
    billfold = await startBillfold({
      ...sandbox.env,
      ...cluster.env,
      REDIS_KEY_PREFIX: PREFIX,
      MAX_SESSIONS_PER_IDENTITY: '100',
    });
  }, 60_000);
  afterAll(async () => {
    // Each is unset when beforeAll failed part-way.
    /* eslint-disable @typescript-eslint/no-unnecessary-condition */
    await billfold?.close();
    await sandbox?.close();
    await cluster?.dispose();
    /* eslint-enable @typescript-eslint/no-unnecessary-condition */
  });

  it('signs in, relays, renews and lists sessions, with sessions on every master', async () => {
    await fullFlow(billfold, sandbox);
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
  let sandbox: Sandbox;
  beforeAll(async () => {
    [sentinel, sandbox] = await Promise.all([startOwnSentinel(), startSandbox()]);
  }, 60_000);
  afterAll(async () => {
    // Each is unset when beforeAll failed part-way.
    /* eslint-disable @typescript-eslint/no-unnecessary-condition */
    await sandbox?.close();
    await sentinel?.dispose();
    /* eslint-enable @typescript-eslint/no-unnecessary-condition */
  });

  it('Sentinel with the ACL user and TLS for sentinels and the master they name: the full flow', async () => {
    const billfold = await startBillfold({
      ...sandbox.env,
      ...sentinel.env,
      REDIS_KEY_PREFIX: PREFIX,
      MAX_SESSIONS_PER_IDENTITY: '100',
    });
    try {
      await fullFlow(billfold, sandbox);
    } finally {
      await billfold.close();
    }
  }, 60_000);

  const refused = async (env: Record<string, string>) => {
    const billfold = await startBillfold({
      ...sandbox.env,
      ...sentinel.env,
      ...env,
      STORE_TIMEOUT_MS: '300',
    });
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
    const billfold = await startBillfold({
      ...sandbox.env,
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
