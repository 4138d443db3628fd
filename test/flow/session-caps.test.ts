import { beforeAll, describe, expect, it } from 'vitest';
import { identityIndexKeys } from '../../src/session/session-index.js';
import { createStoreKeyNames } from '../../src/session/store-key-names.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../support/scripted-upstream.js';
import { useStack } from '../support/stack.js';
import { TEST_SECRETS } from '../support/test-config.js';

describe.each([
  ['the embedded store', 'embedded'],
  ['Redis', 'redis'],
] as const)('MAX_SESSIONS_PER_IDENTITY on %s', (_name, store) => {
  let upstream: ScriptedUpstream;
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    // After the stack's own teardown: billfold stops before its upstream does.
    return () => upstream.close();
  });
  const stack = useStack(() => ({
    store,
    sandbox: false,
    env: {
      ...upstream.env,
      MAX_SESSIONS_PER_IDENTITY: '3',
      // Bursts on a shared machine: the caps, not store latency, are under test.
      STORE_TIMEOUT_MS: '5000',
      // Every attempt in flight holds a failure reservation: room for a burst of sign-ins.
      LOGIN_MAX_SUCCESSES_PER_IP: '100000',
      LOGIN_MAX_FAILURES_PER_IP: '100000',
      LOGIN_MAX_FAILURES_PER_USER: '100000',
      LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES: '100000',
    },
  }));

  const signIn = async (username: string, device = 'device') => {
    const client = stack.client();
    const answer = await client.post(
      '/auth/billingplatform/login',
      { username, password: upstream.password },
      { 'user-agent': device },
    );
    expect(answer.status).toBe(200);
    return client;
  };
  const signedIn = async (client: Awaited<ReturnType<typeof signIn>>) =>
    (await client.get('/auth/session')).body.authenticated as boolean;

  it('ends the oldest session, with upstream logout and an audit line, when a new one goes past the cap', async () => {
    const clients = [];
    for (let i = 0; i < 5; i++) clients.push(await signIn('capped', `device-${i}`));
    const alive = await Promise.all(clients.map(signedIn));
    expect(alive).toEqual([false, false, true, true, true]);
    // The two ended sessions' upstream sessions are signed out too.
    await expect.poll(() => upstream.logouts.length).toBe(2);
    expect(upstream.logouts).toEqual(upstream.granted.slice(-5, -3));
    const audited = stack.billfold.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.event === 'session_revoked' && entry.reason === 'session_limit');
    expect(audited).toHaveLength(2);
    // Someone else's sessions are not touched.
    expect((await clients[4]!.get('/auth/sessions')).body.sessions).toHaveLength(3);
  });

  it('holds under 50 parallel sign-ins of one identity: at most the cap stay live', async () => {
    const clients = await Promise.all(Array.from({ length: 50 }, () => signIn('burst-capped')));
    const alive = (await Promise.all(clients.map(signedIn))).filter(Boolean).length;
    console.log(`50 parallel sign-ins of one identity, cap 3: ${alive} sessions live afterwards`);
    expect(alive).toBeGreaterThanOrEqual(1);
    expect(alive).toBeLessThanOrEqual(3);
  });

  it('reads a bounded number of sessions for GET /auth/sessions, however many members an index holds', async () => {
    const client = await signIn('inventoried');
    // Stale members a crash could leave behind (sessions gone): a reader must not load them all.
    const names = createStoreKeyNames([TEST_SECRETS.SESSION_SECRETS]);
    const [indexKey] = identityIndexKeys(names, 'billingplatform', 'inventoried');
    const { repository } = stack.billfold.billfold;
    for (let i = 0; i < 200; i++)
      await repository.backend.indexAdd(indexKey!, `gone-${i}`, Date.now() + 3_600_000, Date.now());
    /** Session records read from here on, by every caller of the repository. */
    let loads = 0;
    const load = repository.load.bind(repository);
    repository.load = (sessionId) => {
      loads++;
      return load(sessionId);
    };
    const answer = await client.get('/auth/sessions');
    expect(answer.status).toBe(200);
    expect(answer.body.sessions).toHaveLength(1);
    // The cap's worth of index members, plus the caller's own session.
    expect(loads).toBeLessThanOrEqual(3 + 2);
  });
});
