import { beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { startOwnRedis, type OwnRedis } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';

const STORE_TIMEOUT_MS = 300;
// What "quickly" means on a loaded 2-core CI machine: the timeout plus a generous margin.
const ANSWER_WITHIN_MS = STORE_TIMEOUT_MS + 1500;

describe('when the session store is down', () => {
  // A Redis of the suite's own, to stop and freeze.
  let redis: OwnRedis;
  beforeAll(async () => {
    redis = await startOwnRedis();
    // After the stack's own teardown: billfold stops before its store does.
    return () => redis.dispose();
  });
  const stack = useStack(() => ({
    store: { url: redis.url },
    env: { STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) },
  }));

  const timed = async <T>(run: () => Promise<T>) => {
    const started = performance.now();
    const result = await run();
    return { result, ms: performance.now() - started };
  };

  it('answers 503 session_store_unavailable quickly, sets no cookie, loses nothing, and recovers by itself', async () => {
    const client = stack.client();
    expect(
      (await client.post('/auth/billingplatform/login', SANDBOX_DEMO_CREDENTIALS.billingplatform)).status,
    ).toBe(200);
    const cookie = client.cookie!;

    await redis.stop();
    const stranger = stack.client();
    const outage = [
      await timed(() => client.get('/auth/session')),
      await timed(() => client.get('/api/billingplatform/ACCOUNT/1001')),
      await timed(() =>
        stranger.post('/auth/billingplatform/login', SANDBOX_DEMO_CREDENTIALS.billingplatform),
      ),
      await timed(() => client.post('/auth/logout')),
    ];
    console.info(
      `store down: ${outage.map(({ result, ms }) => `${result.status} in ${ms.toFixed(0)} ms`).join(', ')} (STORE_TIMEOUT_MS ${STORE_TIMEOUT_MS})`,
    );
    for (const { result, ms } of outage) {
      expect(result.status).toBe(503);
      expect(result.body.error.code).toBe('session_store_unavailable');
      expect(result.setCookies).toEqual([]);
      expect(ms).toBeLessThan(ANSWER_WITHIN_MS);
    }
    expect((await client.get('/readyz')).status).toBe(503);
    expect((await client.get('/healthz')).status).toBe(200);
    // The failed logout must not have dropped the cookie on the client side either.
    expect(client.cookie).toBe(cookie);

    await redis.start();
    let view;
    for (let attempt = 0; attempt < 50; attempt++) {
      view = await client.get('/auth/session');
      if (view.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(view?.body).toMatchObject({
      authenticated: true,
      providers: { billingplatform: { connected: true } },
    });
    expect((await client.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    expect((await client.get('/readyz')).status).toBe(200);
    expect(stack.billfold.logs.some((line) => line.includes('"event":"store_unavailable"'))).toBe(true);
  });

  it('answers within the store timeout when Redis accepts connections but never replies', async () => {
    const client = stack.client();
    expect(
      (await client.post('/auth/billingplatform/login', SANDBOX_DEMO_CREDENTIALS.billingplatform)).status,
    ).toBe(200);
    redis.pause();
    try {
      const { result, ms } = await timed(() => client.get('/api/billingplatform/ACCOUNT/1001'));
      console.info(
        `store frozen: ${result.status} in ${ms.toFixed(0)} ms (STORE_TIMEOUT_MS ${STORE_TIMEOUT_MS})`,
      );
      expect(result.status).toBe(503);
      expect(result.body.error.code).toBe('session_store_unavailable');
      expect(ms).toBeLessThan(ANSWER_WITHIN_MS);
    } finally {
      redis.resume();
    }
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
      status = (await client.get('/api/billingplatform/ACCOUNT/1001')).status;
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(200);
  });
});
