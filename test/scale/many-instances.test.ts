import { beforeAll, describe, expect, it } from 'vitest';
import { createCookieClient } from '../support/billfold-harness.js';
import type { BillfoldProcess } from '../support/billfold-process.js';
import { signedOut } from '../support/security-expect.js';
import { DEMO_LOGINS as demo, useStack } from '../support/stack.js';
import { outcomeOf } from './scale-support.js';

describe('three billfold processes on one Redis', () => {
  const stack = useStack({
    instances: 0,
    env: {
      LOGIN_MAX_FAILURES_PER_USER: '3',
      // One session sends 60 relays at once here to test single-flight renewal, so its share is wider.
      RELAY_MAX_CONCURRENT_PER_SESSION: '64',
    },
  });
  let instances: BillfoldProcess[];
  const on = (index: number, cookie?: string) => {
    const client = createCookieClient(instances[index % instances.length]!.url, 'billfold');
    client.cookie = cookie;
    return client;
  };

  beforeAll(async () => {
    instances = await Promise.all([stack.spawn(), stack.spawn(), stack.spawn()]);
  }, 60_000);

  it('signs in on one, relays on another, and a logout on the third ends the session on all three', async () => {
    const first = on(0);
    expect((await first.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    expect((await first.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    const second = on(1, first.cookie);
    expect((await second.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    expect((await second.get('/api/billogram/customer')).status).toBe(200);
    const third = on(2, first.cookie);
    expect((await third.post('/auth/logout')).status).toBe(204);
    for (const index of [0, 1, 2]) {
      const client = on(index, first.cookie);
      expect(outcomeOf(await client.get('/api/billingplatform/ACCOUNT/1001'))).toBe('401 unauthenticated');
      expect((await client.get('/auth/session')).body).toEqual(signedOut());
    }
  });

  it('lets exactly one Billbora renewal through for 60 concurrent relays spread over the three', async () => {
    const first = on(0);
    expect((await first.post('/auth/billbora/login', demo.billbora)).status).toBe(200);
    const before = stack.sandbox.billbora.refreshCalls();
    stack.sandbox.billbora.expireAccessTokens();

    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => on(i, first.cookie).get('/api/billbora/invoices/')),
    );
    expect(answers.map(outcomeOf)).toEqual(Array(60).fill('200'));
    expect(stack.sandbox.billbora.refreshCalls() - before).toBe(1);
    expect(stack.sandbox.billbora.revokedFamilies()).toEqual([]);
    expect((await on(2, first.cookie).get('/auth/session')).body.providers.billbora.connected).toBe(true);
  });

  it('counts failed logins for a username across all three, and refuses it everywhere past the limit', async () => {
    const wrong = { ...demo.billogram, apiPassword: 'wrong' };
    for (const index of [0, 1, 2]) {
      expect(outcomeOf(await on(index).post('/auth/billogram/login', wrong))).toBe('401 invalid_credentials');
    }
    for (const index of [0, 1, 2]) {
      const refused = await on(index).post('/auth/billogram/login', demo.billogram);
      expect(outcomeOf(refused)).toBe('429 rate_limited');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });
});
