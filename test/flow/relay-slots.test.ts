import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { useStack } from '../support/stack.js';

describe("a relayed call's connection slots", () => {
  const stack = useStack({
    instances: 0,
    store: 'embedded',
    env: { SESSION_STORE: 'memory', RELAY_MAX_CONCURRENT_PER_SESSION: '1' },
  });

  it('are given back when the client leaves while its session is still being read', async () => {
    // Session reads wait at this gate while it is closed, so a client can leave during one.
    let gate: Promise<void> | undefined;
    let reading: (() => void) | undefined;
    const backend = createMemoryBackend({ clock: systemClock, maxEntries: 1000, sweepIntervalMs: 0 });
    const get = backend.get.bind(backend);
    backend.get = async (key) => {
      if (gate && key.includes('s:')) {
        reading?.();
        await gate;
      }
      return get(key);
    };
    const billfold = await stack.start({}, { backend });
    const client = stack.client();
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
