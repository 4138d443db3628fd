import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import {
  createCookieClient,
  startBillfold,
  type CookieClient,
  type RunningBillfold,
} from '../support/billfold-harness.js';
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

  /** Signs in to all four providers and answers the stored session's size in bytes. */
  const sizeWithFourProviders = async (
    instance: RunningBillfold,
    afterBill?: (client: CookieClient) => Promise<void>,
  ) => {
    const client = createCookieClient(instance.url, instance.config.session.cookieName);
    for (const [provider, body] of [
      ['billingplatform', demo.billingplatform],
      ['bill', demo.bill],
      ['billogram', demo.billogram],
      ['billbora', demo.billbora],
    ] as const) {
      expect((await client.post(`/auth/${provider}/login`, body)).status).toBe(200);
      if (provider === 'bill') await afterBill?.(client);
    }
    const view = await client.get('/auth/session');
    expect(Object.values(view.body.providers).every((p) => (p as { connected: boolean }).connected)).toBe(
      true,
    );

    const redis = await connectRedis();
    const sessionId = decodeURIComponent(client.cookie!.split('=')[1]!).slice(2).split('.')[0]!;
    const bytes = await redis.strLen(`${instance.config.store.keyPrefix}s:${sessionId}`);
    expect(bytes).toBeGreaterThan(0);
    redis.destroy();
    return bytes;
  };

  it('is at most 512 bytes in Redis with one provider connected (BillingPlatform)', async () => {
    const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    const cookie = decodeURIComponent(client.cookie!.split('=')[1]!);
    const redis = await connectRedis();
    const bytes = await redis.strLen(`${billfold.config.store.keyPrefix}s:${cookie.slice(2).split('.')[0]!}`);
    redis.destroy();
    console.log(`stored session with one provider: ${bytes} bytes`);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(512);
  });

  it('is at most 2 KiB in Redis with all four providers connected (Billbora with its Supabase refresh token)', async () => {
    const bytes = await sizeWithFourProviders(billfold);
    console.log(`stored session with four providers: ${bytes} bytes`);
    expect(bytes).toBeLessThanOrEqual(2048);
  });

  it('is at most 2 KiB with BILL v3 stepped up and its rememberMeId kept', async () => {
    const v3 = await startBillfold({
      ...sandbox.env,
      ...sandbox.billV3Env,
      REDIS_URL,
      REDIS_KEY_PREFIX: uniquePrefix(),
    });
    try {
      const bytes = await sizeWithFourProviders(v3, async (client) => {
        const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
        const validate = await client.post('/auth/bill/mfa/validate', {
          challengeId,
          token: demo.billMfaCode,
          rememberMe: true,
        });
        expect(validate.body.providers.bill.trusted).toBe(true);
      });
      console.log(`stored session with four providers, BILL v3 trusted and remembered: ${bytes} bytes`);
      expect(bytes).toBeLessThanOrEqual(2048);
    } finally {
      await v3.close();
    }
  });
});
