import { describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createSessionCodec } from '../../src/session/session-codec.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import { createCookieClient, receivedBodies } from '../support/billfold-harness.js';
import { sendRaw } from '../support/raw-http.js';
import { uniquePrefix, useRedisWatch } from '../support/redis.js';
import { createSecretLedger } from '../support/secret-ledger.js';
import { sessionIdOf } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const prefix = uniquePrefix();
const ledger = createSecretLedger();
// Every command any client sends Redis naming this file's prefix, watched from before the stack
// starts until after it has stopped.
const watch = useRedisWatch(prefix);
const stack = useStack({ prefix });

/** Every key billfold holds right now, with its value and remaining TTL. */
async function storedKeys() {
  const entries: { key: string; value: string | null; ttlMs: number }[] = [];
  for await (const keys of watch.redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) {
    for (const key of keys) {
      // The session indexes are sorted sets of session ids; every other key is a string.
      const value =
        (await watch.redis.type(key)) === 'zset'
          ? (await watch.redis.zRange(key, 0, -1)).join(' ')
          : await watch.redis.get(key);
      entries.push({ key, value, ttlMs: await watch.redis.pTTL(key) });
    }
  }
  return entries;
}

/** Opens every stored session (the test holds the key) and adds each credential in it to the ledger. */
async function harvestStoredCredentials(): Promise<number> {
  const codec = createSessionCodec(stack.billfold.config.session.encryptionKeys);
  let opened = 0;
  for (const { key, value } of await storedKeys()) {
    if (!key.startsWith(`${prefix}s:`) || value === null) continue;
    const record: SessionRecord | undefined = codec.open(key.slice(`${prefix}s:`.length), value);
    ledger.add(record?.trustedDevices?.bill?.rememberMeId);
    for (const credential of Object.values(record?.providers ?? {})) {
      const { sessionId, basic, access, refresh, supabaseRefresh, apiKey } = credential as Record<
        string,
        string
      >;
      ledger.add(sessionId, basic, access, refresh, supabaseRefresh, apiKey);
      opened++;
    }
  }
  return opened;
}

/**
 * A representative session, from sign-in to sign-out, run once for the whole file by whichever test
 * needs it first, so every check below holds whatever order the tests run in.
 */
let journey: Promise<void> | undefined;
const representativeSession = () => (journey ??= runRepresentativeSession());

