import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { createMemoryBackend, type MemoryBackend } from '../../src/session/memory-backend.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../support/scripted-upstream.js';
import { useStack } from '../support/stack.js';

/** The embedded store, with switches that make one kind of call fail. */
function breakable() {
  const backend = createMemoryBackend({ clock: systemClock, maxEntries: 1000 });
  const failing = { sessionWrites: false, indexAdds: false, oldSessionEnd: false };
  const broken = () => Promise.reject(new Error('store went away'));
  const wrapped: MemoryBackend = {
    ...backend,
    compareAndSet: (key, expected, value, ttlMs) =>
      failing.sessionWrites ? broken() : backend.compareAndSet(key, expected, value, ttlMs),
    // Ending the session the login joins (its atomic read-and-delete) fails.
    take: (key) => (failing.oldSessionEnd ? broken() : backend.take(key)),
    indexAdd: (key, member, endsAtMs, nowMs) =>
      failing.indexAdds ? broken() : backend.indexAdd(key, member, endsAtMs, nowMs),
  };
  return { wrapped, failing };
}

describe('upstream logout on every failure after a granted login', () => {
  let upstream: ScriptedUpstream;
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    // Closed after the stack's instances.
    return () => upstream.close();
  });
  const stack = useStack({ sandbox: false, store: 'embedded', instances: 0, env: () => upstream.env });
  const store = breakable();
  // The instance every client talks to, on the breakable store.
  beforeAll(async () => {
    await stack.start({}, { backend: store.wrapped });
  });
  beforeEach(() => {
    Object.assign(store.failing, { sessionWrites: false, indexAdds: false, oldSessionEnd: false });
  });

  const client = () => stack.client();
  const body = () => ({ username: 'someone', password: upstream.password });

  it.each([
    ['the session write fails', 'sessionWrites'],
    ['the identity index write fails', 'indexAdds'],
  ] as const)(
    'signs the granted upstream session out when %s, sets no cookie, answers 503',
    async (_case, kind) => {
      store.failing[kind] = true;
      const answer = await client().post('/auth/billingplatform/login', body());
      expect(answer.status).toBe(503);
      expect(answer.body.error.code).toBe('session_store_unavailable');
      expect(answer.setCookies).toEqual([]);
      const granted = upstream.granted.at(-1);
      await expect.poll(() => upstream.logouts).toContain(granted);
    },
  );

  it('signs the new upstream session out when the session it joins cannot be ended, and leaves that session as it was', async () => {
    const signedIn = client();
    expect((await signedIn.post('/auth/billingplatform/login', body())).status).toBe(200);
    const kept = upstream.granted.at(-1);
    store.failing.oldSessionEnd = true;
    const answer = await signedIn.post('/auth/billingplatform/login', body());
    expect(answer.status).toBe(503);
    expect(answer.setCookies).toEqual([]);
    const granted = upstream.granted.at(-1);
    expect(granted).not.toBe(kept);
    await expect.poll(() => upstream.logouts).toContain(granted);
    store.failing.oldSessionEnd = false;
    expect(upstream.logouts).not.toContain(kept);
    expect((await signedIn.get('/auth/session')).body.authenticated).toBe(true);
  });

  it('signs out both the new upstream session and the ended one’s when the session joined was ended and the new one cannot be saved', async () => {
    const signedIn = client();
    expect((await signedIn.post('/auth/billingplatform/login', body())).status).toBe(200);
    const old = upstream.granted.at(-1);
    store.failing.sessionWrites = true;
    const answer = await signedIn.post('/auth/billingplatform/login', body());
    expect(answer.status).toBe(503);
    const granted = upstream.granted.at(-1);
    await expect.poll(() => upstream.logouts).toContain(granted);
    await expect.poll(() => upstream.logouts).toContain(old);
  });
});
