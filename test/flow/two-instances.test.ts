import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { spawnBillfold, type BillfoldProcess } from '../support/billfold-process.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';

describe('two billfold processes on one Redis', () => {
  let sandbox: Sandbox;
  let first: BillfoldProcess;
  let second: BillfoldProcess;

  beforeAll(async () => {
    sandbox = await startSandbox();
    const env = { ...sandbox.env, REDIS_URL, REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'info' };
    [first, second] = await Promise.all([spawnBillfold(env), spawnBillfold(env)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([first.stop(), second.stop()]);
    await sandbox.close();
  });

  it('signs in on one, relays on the other, and a logout on either ends the session on both', async () => {
    const onFirst = createCookieClient(first.url, 'billfold');
    await onFirst.post('/auth/billingplatform/login', SANDBOX_DEMO_CREDENTIALS.billingplatform);
    const onSecond = createCookieClient(second.url, 'billfold');
    onSecond.cookie = onFirst.cookie;
    expect((await onSecond.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    expect((await onSecond.post('/auth/logout')).status).toBe(204);
    expect((await onFirst.get('/api/billingplatform/ACCOUNT/1001')).body.error.code).toBe('unauthenticated');
  });

  it('lets exactly one Billbora renewal through for 50 concurrent relays split across both processes', async () => {
    const onFirst = createCookieClient(first.url, 'billfold');
    await onFirst.post('/auth/billbora/login', SANDBOX_DEMO_CREDENTIALS.billbora);
    const onSecond = createCookieClient(second.url, 'billfold');
    onSecond.cookie = onFirst.cookie;
    const before = sandbox.billbora.refreshCalls();
    sandbox.billbora.expireAccessTokens();

    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? onFirst : onSecond).get('/api/billbora/invoices/')),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect(sandbox.billbora.refreshCalls() - before).toBe(1);
    expect(sandbox.billbora.revokedFamilies()).toEqual([]);
    const view = await onSecond.get('/auth/session');
    expect(view.body.providers.billbora.connected).toBe(true);
  });
});
