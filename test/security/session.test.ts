import signature from 'cookie-signature';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { SANDBOX_MOUNTS } from '../../src/sandbox/sandbox.js';
import { createCookieClient, type CookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { startGatedProxy } from '../support/gated-proxy.js';
import { sendRaw } from '../support/raw-http.js';
import { connectRedis, uniquePrefix } from '../support/redis.js';
import { createSecretLedger, exerciseEveryProvider } from '../support/secret-ledger.js';
import {
  expectClientRefusal,
  expectDocumentedError,
  sessionIdOf,
  signedCookie,
  waitUntil,
  signedOut,
} from '../support/security-expect.js';
import { useStack, type InstanceOptions } from '../support/stack.js';
import { createTestClock } from '../support/test-clock.js';
import { randomEncryptionKey, TEST_SECRETS } from '../support/test-config.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const SECRET = TEST_SECRETS.SESSION_SECRETS;
const ledger = createSecretLedger();

// Each describe or test starts the instances it needs; the stack stops them all.
const stack = useStack({ instances: 0 });
const expectNoLeak = () => {
  ledger.collect(stack.sandbox);
  expect(ledger.leaks(stack.logs())).toEqual([]);
};
// Each test answers for what its own instances got back and logged.
afterEach(expectNoLeak);

it('puts no secret it handled into any answer or log line, whatever ran before', async () => {
  await exerciseEveryProvider(await start());
  expectNoLeak();
});

/** Starts billfold on its own Redis prefix (unless `env` names one); its log lines join the leakage check. */
function start(env: Record<string, string> = {}, options: InstanceOptions = {}) {
  return stack.start({ REDIS_KEY_PREFIX: uniquePrefix(), ...env }, options);
}

/** What both roads make of a Cookie header: the Express road's session view and the relay's answer. */
async function bothRoads(billfold: RunningBillfold, cookie: string) {
  const headers: [string, string][] = [
    ['X-CSRF', '1'],
    ['Cookie', cookie],
  ];
  const view = await sendRaw(billfold.url, { target: '/auth/session', headers });
  const relay = await sendRaw(billfold.url, { target: '/api/billingplatform/ACCOUNT/1001', headers });
  return { view, relay };
}

async function expectNoSessionOnEitherRoad(billfold: RunningBillfold, cookie: string) {
  const { view, relay } = await bothRoads(billfold, cookie);
  expect(view.status).toBe(200);
  expect(view.body).toEqual(signedOut());
  expectDocumentedError(relay, 401, 'unauthenticated');
}

async function signIn(
  billfold: RunningBillfold,
  provider: 'billingplatform' | 'billogram' = 'billingplatform',
) {
  const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
  expect((await client.post(`/auth/${provider}/login`, demo[provider])).status).toBe(200);
  return client;
}

describe('session fixation', () => {
  let billfold: RunningBillfold;
  beforeAll(async () => {
    billfold = await start();
  });

  it('treats a validly signed cookie for an id billfold never issued as no session, on both roads', async () => {
    const invented = signedCookie('billfold', 'attacker-chosen-session-id-0001', SECRET);
    await expectNoSessionOnEitherRoad(billfold, invented);
    const client = createCookieClient(billfold.url, 'billfold');
    expectDocumentedError(
      await client.post('/auth/billingplatform/logout', undefined, { cookie: invented }),
      401,
      'unauthenticated',
    );
  });

  it('signs in under a fresh id, never the invented one, and stores nothing under the invented id', async () => {
    const inventedId = 'attacker-chosen-session-id-0002';
    const client = createCookieClient(billfold.url, 'billfold');
    client.cookie = signedCookie('billfold', inventedId, SECRET);
    const login = await client.post('/auth/billingplatform/login', demo.billingplatform);
    expect(login.status).toBe(200);
    expect(sessionIdOf(client.cookie)).not.toBe(inventedId);
    expect(await billfold.billfold.repository.backend.get(`s:${inventedId}`)).toBeNull();
    await expectNoSessionOnEitherRoad(billfold, signedCookie('billfold', inventedId, SECRET));
  });

  it('gives the victim a fresh id when an attacker plants their own live cookie, and the planted id dies', async () => {
    const attacker = await signIn(billfold);
    const planted = attacker.cookie!;
    const victim = createCookieClient(billfold.url, 'billfold');
    victim.cookie = planted;
    expect((await victim.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    expect(sessionIdOf(victim.cookie)).not.toBe(sessionIdOf(planted));
    await expectNoSessionOnEitherRoad(billfold, planted);
    expect((await victim.get('/api/billogram/customer')).status).toBe(200);
  });
});

describe('login rotates the session id', () => {
  let billfold: RunningBillfold;
  beforeAll(async () => {
    billfold = await start();
  });

  it('issues a new id at every login and the previous id is dead at once, on both roads and in the store', async () => {
    const client = await signIn(billfold);
    const seen = [client.cookie!];
    expect((await client.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    seen.push(client.cookie!);
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    seen.push(client.cookie!);

    expect(new Set(seen.map(sessionIdOf)).size).toBe(3);
    for (const old of seen.slice(0, 2)) {
      await expectNoSessionOnEitherRoad(billfold, old);
      expect(await billfold.billfold.repository.backend.get(`s:${sessionIdOf(old)}`)).toBeNull();
    }
    const view = await client.get('/auth/session');
    expect(view.body.providers.billingplatform.connected).toBe(true);
    expect(view.body.providers.billogram.connected).toBe(true);
  });
});

describe('the session id travels only in the cookie', () => {
  let billfold: RunningBillfold;
  let victim: CookieClient;
  let id: string;
  let cookieValue: string;
  beforeAll(async () => {
    billfold = await start();
    victim = await signIn(billfold);
    id = sessionIdOf(victim.cookie);
    cookieValue = victim.cookie!.split('=')[1]!;
  });

  it('ignores an id in the query string', async () => {
    const stranger = createCookieClient(billfold.url, 'billfold');
    const query = `session=${id}&billfold=${cookieValue}&connect.sid=${cookieValue}`;
    expect((await stranger.get(`/auth/session?${query}`)).body).toEqual(signedOut());
    // A credential-like name is refused outright, on the auth routes as on the relay.
    expectDocumentedError(await stranger.get(`/auth/session?sid=${id}`), 400, 'secret_in_query');
    expectDocumentedError(
      await stranger.get(`/api/billingplatform/ACCOUNT/1001?billfold=${cookieValue}`),
      401,
      'unauthenticated',
    );
    expectDocumentedError(
      await stranger.get(`/api/billingplatform/ACCOUNT/1001?sid=${id}`),
      400,
      'secret_in_query',
    );
  });

  it.each([
    ['Authorization', (i: string) => `Bearer ${i}`],
    ['Authorization', (_i: string, c: string) => c],
    ['X-Session-Id', (i: string) => i],
    ['Session-Id', (i: string) => i],
    ['sessionid', (i: string) => i],
    ['X-Billfold-Session', (_i: string, c: string) => c],
    ['Cookie2', (_i: string, c: string) => `billfold=${c}`],
    ['X-Cookie', (_i: string, c: string) => `billfold=${c}`],
  ])('ignores an id in a %s header', async (name, value) => {
    const headers: [string, string][] = [
      ['X-CSRF', '1'],
      [name, value(id, cookieValue)],
    ];
    expect((await sendRaw(billfold.url, { target: '/auth/session', headers })).body).toEqual(signedOut());
    expectDocumentedError(
      await sendRaw(billfold.url, { target: '/api/billingplatform/ACCOUNT/1001', headers }),
      401,
      'unauthenticated',
    );
  });

  it('ignores an id in a body: a logout naming the victim’s id ends nothing', async () => {
    const stranger = createCookieClient(billfold.url, 'billfold');
    const body = { sid: id, sessionId: id, billfold: cookieValue };
    expect((await stranger.post('/auth/logout', body)).status).toBe(204);
    expectDocumentedError(await stranger.post('/auth/billingplatform/logout', body), 401, 'unauthenticated');
    expectDocumentedError(
      await stranger.post('/auth/billbora/organization', { organizationId: 'org_demo', ...body }),
      401,
      'unauthenticated',
    );
    expect((await victim.get('/auth/session')).body.authenticated).toBe(true);
    expect((await victim.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
  });
});

describe('duplicate and shadow cookies', () => {
  let billfold: RunningBillfold;
  let first: CookieClient;
  let second: CookieClient;
  beforeAll(async () => {
    billfold = await start();
    first = await signIn(billfold, 'billingplatform');
    second = await signIn(billfold, 'billogram');
  });

  /** Which session a request acted as: the one signed in to BillingPlatform, or to Billogram. */
  async function actedAs(headers: [string, string][]) {
    const all: [string, string][] = [['X-CSRF', '1'], ...headers];
    const view = await sendRaw(billfold.url, { target: '/auth/session', headers: all });
    const relayBp = await sendRaw(billfold.url, {
      target: '/api/billingplatform/ACCOUNT/1001',
      headers: all,
    });
    const relayBg = await sendRaw(billfold.url, { target: '/api/billogram/customer', headers: all });
    return {
      express: view.body.providers.billingplatform.connected ? 'first' : 'second',
      relay: relayBp.status === 200 && relayBg.status === 401 ? 'first' : 'second',
    };
  }

  it('reads only the first cookie of the name, the same one on both roads', async () => {
    expect(await actedAs([['Cookie', `${first.cookie}; ${second.cookie}`]])).toEqual({
      express: 'first',
      relay: 'first',
    });
    expect(await actedAs([['Cookie', `${second.cookie}; ${first.cookie}`]])).toEqual({
      express: 'second',
      relay: 'second',
    });
    // Two Cookie header lines reach billfold joined, in order.
    expect(
      await actedAs([
        ['Cookie', first.cookie!],
        ['Cookie', second.cookie!],
      ]),
    ).toEqual({ express: 'first', relay: 'first' });
  });

  it('never falls through to a later valid cookie when the first is forged or unsigned', async () => {
    for (const forged of [
      'billfold=s%3Aforged.c2lnbmF0dXJl',
      `billfold=${sessionIdOf(first.cookie)}`,
      'billfold=',
    ]) {
      await expectNoSessionOnEitherRoad(billfold, `${forged}; ${first.cookie}`);
    }
  });

  it('reads a double-quoted cookie value the same way on both roads', async () => {
    const [name, value] = first.cookie!.split('=');
    const { view, relay } = await bothRoads(billfold, `${name}="${value}"`);
    expect(view.body.authenticated).toBe(true);
    expect(relay.status).toBe(200);
  });

  it('ignores an unprefixed or re-cased shadow of the __Host- cookie, even one placed first', async () => {
    const secure = await start({ PUBLIC_ORIGIN: 'https://billfold.example.com', TRUST_PROXY: 'loopback' });
    expect(secure.config.session.cookieName).toBe('__Host-billfold');
    const client = createCookieClient(secure.url, '__Host-billfold');
    const login = await client.post('/auth/billingplatform/login', demo.billingplatform, {
      'x-forwarded-proto': 'https',
    });
    expect(login.status).toBe(200);
    const value = client.cookie!.split('=')[1]!;
    await expectNoSessionOnEitherRoad(secure, `billfold=${value}`);
    await expectNoSessionOnEitherRoad(secure, `__host-billfold=${value}`);
    await expectNoSessionOnEitherRoad(secure, `__Secure-billfold=${value}`);

    // An attacker's own session, tossed under the unprefixed name ahead of the victim's cookie.
    const attacker = createCookieClient(secure.url, '__Host-billfold');
    await attacker.post('/auth/billogram/login', demo.billogram, { 'x-forwarded-proto': 'https' });
    const tossed = `billfold=${attacker.cookie!.split('=')[1]}`;
    const { view, relay } = await bothRoads(secure, `${tossed}; ${client.cookie}`);
    expect(view.body.providers.billingplatform.connected).toBe(true);
    expect(relay.status).toBe(200);
  });
});

describe('an oversized Cookie header', () => {
  let billfold: RunningBillfold;
  beforeAll(async () => {
    billfold = await start();
  });

  it('gets 431 from either road, never a 500, and never reaches the upstream', async () => {
    const client = await signIn(billfold);
    stack.sandbox.billingplatform.clearRequests();
    const cookie = `${client.cookie}; padding=${'a'.repeat(20 * 1024)}`;
    for (const target of ['/auth/session', '/api/billingplatform/ACCOUNT/1001', '/auth/logout']) {
      const answer = await sendRaw(billfold.url, {
        method: target === '/auth/logout' ? 'POST' : 'GET',
        target,
        headers: [
          ['X-CSRF', '1'],
          ['Cookie', cookie],
        ],
      });
      expectClientRefusal(answer, [400, 431]);
    }
    expect(stack.sandbox.billingplatform.requests).toEqual([]);
    expect((await client.get('/auth/session')).body.authenticated).toBe(true);
  });

  it('still finds the session among hundreds of cookies, and malformed ones break nothing', async () => {
    const client = await signIn(billfold);
    const noise = Array.from({ length: 400 }, (_, i) => `c${i}=%E0%A4%A${i}`).join('; ');
    const { view, relay } = await bothRoads(billfold, `${noise}; ${client.cookie}; %%%=%%%; =x; ;;`);
    expect(view.body.authenticated).toBe(true);
    expect(relay.status).toBe(200);
  });
});

describe('stripped or altered signatures', () => {
  let billfold: RunningBillfold;
  let cookie: string;
  beforeAll(async () => {
    billfold = await start();
    cookie = (await signIn(billfold)).cookie!;
  });

  const variants: [string, (id: string, mac: string) => string][] = [
    ['the signature stripped', (id) => `s:${id}`],
    ['an empty signature', (id) => `s:${id}.`],
    ['no s: prefix', (id) => id],
    ['no s: prefix but the signature', (id, mac) => `${id}.${mac}`],
    ['one signature character changed', (id, mac) => `s:${id}.${mac[0] === 'A' ? 'B' : 'A'}${mac.slice(1)}`],
    ['the signature truncated', (id, mac) => `s:${id}.${mac.slice(0, -4)}`],
    ['the signature upper-cased', (id, mac) => `s:${id}.${mac.toUpperCase()}`],
    [
      'the id changed under the same signature',
      (id, mac) => `s:${id.slice(0, -1)}${id.endsWith('x') ? 'y' : 'x'}.${mac}`,
    ],
    ['a second signature appended', (id, mac) => `s:${id}.${mac}.${mac}`],
    ['a signature under another secret', (id) => `s:${signature.sign(id, 'another-secret-'.repeat(3))}`],
  ];

  it.each(variants)('treats a cookie with %s as no session, on both roads', async (_name, alter) => {
    const value = decodeURIComponent(cookie.split('=')[1]!);
    const id = value.slice(2, value.lastIndexOf('.'));
    const mac = value.slice(value.lastIndexOf('.') + 1);
    await expectNoSessionOnEitherRoad(billfold, `billfold=${encodeURIComponent(alter(id, mac))}`);
  });

  it('signs in under a fresh id when the cookie carries an altered signature', async () => {
    const client = createCookieClient(billfold.url, 'billfold');
    const id = sessionIdOf(cookie);
    client.cookie = `billfold=${encodeURIComponent(`s:${id}.AAAA`)}`;
    await client.post('/auth/billogram/login', demo.billogram);
    expect(sessionIdOf(client.cookie)).not.toBe(id);
    expect((await client.get('/api/billingplatform/ACCOUNT/1001')).body.error.code).toBe(
      'provider_not_connected',
    );
  });
});

describe('secret and key rotation', () => {
  const oldSecret = TEST_SECRETS.SESSION_SECRETS;
  const newSecret = 'rotated-signing-secret-9876543210zyxwvutsrqponmlkjihgfedcba';
  const k1 = TEST_SECRETS.SESSION_ENCRYPTION_KEYS;
  const k2 = randomEncryptionKey('k2');

  it('keeps cookies signed with a still-listed secret, signs new ones with the first, and refuses a retired secret on both roads', async () => {
    const prefix = uniquePrefix();
    const before = await start({ REDIS_KEY_PREFIX: prefix, SESSION_SECRETS: oldSecret });
    const during = await start({ REDIS_KEY_PREFIX: prefix, SESSION_SECRETS: `${newSecret},${oldSecret}` });
    const after = await start({ REDIS_KEY_PREFIX: prefix, SESSION_SECRETS: newSecret });
    const oldCookie = (await signIn(before)).cookie!;
    const { view, relay } = await bothRoads(during, oldCookie);
    expect(view.body.authenticated).toBe(true);
    expect(relay.status).toBe(200);

    const fresh = await signIn(during);
    expect(fresh.cookie).toBe(signedCookie('billfold', sessionIdOf(fresh.cookie), newSecret));
    expect((await bothRoads(after, fresh.cookie!)).relay.status).toBe(200);

    // The record is still stored and readable: only the retired signature stands in the way.
    expect(await after.billfold.repository.load(sessionIdOf(oldCookie))).toBeDefined();
    await expectNoSessionOnEitherRoad(after, oldCookie);
  });

  it('reads records sealed under an older listed key, re-seals them under the first on the next write, and treats a retired key as no session', async () => {
    const prefix = uniquePrefix();
    const onK1 = await start({ REDIS_KEY_PREFIX: prefix, SESSION_ENCRYPTION_KEYS: k1 });
    const rotating = await start({ REDIS_KEY_PREFIX: prefix, SESSION_ENCRYPTION_KEYS: `${k2},${k1}` });
    const onlyK2 = await start({ REDIS_KEY_PREFIX: prefix, SESSION_ENCRYPTION_KEYS: k2 });
    const redis = await connectRedis();
    try {
      const stays = await signIn(onK1);
      const retired = await signIn(onK1);
      const key = (cookie: string) => `${prefix}s:${sessionIdOf(cookie)}`;
      expect(await redis.get(key(stays.cookie!))).toMatch(/^k1\./);

      const rotated = createCookieClient(rotating.url, 'billfold');
      rotated.cookie = stays.cookie;
      expect((await rotated.get('/auth/session?touch=true')).body.authenticated).toBe(true);
      expect(await redis.get(key(stays.cookie!))).toMatch(/^k2\./);
      expect((await bothRoads(onlyK2, stays.cookie!)).relay.status).toBe(200);

      await expectNoSessionOnEitherRoad(onlyK2, retired.cookie!);
    } finally {
      redis.destroy();
    }
  });

  it('treats a tampered record, or a record moved under another session id, as no session', async () => {
    const prefix = uniquePrefix();
    const billfold = await start({ REDIS_KEY_PREFIX: prefix });
    const redis = await connectRedis();
    try {
      const tampered = await signIn(billfold);
      const victim = await signIn(billfold, 'billogram');
      const thief = await signIn(billfold);
      const keyOf = (client: CookieClient) => `${prefix}s:${sessionIdOf(client.cookie)}`;

      const sealed = (await redis.get(keyOf(tampered)))!;
      const flipped = sealed.slice(0, -6) + (sealed.at(-6) === 'A' ? 'B' : 'A') + sealed.slice(-5);
      await redis.set(keyOf(tampered), flipped, { expiration: { type: 'PX', value: 60_000 } });
      await expectNoSessionOnEitherRoad(billfold, tampered.cookie!);

      await redis.set(keyOf(thief), (await redis.get(keyOf(victim)))!, {
        expiration: { type: 'PX', value: 60_000 },
      });
      await expectNoSessionOnEitherRoad(billfold, thief.cookie!);
      expect((await thief.get('/api/billogram/customer')).status).toBe(401);
    } finally {
      redis.destroy();
    }
  });
});

describe('replay after logout and after expiry', () => {
  let billfold: RunningBillfold;
  const clock = createTestClock(Date.now());
  beforeAll(async () => {
    billfold = await start({ SESSION_IDLE_TIMEOUT_S: '600', SESSION_ABSOLUTE_TIMEOUT_S: '3600' }, { clock });
  });

  async function expectDeadEverywhere(cookie: string) {
    await expectNoSessionOnEitherRoad(billfold, cookie);
    const replay = createCookieClient(billfold.url, 'billfold');
    replay.cookie = cookie;
    expectDocumentedError(await replay.post('/auth/billingplatform/logout'), 401, 'unauthenticated');
    expectDocumentedError(
      await replay.post('/auth/billbora/organization', { organizationId: 'org_demo' }),
      401,
      'unauthenticated',
    );
    expect(await billfold.billfold.repository.load(sessionIdOf(cookie))).toBeUndefined();
    // Signing in with the dead cookie starts afresh: nothing of the old session comes back.
    expect((await replay.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    expect(sessionIdOf(replay.cookie)).not.toBe(sessionIdOf(cookie));
    expect((await replay.get('/auth/session')).body.providers.billingplatform).toEqual({ connected: false });
  }

  it('refuses the cookie on every route after POST /auth/logout', async () => {
    const client = await signIn(billfold);
    const cookie = client.cookie!;
    expect((await client.post('/auth/logout')).status).toBe(204);
    expect(await billfold.billfold.repository.backend.get(`s:${sessionIdOf(cookie)}`)).toBeNull();
    await expectDeadEverywhere(cookie);
  });

  it('refuses the cookie after signing out of the last provider', async () => {
    const client = await signIn(billfold);
    const cookie = client.cookie!;
    expect((await client.post('/auth/billingplatform/logout')).status).toBe(200);
    expect(await billfold.billfold.repository.backend.get(`s:${sessionIdOf(cookie)}`)).toBeNull();
    await expectDeadEverywhere(cookie);
  });

  it('refuses the cookie after the idle timeout, measured on the server clock', async () => {
    const cookie = (await signIn(billfold)).cookie!;
    clock.advance(601_000);
    await expectDeadEverywhere(cookie);
  });

  it('refuses the cookie after the absolute timeout however active the session was', async () => {
    const client = await signIn(billfold);
    const cookie = client.cookie!;
    for (let minutes = 0; minutes < 60; minutes += 9) {
      clock.advance(9 * 60_000);
      expect((await client.get('/auth/session?touch=true')).body.authenticated).toBe(minutes + 9 < 60);
    }
    await expectDeadEverywhere(cookie);
  });
});

describe('a request still in flight at logout', () => {
  it('cannot bring the session back: a relayed call, an organization switch and a login answered after logout', async () => {
    const clock = createTestClock(Date.now());
    const proxy = await startGatedProxy(stack.sandbox.url);
    const billfold = await start(
      {
        BILLINGPLATFORM_BASE_URL: `${proxy.url}${SANDBOX_MOUNTS.billingplatform}`,
        BILLBORA_BASE_URL: `${proxy.url}${SANDBOX_MOUNTS.billbora}`,
        BILLOGRAM_BASE_URL: `${proxy.url}${SANDBOX_MOUNTS.billogram}`,
      },
      { clock },
    );
    const stored = (cookie: string) => billfold.billfold.repository.backend.get(`s:${sessionIdOf(cookie)}`);
    try {
      // A relayed call whose answer comes after logout, late enough that it would slide the idle timer.
      const relayed = await signIn(billfold);
      const relayedCookie = relayed.cookie!;
      proxy.close();
      const relay = relayed.get('/api/billingplatform/ACCOUNT/1001');
      await proxy.arrived();
      clock.advance(5 * 60_000);
      // The logout's own upstream call waits at the gate too; the session is destroyed before it.
      const logout = relayed.post('/auth/logout');
      await waitUntil(async () => (await stored(relayedCookie)) === null);
      proxy.open();
      expect((await logout).status).toBe(204);
      expect((await relay).status).toBe(200);
      // The write-back is sent on billfold's Redis connection before the answer ends, so this read,
      // on the same connection, sees whatever it did.
      expect(await stored(relayedCookie)).toBeNull();
      await expectNoSessionOnEitherRoad(billfold, relayedCookie);

      // An organization switch whose upstream exchange answers after logout.
      const switching = createCookieClient(billfold.url, 'billfold');
      await switching.post('/auth/billbora/login', demo.billbora);
      const switchingCookie = switching.cookie!;
      proxy.close();
      const switched = switching.post('/auth/billbora/organization', { organizationId: 'org_other' });
      await proxy.arrived();
      const other = createCookieClient(billfold.url, 'billfold');
      other.cookie = switchingCookie;
      expect((await other.post('/auth/logout')).status).toBe(204);
      proxy.open();
      expectDocumentedError(await switched, 401, 'provider_not_connected');
      expect(await stored(switchingCookie)).toBeNull();
      await expectNoSessionOnEitherRoad(billfold, switchingCookie);

      // A second login whose upstream answers after logout: refused, so nothing signed out comes back
      // and no new session starts behind the logout.
      const signing = await signIn(billfold);
      const signingCookie = signing.cookie!;
      proxy.close();
      const login = signing.post('/auth/billogram/login', demo.billogram);
      await proxy.arrived();
      const tab = createCookieClient(billfold.url, 'billfold');
      tab.cookie = signingCookie;
      const logout2 = tab.post('/auth/logout');
      await waitUntil(async () => (await stored(signingCookie)) === null);
      proxy.open();
      expect((await logout2).status).toBe(204);
      expectDocumentedError(await login, 401, 'unauthenticated');
      expect(await stored(signingCookie)).toBeNull();
      await expectNoSessionOnEitherRoad(billfold, signingCookie);
      expect((await signing.get('/auth/session')).body.authenticated).toBe(false);
    } finally {
      proxy.open();
      await proxy.stop();
    }
  });
});
