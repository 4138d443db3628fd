import { beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { connectRedis } from '../support/redis.js';
import { useStack } from '../support/stack.js';
import { createTestClock } from '../support/test-clock.js';

describe('failed-login limits, shared through Redis', () => {
  let sandbox: Sandbox;
  let first: RunningBillfold;
  let second: RunningBillfold;
  const stack = useStack({
    instances: 2,
    env: { LOGIN_MAX_FAILURES_PER_USER: '3', LOGIN_MAX_FAILURES_PER_IP: '6', LOGIN_FAILURE_WINDOW_S: '600' },
  });
  beforeAll(() => {
    ({ sandbox } = stack);
    [first, second] = stack.instances as [RunningBillfold, RunningBillfold];
  });

  const attempt = (billfold: RunningBillfold, provider: string, body: object) =>
    createCookieClient(billfold.url, billfold.config.session.cookieName).post(
      `/auth/${provider}/login`,
      body,
    );

  it('refuses a username after its failures on either instance, even with the right password, with Retry-After', async () => {
    const wrong = { ...demo.billingplatform, password: 'wrong' };
    expect((await attempt(first, 'billingplatform', wrong)).body.error.code).toBe('invalid_credentials');
    expect((await attempt(second, 'billingplatform', wrong)).body.error.code).toBe('invalid_credentials');
    expect((await attempt(first, 'billingplatform', wrong)).body.error.code).toBe('invalid_credentials');
    sandbox.billingplatform.clearRequests();

    const limited = await attempt(second, 'billingplatform', demo.billingplatform);
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: 'rate_limited', provider: 'billingplatform' });
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(500);
    expect(retryAfter).toBeLessThanOrEqual(600);
    // The upstream never saw the refused attempt.
    expect(sandbox.billingplatform.requests).toEqual([]);
    expect(limited.setCookies).toEqual([]);

    // The same name at another provider is counted apart.
    expect((await attempt(first, 'bill', demo.bill)).status).toBe(200);
  });

  it('refuses a client address after its failures across usernames', async () => {
    for (let i = 0; i < 3; i++) {
      const answer = await attempt(first, 'billogram', { apiUserId: `someone-${i}`, apiPassword: 'wrong' });
      expect(answer.body.error.code).toBe('invalid_credentials');
    }
    const limited = await attempt(second, 'billogram', demo.billogram);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBeTruthy();
    expect(first.logs.concat(second.logs).some((line) => line.includes('"event":"rate_limited"'))).toBe(true);
  });

  it('keeps no username or address in the clear in its Redis keys, and every key has a TTL', async () => {
    const redis = await connectRedis();
    const keys = await redis.keys(`${first.config.store.keyPrefix}rl:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).not.toMatch(/demo|someone|127\.0\.0\.1/);
      expect(await redis.pTTL(key)).toBeGreaterThan(0);
    }
    redis.destroy();
  });
});

describe('relay limit per session', () => {
  const clock = createTestClock(Date.now());
  let first: RunningBillfold;
  let second: RunningBillfold;
  const stack = useStack({ instances: 2, clock, env: { RELAY_RATE_LIMIT: '5', RELAY_RATE_WINDOW_S: '60' } });
  beforeAll(() => {
    [first, second] = stack.instances as [RunningBillfold, RunningBillfold];
  });

  it('answers 429 with Retry-After past the limit, counting calls made on every instance', async () => {
    const onFirst = createCookieClient(first.url, first.config.session.cookieName);
    await onFirst.post('/auth/billingplatform/login', demo.billingplatform);
    const onSecond = createCookieClient(second.url, second.config.session.cookieName);
    onSecond.cookie = onFirst.cookie;
    const relay = (client: typeof onFirst) => client.get('/api/billingplatform/ACCOUNT/1001');

    for (let i = 0; i < 3; i++) expect((await relay(onFirst)).status).toBe(200);
    clock.advance(1100);
    expect((await relay(onFirst)).status).toBe(200);
    // The first instance has now told the store about its 4 calls.
    const redis = await connectRedis();
    for (let i = 0; i < 100; i++) {
      const keys = await redis.keys(`${first.config.store.keyPrefix}rl:relay:*`);
      if (keys[0] && (await redis.get(keys[0])) === '4') break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    redis.destroy();

    expect((await relay(onSecond)).status).toBe(200);
    // The flush from the second instance lands in the background; the sixth call is refused once it has.
    let limited;
    for (let i = 0; i < 100; i++) {
      limited = await relay(onSecond);
      if (limited.status === 429) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(limited?.status).toBe(429);
    expect(limited?.body.error.code).toBe('rate_limited');
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThan(0);

    // Another session is not affected.
    const other = createCookieClient(first.url, first.config.session.cookieName);
    await other.post('/auth/billingplatform/login', demo.billingplatform);
    expect((await relay(other)).status).toBe(200);
  });
});
