import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCookieClient, type CookieClient } from '../support/billfold-harness.js';
import { startGatedProxy, type GatedProxy } from '../support/gated-proxy.js';
import { DEMO_LOGINS, useStack } from '../support/stack.js';
import { outcomeOf, timed } from './scale-support.js';

const UPSTREAM_TIMEOUT_MS = 800;
// Generous, for a loaded 2-core CI machine.
const MARGIN_MS = 1500;
// A hanging call must not be given up long before its deadline; how early exactly is left to the
// timers (undici's coarse ones, the event loop's lag), which a loaded machine stretches both ways.
const EARLIEST_MS = UPSTREAM_TIMEOUT_MS / 2;

describe('one upstream failing while the others serve', () => {
  // BillingPlatform is reached through a proxy the test can take away, to refuse connections.
  let proxy: GatedProxy;
  const stack = useStack({
    env: async (sandbox) => {
      proxy = await startGatedProxy(sandbox.url);
      return {
        BILLINGPLATFORM_BASE_URL: `${proxy.url}/billingplatform/demo/rest/2.0`,
        UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS),
      };
    },
  });
  let client: CookieClient;

  beforeAll(async () => {
    client = await stack.signIn(['billingplatform', 'billogram']);
  });
  afterAll(() => proxy.stop());
  beforeEach(() => stack.sandbox.reset());

  it('answers 504 upstream_timeout at UPSTREAM_TIMEOUT_MS for a hanging upstream, while another relays at once', async () => {
    stack.sandbox.billingplatform.hangNext(Infinity);
    const hanging = Array.from({ length: 4 }, () =>
      timed(() => client.get('/api/billingplatform/ACCOUNT/1001')).then((answer) => ({
        ...answer,
        settledAt: performance.now(),
      })),
    );
    // Billogram answers every call while those four are still waiting on BillingPlatform.
    const others = [];
    for (let i = 0; i < 8; i++) others.push(await timed(() => client.get('/api/billogram/customer')));
    const otherDoneAt = performance.now();
    expect(others.map(({ result }) => outcomeOf(result))).toEqual(Array(8).fill('200'));

    for (const { result, ms, settledAt } of await Promise.all(hanging)) {
      expect(outcomeOf(result)).toBe('504 upstream_timeout');
      expect(result.body.error.provider).toBe('billingplatform');
      expect(ms).toBeGreaterThanOrEqual(EARLIEST_MS);
      expect(ms).toBeLessThan(UPSTREAM_TIMEOUT_MS + MARGIN_MS);
      expect(settledAt).toBeGreaterThan(otherDoneAt);
    }
    // A slow upstream is not a signed-out one.
    stack.sandbox.reset();
    expect((await client.get('/auth/session')).body.providers.billingplatform.connected).toBe(true);
    expect((await client.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
  });

  it('answers 502 upstream_unavailable at once for an upstream that refuses connections, while another relays', async () => {
    // A proxy of its own to take away, so the other test's upstream stays.
    const refusing = await startGatedProxy(stack.sandbox.url);
    const instance = await stack.start({
      BILLINGPLATFORM_BASE_URL: `${refusing.url}/billingplatform/demo/rest/2.0`,
    });
    try {
      const signedIn = createCookieClient(instance.url, instance.config.session.cookieName);
      expect((await signedIn.post('/auth/billingplatform/login', DEMO_LOGINS.billingplatform)).status).toBe(
        200,
      );
      expect((await signedIn.post('/auth/billogram/login', DEMO_LOGINS.billogram)).status).toBe(200);
      await refusing.stop();
      const refused = await timed(() => signedIn.get('/api/billingplatform/ACCOUNT/1001'));
      expect(outcomeOf(refused.result)).toBe('502 upstream_unavailable');
      expect(refused.result.body.error.provider).toBe('billingplatform');
      expect(refused.ms).toBeLessThan(MARGIN_MS);
      expect(outcomeOf(await signedIn.get('/api/billogram/customer'))).toBe('200');
      expect((await signedIn.get('/auth/session')).body.providers.billingplatform.connected).toBe(true);
    } finally {
      await refusing.stop();
    }
  });
});
