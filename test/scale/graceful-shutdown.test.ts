import { describe, expect, it } from 'vitest';
import { createCookieClient } from '../support/billfold-harness.js';
import { startGatedProxy } from '../support/gated-proxy.js';
import { DEMO_LOGINS as demo, useStack } from '../support/stack.js';
import { eventually, outcomeOf } from './scale-support.js';

// Once its last request has answered, billfold closes Redis and exits; this is how long that may take
// on a loaded 2-core CI machine.
const EXIT_WITHIN_MS = 3000;

describe('SIGTERM under load', () => {
  const stack = useStack({ instances: 0 });

  it('finishes every request in flight, refuses new connections, closes Redis and exits 0 promptly', async () => {
    const proxy = await startGatedProxy(stack.sandbox.url);
    const billfold = await stack.spawn({
      BILLINGPLATFORM_BASE_URL: `${proxy.url}/billingplatform/demo/rest/2.0`,
    });
    try {
      const clients = Array.from({ length: 4 }, () => createCookieClient(billfold.url, 'billfold'));
      for (const client of clients) {
        expect((await client.post('/auth/billingplatform/login', demo.billingplatform)).status).toBe(200);
      }
      // An idle keep-alive connection (left by the logins) must not hold the shutdown open either.
      proxy.close();
      const inFlight = clients.map((client) => client.get('/api/billingplatform/ACCOUNT/1001'));
      await eventually('every request waiting upstream', () =>
        Promise.resolve(proxy.waiting() === clients.length ? true : undefined),
      );
      const exited = billfold.stop('SIGTERM');

      await eventually(
        'new connections refused',
        () =>
          fetch(`${billfold.url}/healthz`, { headers: { connection: 'close' } }).then(
            () => undefined,
            () => true,
          ),
        { timeoutMs: 2000, intervalMs: 20 },
      );
      proxy.open();
      const answers = await Promise.all(inFlight);
      const answeredAt = performance.now();
      expect(answers.map(outcomeOf)).toEqual(['200', '200', '200', '200']);
      expect(await exited).toBe(0);
      expect(performance.now() - answeredAt).toBeLessThan(EXIT_WITHIN_MS);
      // Logged after the upstream pool and the Redis connection are closed.
      expect(billfold.lines.some((line) => line.includes('"billfold stopped"'))).toBe(true);
    } finally {
      proxy.open();
      await billfold.stop('SIGKILL');
      await proxy.stop();
    }
  });
});
