import { describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, type CookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { connectRedis } from '../support/redis.js';
import { startStack, useStack } from '../support/stack.js';

describe('the stored session', () => {
  const stack = useStack();

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
    const client = stack.client();
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    const cookie = decodeURIComponent(client.cookie!.split('=')[1]!);
    const redis = await connectRedis();
    const bytes = await redis.strLen(
      `${stack.billfold.config.store.keyPrefix}s:${cookie.slice(2).split('.')[0]!}`,
    );
    redis.destroy();
    console.log(`stored session with one provider: ${bytes} bytes`);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(512);
  });

  it('is at most 2 KiB in Redis with all four providers connected (Billbora with its Supabase refresh token)', async () => {
    const bytes = await sizeWithFourProviders(stack.billfold);
    console.log(`stored session with four providers: ${bytes} bytes`);
    expect(bytes).toBeLessThanOrEqual(2048);
  });

  it('is at most 2 KiB with BILL v3 stepped up and its rememberMeId kept', async () => {
    const v3 = await startStack({ env: (sandbox) => sandbox.billV3Env });
    try {
      const bytes = await sizeWithFourProviders(v3.billfold, async (client) => {
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
