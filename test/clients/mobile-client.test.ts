import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import type { BillfoldProcess } from '../support/billfold-process.js';
import { freePort } from '../support/redis-server.js';
import { connectRedis } from '../support/redis.js';
import { NativeClient } from './native-client.js';
import { signedOut } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const COOKIE = 'billfold';

describe('a native mobile client (cookie jar, X-CSRF, no Origin) against billfold on Redis', () => {
  const stack = useStack({ instances: 0, env: { LOG_LEVEL: 'info' } });
  let billfold: BillfoldProcess | undefined;
  let port = '';
  let origin = '';

  beforeAll(async () => {
    // A fixed port, as an app has one fixed base URL: the restarted billfold is the same server to it.
    port = String(await freePort());
    origin = `http://127.0.0.1:${port}`;
    billfold = await stack.spawn({ PORT: port });
  }, 60_000);

  // The stack leaves the store's keys in place: they go once billfold has stopped writing them.
  afterAll(async () => {
    await billfold?.stop();
    const redis = await connectRedis();
    const keys = await redis.keys(`${stack.prefix}*`);
    if (keys.length > 0) await redis.del(keys);
    redis.destroy();
  }, 30_000);

  async function sessionKeys(): Promise<string[]> {
    const redis = await connectRedis();
    try {
      return await redis.keys(`${stack.prefix}s:*`);
    } finally {
      redis.destroy();
    }
  }

  it('is refused without X-CSRF: 1, and needs nothing else a browser sends', async () => {
    const app = new NativeClient(origin);
    const refused = await app.get('/auth/session', { 'x-csrf': '' });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('csrf_header_missing');
    const anonymous = await app.get('/auth/session');
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toEqual(signedOut());
    expect(anonymous.headers['set-cookie']).toBeUndefined();
  });

  it('signs in, relays, keeps working across a billfold restart, and signs out', async () => {
    const app = new NativeClient(origin);

    const first = await app.post('/auth/billingplatform/login', SANDBOX_DEMO_CREDENTIALS.billingplatform);
    expect(first.status).toBe(200);
    expect(first.body.providers.billingplatform).toMatchObject({ connected: true, user: 'demo' });
    const setCookie = first.headers['set-cookie']?.find((line) => line.startsWith(`${COOKIE}=`)) ?? '';
    expect(setCookie).toMatch(/; Path=\//);
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    const firstCookie = app.jar.get(COOKIE)?.value;
    expect(firstCookie).toBeDefined();

    // A second sign-in rotates the session ID: the jar takes the new cookie and the old one is dead.
    const second = await app.post('/auth/billbora/login', SANDBOX_DEMO_CREDENTIALS.billbora);
    expect(second.status).toBe(200);
    expect(second.body.providers).toMatchObject({
      billingplatform: { connected: true },
      billbora: { connected: true, mode: 'jwt', organization: { id: 'org_demo' } },
    });
    const cookie = app.jar.get(COOKIE)!.value;
    expect(cookie).not.toBe(firstCookie);
    const stale = new NativeClient(origin);
    stale.jar.set(COOKIE, { ...app.jar.get(COOKIE)!, value: firstCookie! });
    expect((await stale.get('/auth/session')).body).toEqual(signedOut());

    const account = await app.get('/api/billingplatform/ACCOUNT/1001');
    expect(account.status).toBe(200);
    expect(account.body.retrieveResponse[0].Name).toBe('Acme Corporation');
    const invoices = await app.get('/api/billbora/invoices/');
    expect(invoices.status).toBe(200);
    expect(invoices.body.results.map((invoice: { number: string }) => invoice.number)).toContain(
      'INV-2026-001',
    );
    // The upstream got billfold's credential, never the app's cookie.
    const upstreamSeen = JSON.stringify(stack.sandbox.billingplatform.requests.map((r) => r.headers));
    expect(upstreamSeen).not.toContain(cookie);
    expect(await sessionKeys()).toHaveLength(1);

    // billfold restarts (a deploy): in-flight state is gone, the session lives on in Redis.
    expect(await billfold!.stop()).toBe(0);
    await expect(app.get('/auth/session')).rejects.toThrow(/ECONNREFUSED/);
    billfold = await stack.spawn({ PORT: port });

    const resumed = await app.get('/auth/session');
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({
      authenticated: true,
      providers: { billingplatform: { connected: true }, billbora: { connected: true } },
    });
    expect((await app.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    expect((await app.get('/api/billbora/invoices/')).status).toBe(200);
    expect(app.jar.get(COOKIE)!.value).toBe(cookie);

    const loggedOut = await app.post('/auth/logout');
    expect(loggedOut.status).toBe(204);
    expect(app.jar.has(COOKIE)).toBe(false);
    expect(await sessionKeys()).toEqual([]);
    expect(stack.sandbox.billingplatform.sessions()).toEqual([]);

    // A copy of the cookie kept past logout (a backup, a second device) opens nothing.
    const replay = new NativeClient(origin);
    replay.jar.set(COOKIE, { ...stale.jar.get(COOKIE)!, value: cookie });
    const relayed = await replay.get('/api/billingplatform/ACCOUNT/1001');
    expect(relayed.status).toBe(401);
    expect(relayed.body.error.code).toBe('unauthenticated');
    expect((await replay.get('/auth/session')).body).toEqual(signedOut());
  }, 60_000);
});
