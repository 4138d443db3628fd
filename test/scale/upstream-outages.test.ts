import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import {
  createCookieClient,
  startBillfold,
  type CookieClient,
  type RunningBillfold,
} from '../support/billfold-harness.js';
import { startGatedProxy, type GatedProxy } from '../support/gated-proxy.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { outcomeOf, timed } from './scale-support.js';

const UPSTREAM_TIMEOUT_MS = 800;
// Generous, for a loaded 2-core CI machine.
const MARGIN_MS = 1500;
// A hanging call must not be given up long before its deadline; how early exactly is left to the
// timers (undici's coarse ones, the event loop's lag), which a loaded machine stretches both ways.
const EARLIEST_MS = UPSTREAM_TIMEOUT_MS / 2;

describe('one upstream failing while the others serve', () => {
  let sandbox: Sandbox;
  // BillingPlatform is reached through a proxy the test can take away, to refuse connections.
  let proxy: GatedProxy;
  let billfold: RunningBillfold;
  let client: CookieClient;

  beforeAll(async () => {
    sandbox = await startSandbox();
    proxy = await startGatedProxy(sandbox.url);
    billfold = await startBillfold({
      ...sandbox.env,
      BILLINGPLATFORM_BASE_URL: `${proxy.url}/billingplatform/demo/rest/2.0`,
      UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS),
      REDIS_URL,
      REDIS_KEY_PREFIX: uniquePrefix(),
    });
    client = createCookieClient(billfold.url, billfold.config.session.cookieName);
    expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
    expect((await client.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
  });
  afterAll(async () => {
    await billfold.close();
    await proxy.stop();
    await sandbox.close();
  });
  beforeEach(() => sandbox.reset());

  it('answers 504 upstream_timeout at UPSTREAM_TIMEOUT_MS for a hanging upstream, while another relays at once', async () => {
    sandbox.billingplatform.hangNext(Infinity);
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
    sandbox.reset();
    expect((await client.get('/auth/session')).body.providers.billingplatform.connected).toBe(true);
    expect((await client.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
  });

  it('answers 502 upstream_unavailable at once for an upstream that refuses connections, while another relays', async () => {
    await proxy.stop();
    const refused = await timed(() => client.get('/api/billingplatform/ACCOUNT/1001'));
    expect(outcomeOf(refused.result)).toBe('502 upstream_unavailable');
    expect(refused.result.body.error.provider).toBe('billingplatform');
    expect(refused.ms).toBeLessThan(MARGIN_MS);
    expect(outcomeOf(await client.get('/api/billogram/customer'))).toBe('200');
    expect((await client.get('/auth/session')).body.providers.billingplatform.connected).toBe(true);
  });
});