async function runRepresentativeSession(): Promise<void> {
  const everything = createCookieClient(stack.billfold.url, 'billfold');
  for (const provider of ['billingplatform', 'bill', 'billogram', 'billbora'] as const) {
    expect((await everything.post(`/auth/${provider}/login`, demo[provider])).status).toBe(200);
  }
  expect(await harvestStoredCredentials()).toBe(4);
  expect((await everything.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
  expect((await everything.request('POST', '/api/bill/GetSessionInfo.json', { body: '' })).status).toBe(200);
  expect((await everything.get('/api/billogram/customer')).status).toBe(200);
  stack.sandbox.billbora.expireAccessTokens();
  expect((await everything.get('/api/billbora/invoices/')).status).toBe(200);
  expect((await everything.post('/auth/billbora/organization', { organizationId: 'org_other' })).status).toBe(
    200,
  );
  await harvestStoredCredentials();
  expect((await everything.get('/auth/session?touch=true')).body.authenticated).toBe(true);

  // Refusals that carry secrets in places billfold must not echo or log.
  expect(
    (await everything.get(`/api/billingplatform/ACCOUNT/1001?password=${demo.bill.password}`)).status,
  ).toBe(400);
  await sendRaw(stack.billfold.url, {
    target: '/api/billogram/customer',
    headers: [
      ['X-CSRF', '1'],
      ['Cookie', everything.cookie!],
      [
        'Authorization',
        `Basic ${Buffer.from(`${demo.billogram.apiUserId}:${demo.billogram.apiPassword}`).toString('base64')}`,
      ],
      ['devKey', demo.billDevKey],
    ],
  });
  const stranger = createCookieClient(stack.billfold.url, 'billfold');
  expect(
    (
      await stranger.post('/auth/billingplatform/login', {
        ...demo.billingplatform,
        password: 'wrong-pass-1',
      })
    ).status,
  ).toBe(401);

  // A BILL sync-token session: the token's value is a password billfold must never echo.
  const synced = createCookieClient(stack.billfold.url, 'billfold');
  expect((await synced.post('/auth/bill/login', demo.billSyncToken)).body.providers.bill.mode).toBe(
    'sync-token',
  );
  expect((await synced.request('POST', '/api/bill/GetSessionInfo.json', { body: '' })).status).toBe(200);
  await harvestStoredCredentials();
  expect((await synced.post('/auth/logout')).status).toBe(204);

  const keyed = createCookieClient(stack.billfold.url, 'billfold');
  expect((await keyed.post('/auth/billbora/login', { apiKey: demo.billboraApiKey })).status).toBe(200);
  expect((await keyed.get('/api/billbora/invoices/')).status).toBe(200);
  await harvestStoredCredentials();

  expect((await everything.post('/auth/billogram/logout')).status).toBe(200);
  expect((await everything.post('/auth/logout')).status).toBe(204);
  expect((await keyed.post('/auth/logout')).status).toBe(204);
  ledger.collect(stack.sandbox);
}

describe('a representative session, from sign-in to sign-out, on Redis', () => {
  it('runs: every provider signed in, relayed, renewed, switched, refused and signed out', async () => {
    await representativeSession();
    // The ledger now holds every credential billfold held, not only the demo passwords.
    expect(ledger.secrets.size).toBeGreaterThan(12);
  });
});

describe('what the suite leaves behind', () => {
  it('puts no secret in any response or log line, and no session id in a log line', async () => {
    await representativeSession();
    expect(receivedBodies.length).toBeGreaterThan(10);
    expect(stack.billfold.logs.length).toBeGreaterThan(10);
    expect(ledger.leaks(stack.billfold.logs)).toEqual([]);
  });

  it('writes every Redis key with a TTL, and nothing but ciphertext bound to its session id', async () => {
    await representativeSession();
    // Sessions still open at the end (the stranger's failed login wrote counters; start one more).
    const open = createCookieClient(stack.billfold.url, 'billfold');
    await open.post('/auth/billingplatform/login', demo.billingplatform);
    const codec = createSessionCodec(stack.billfold.config.session.encryptionKeys);
    const keys = await storedKeys();
    expect(keys.some(({ key }) => key.includes(':s:'))).toBe(true);
    for (const { key, value, ttlMs } of keys) {
      expect({ key, ttl: ttlMs > 0 }).toEqual({ key, ttl: true });
      for (const secret of ledger.secrets) {
        expect(key).not.toContain(secret);
        expect(value ?? '').not.toContain(secret);
      }
      if (key.startsWith(`${prefix}s:`)) {
        expect(value).toMatch(/^k1\.[A-Za-z0-9_-]{40,}$/);
        const id = key.slice(`${prefix}s:`.length);
        expect(codec.open(id, value!)).toBeDefined();
        expect(codec.open(`${id}x`, value!)).toBeUndefined();
      }
      // An index (hashed identity in its name) lists only ids of sessions that are stored.
      if (key.startsWith(`${prefix}ix:`)) {
        for (const id of value!.split(' ')) expect(keys.map((k) => k.key)).toContain(`${prefix}s:${id}`);
      }
    }
    expect(sessionIdOf(open.cookie)).toBeTruthy();
  });

  it('sent Redis no secret at all, in any command, over the whole run', async () => {
    await representativeSession();
    expect(watch.monitored.length).toBeGreaterThan(10);
    for (const secret of ledger.secrets) {
      const found = watch.monitored.filter((line) => line.includes(secret));
      expect({ secret: secret.slice(0, 6), found }).toEqual({ secret: secret.slice(0, 6), found: [] });
    }
    // Every plain SET billfold sends carries an expiry.
    for (const line of watch.monitored.filter((entry) => /"set"/i.test(entry))) expect(line).toMatch(/"PX"/i);
  });
});
