import { describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { connectRedis } from '../support/redis.js';
import { leaksOf } from '../support/secrets.js';
import { useStack } from '../support/stack.js';
import { signedOut } from '../support/security-expect.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billingplatform;

describe.each([
  ['the embedded store', 'embedded'],
  ['Redis', 'redis'],
] as const)('BillingPlatform end to end on %s', (storeName, store) => {
  const stack = useStack({ store });

  it('signs in, shows the session, relays GET and POST with the upstream session id, signs out, and refuses the old cookie', async () => {
    const client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);

    const anonymous = await client.get('/auth/session');
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toEqual(signedOut());
    expect(anonymous.setCookies).toEqual([]);

    const login = await client.post('/auth/billingplatform/login', {
      username: demo.username,
      password: demo.password,
    });
    expect(login.status).toBe(200);
    expect(login.body.authenticated).toBe(true);
    expect(login.body.providers.billingplatform).toMatchObject({ connected: true, user: demo.username });
    expect(login.setCookies).toHaveLength(1);
    const cookieLine = login.setCookies[0]!;
    expect(cookieLine).toMatch(/^billfold=s%3A/);
    expect(cookieLine).toMatch(/; Path=\//);
    expect(cookieLine).toMatch(/; HttpOnly/);
    expect(cookieLine).toMatch(/; SameSite=Strict/);
    expect(cookieLine).not.toMatch(/Domain=/i);
    expect(cookieLine).not.toMatch(/Expires=|Max-Age=/i);
    const upstreamSessionId = stack.sandbox.billingplatform.sessions().at(-1);
    expect(upstreamSessionId).toBeTruthy();

    const view = await client.get('/auth/session');
    expect(view.body).toMatchObject({
      authenticated: true,
      providers: { billingplatform: { connected: true } },
    });
    expect(Date.parse(view.body.expiresAt)).toBeGreaterThan(Date.now());
    expect(Date.parse(view.body.idleExpiresAt)).toBeGreaterThan(Date.now());
    expect(view.headers.get('cache-control')).toBe('no-store');

    stack.sandbox.billingplatform.clearRequests();
    const read = await client.get('/api/billingplatform/ACCOUNT/1001', { accept: 'application/json' });
    expect(read.status).toBe(200);
    expect(read.body.retrieveResponse).toBeDefined();
    expect(read.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
    expect(read.headers.get('x-content-type-options')).toBe('nosniff');
    const seen = stack.sandbox.billingplatform.requests.at(-1)!;
    expect(seen.headers.sessionid).toBe(upstreamSessionId);
    expect(seen.headers.cookie).toBeUndefined();
    expect(seen.headers['x-csrf']).toBeUndefined();

    const created = await client.post('/api/billingplatform/ACCOUNT', { brmObjects: { Name: 'Acme' } });
    expect(created.status).toBe(200);
    expect(created.body.createResponse[0].Id).toBeDefined();
    expect(stack.sandbox.billingplatform.requests.at(-1)!.body).toContain('Acme');

    const oldCookie = client.cookie!;
    const logout = await client.post('/auth/logout');
    expect(logout.status).toBe(204);
    expect(logout.setCookies.join()).toMatch(/billfold=;.*Expires=Thu, 01 Jan 1970/);
    expect(
      stack.sandbox.billingplatform.requests.some((r) => r.method === 'POST' && /\/logout$/.test(r.path)),
    ).toBe(true);

    const replay = await client.get('/api/billingplatform/ACCOUNT/1001', { cookie: oldCookie });
    expect(replay.status).toBe(401);
    expect(replay.body.error.code).toBe('unauthenticated');
    const replayView = await client.get('/auth/session', { cookie: oldCookie });
    expect(replayView.body).toEqual(signedOut());

    expect(leaksOf([demo.password, upstreamSessionId!], stack.billfold.logs)).toEqual([]);
    // The session id travels only in billfold's own Set-Cookie; it is never logged, not even hashed-then-cut.
    const sessionId = decodeURIComponent(oldCookie.split('=')[1]!).slice(2).split('.')[0]!;
    expect(stack.billfold.logs.filter((line) => line.includes(sessionId))).toEqual([]);
  });

  it.runIf(storeName === 'Redis')('holds sessions only as ciphertext with a TTL in Redis', async () => {
    const client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);
    await client.post('/auth/billingplatform/login', { username: demo.username, password: demo.password });
    const redis = await connectRedis();
    const keys = await redis.keys(`${stack.billfold.config.store.keyPrefix}s:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      const value = (await redis.get(key)) ?? '';
      expect(value).toMatch(/^k1\.[A-Za-z0-9_-]+$/);
      for (const upstreamId of stack.sandbox.billingplatform.sessions())
        expect(value).not.toContain(upstreamId);
      expect(value).not.toContain(demo.username);
      expect(await redis.pTTL(key)).toBeGreaterThan(0);
    }
    redis.destroy();
  });
});

describe('BillingPlatform logout ends the upstream session whichever form the server accepts', () => {
  const stack = useStack({ store: 'embedded' });

  const signInAndOut = async () => {
    const client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);
    await client.post('/auth/billingplatform/login', demo);
    const sessionId = stack.sandbox.billingplatform.sessions().at(-1)!;
    stack.sandbox.billingplatform.clearRequests();
    expect((await client.post('/auth/billingplatform/logout')).status).toBe(200);
    return { sessionId, logouts: stack.sandbox.billingplatform.requests.filter((r) => r.path === '/logout') };
  };

  it('with the `sessionid` header, as every other call: one logout call', async () => {
    const { sessionId, logouts } = await signInAndOut();
    expect(logouts).toHaveLength(1);
    expect(logouts[0]?.headers.sessionid).toBe(sessionId);
    expect(logouts[0]?.headers.authorization).toBeUndefined();
    expect(stack.sandbox.billingplatform.sessions()).not.toContain(sessionId);
  });

  it('with `Authorization: Session <SessionID>` only, as the vendor’s logout example shows', async () => {
    stack.sandbox.billingplatform.setLogoutForm('authorization');
    const { sessionId, logouts } = await signInAndOut();
    expect(logouts.map((r) => r.headers.authorization ?? null)).toEqual([null, `Session ${sessionId}`]);
    expect(stack.sandbox.billingplatform.sessions()).not.toContain(sessionId);
    stack.sandbox.reset();
  });

  it('asks at most twice when the upstream session is already gone', async () => {
    const client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);
    await client.post('/auth/billingplatform/login', demo);
    stack.sandbox.billingplatform.expireAllSessions();
    stack.sandbox.billingplatform.clearRequests();
    expect((await client.post('/auth/billingplatform/logout')).status).toBe(200);
    expect(stack.sandbox.billingplatform.requests.filter((r) => r.path === '/logout')).toHaveLength(2);
  });
});

describe('GET /auth/session when signed out', () => {
  // Of the sandbox's configuration, BillingPlatform and Billogram alone: everything else is unset.
  const stack = useStack({
    store: 'embedded',
    env: ({ env }) => ({
      ...Object.fromEntries(Object.keys(env).map((name) => [name, undefined])),
      BILLINGPLATFORM_BASE_URL: env.BILLINGPLATFORM_BASE_URL,
      BILLOGRAM_BASE_URL: env.BILLOGRAM_BASE_URL,
      ALLOW_INSECURE_UPSTREAMS: env.ALLOW_INSECURE_UPSTREAMS,
    }),
  });

  it('lists the configured providers, and only those, none connected', async () => {
    const client = stack.client();
    expect((await client.get('/auth/session')).body).toEqual({
      authenticated: false,
      providers: { billingplatform: { connected: false }, billogram: { connected: false } },
    });
    // Signing out of the last provider answers the same view.
    await client.post('/auth/billogram/login', SANDBOX_DEMO_CREDENTIALS.billogram);
    expect((await client.post('/auth/billogram/logout')).body).toEqual(
      signedOut(['billingplatform', 'billogram']),
    );
  });
});
