import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { createCookieClient, startBillfold, type RunningBillfold } from '../support/billfold-harness.js';

describe("a relayed call's connection slots", () => {
  let sandbox: Sandbox;
  let billfold: RunningBillfold;
  // Session reads wait at this gate while it is closed, so a client can leave during one.
  let gate: Promise<void> | undefined;
  let reading: (() => void) | undefined;

  beforeAll(async () => {
    sandbox = await startSandbox();
    const backend = createMemoryBackend({ clock: systemClock, maxEntries: 1000, sweepIntervalMs: 0 });
    const get = backend.get.bind(backend);
    backend.get = async (key) => {
      if (gate && key.includes('s:')) {
        reading?.();
        await gate;
      }
      return get(key);
    };
    billfold = await startBillfold(
      { ...sandbox.env, SESSION_STORE: 'memory', RELAY_MAX_CONCURRENT_PER_SESSION: '1' },
      { backend },
    );
  });
  afterAll(async () => {
    await billfold.close();
    await sandbox.close();
  });

  it('are given back when the client leaves while its session is still being read', async () => {
    const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
    expect((await client.post('/auth/billogram/login', SANDBOX_DEMO_CREDENTIALS.billogram)).status).toBe(200);
    let open: () => void = () => undefined;
    gate = new Promise((resolve) => (open = resolve));
    const started = new Promise<void>((resolve) => (reading = resolve));
    const { hostname, port } = new URL(billfold.url);
    const abandoned = http.get({
      hostname,
      port,
      path: '/api/billogram/customer/1',
      headers: { cookie: client.cookie!, 'x-csrf': '1' },
    });
    abandoned.on('error', () => undefined);
    await started;
    abandoned.destroy();
    // The server sees the client gone before the read ends.
    await new Promise((resolve) => setTimeout(resolve, 100));
    gate = undefined;
    open();
    await new Promise((resolve) => setTimeout(resolve, 100));

    // With one slot per session, a slot kept by the abandoned call would refuse every later one.
    for (let i = 0; i < 3; i++) {
      const answer = await client.get('/api/billogram/customer/1');
      expect(answer.status, answer.text).toBe(200);
    }
  });
});
