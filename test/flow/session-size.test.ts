import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { createCookieClient, startBillfold, type RunningBillfold } from '../support/billfold-harness.js';
import { connectRedis, REDIS_URL, uniquePrefix } from '../support/redis.js';

describe('the stored session', () => {
  let sandbox: Sandbox;
  let billfold: RunningBillfold;
  beforeAll(async () => {
    sandbox = await startSandbox();
    billfold = await startBillfold({ ...sandbox.env, REDIS_URL, REDIS_KEY_PREFIX: uniquePrefix() });
  });
  afterAll(async () => {
    await billfold.close();
    await sandbox.close();
  });

  it('is at most 2 KiB in Redis with all four providers connected (Billbora with its Supabase refresh token)', async () => {
    const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
    for (const [provider, body] of [
      ['billingplatform', demo.billingplatform],
      ['bill', demo.bill],
      ['billogram', demo.billogram],
      ['billbora', demo.billbora],
    ] as const) {
      expect((await client.post(`/auth/${provider}/login`, body)).status).toBe(200);
    }
    const view = await client.get('/auth/session');
    expect(Object.values(view.body.providers).every((p) => (p as { connected: boolean }).connected)).toBe(
      true,
    );

    const redis = await connectRedis();
    const keys = await redis.keys(`${billfold.config.store.keyPrefix}s:*`);
    expect(keys).toHaveLength(1);
    const bytes = await redis.strLen(keys[0]!);
    redis.destroy();
    console.log(`stored session with four providers: ${bytes} bytes`);
    expect(bytes).toBeLessThanOrEqual(2048);
  });
});
