import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createSessionHandles } from '../../src/session/session-inventory.js';
import { createCookieClient, type CookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { connectRedis } from '../support/redis.js';
import { startOwnRedisCluster, type OwnRedisCluster } from '../support/redis-cluster.js';
import { TEST_SECRETS } from '../support/test-config.js';
import { signedOut } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

/** Where the sessions live: one instance on the embedded store, or two sharing Redis or a Redis Cluster. */
const stores: Array<[string, 'embedded' | 'redis' | 'cluster']> = [
  ['the embedded store', 'embedded'],
  ['Redis', 'redis'],
  ['a three-master Redis Cluster', 'cluster'],
];

const handleOf = createSessionHandles(TEST_SECRETS.SESSION_SECRETS);
/** The session id inside a `name=s%3A<id>.<signature>` cookie pair. */
const sessionIdOf = (cookie: string) =>
  decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
    .slice(2)
    .split('.')[0]!;

describe.each(stores)('the session inventory on %s', (_name, where) => {
  let cluster: OwnRedisCluster | undefined;
  beforeAll(async () => {
    if (where === 'cluster') cluster = await startOwnRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.dispose();
  });
  // The embedded store is one process's own: a second instance would not share its sessions.
  const stack = useStack(() => ({
    instances: where === 'embedded' ? 1 : 2,
    // The cluster's hook has run by then: it was registered first.
    store: where === 'cluster' ? { clusterNodes: cluster?.nodes ?? [] } : where,
  }));
  /** Another instance on the same store (the same one on the embedded store). */
  const second = () => stack.instances.at(-1)!;

  const clientOf = (billfold: RunningBillfold, device: string) => {
    const client = createCookieClient(billfold.url, billfold.config.session.cookieName);
    const request = client.request.bind(client);
    client.request = (method, path, options = {}) =>
      request(method, path, { ...options, headers: { 'user-agent': device, ...options.headers } });
    return client;
  };
  const signedIn = async (device: string, provider: 'billingplatform' | 'billogram' = 'billingplatform') => {
    const client = clientOf(stack.billfold, device);
    expect((await client.post(`/auth/${provider}/login`, demo[provider])).status).toBe(200);
    return client;
  };
  /** What a second device holding the same cookie sees on the other instance. */
  const onSecond = (client: CookieClient) => {
    const other = clientOf(second(), 'same cookie');
    other.cookie = client.cookie;
    return other;
  };
  const handleOfClient = (client: CookieClient) => handleOf(sessionIdOf(client.cookie!));
  const listed = async (client: CookieClient) => {
    const answer = await client.get('/auth/sessions');
    expect(answer.status).toBe(200);
    return answer.body.sessions as Array<Record<string, unknown>>;
  };

  it('GET /auth/sessions lists both sessions of one BillingPlatform user, the current one marked, by handle only', async () => {
    const laptop = await signedIn('Laptop browser');
    const phone = await signedIn('Phone app');
    const sessions = await listed(laptop);

    const mine = sessions.find((session) => session.id === handleOfClient(laptop));
    const other = sessions.find((session) => session.id === handleOfClient(phone));
    expect(mine).toMatchObject({ current: true, device: 'Laptop browser', providers: ['billingplatform'] });
    expect(other).toMatchObject({ current: false, device: 'Phone app', providers: ['billingplatform'] });
    expect(Object.keys(mine!)).toEqual(['id', 'current', 'device', 'createdAt', 'lastSeenAt', 'providers']);
    expect(Date.parse(String(other!.createdAt))).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(String(other!.lastSeenAt))).toBeLessThanOrEqual(Date.now());
    expect(sessions.filter((session) => session.current === true)).toHaveLength(1);
    expect(sessions[0]).toBe(mine);
    // Neither session id (what the cookie carries) appears in the answer.
    const text = JSON.stringify(sessions);
    for (const client of [laptop, phone]) expect(text).not.toContain(sessionIdOf(client.cookie!));
    // The other instance lists the same sessions.
    expect((await listed(onSecond(phone))).map((session) => session.id).sort()).toEqual(
      sessions.map((session) => session.id).sort(),
    );
  });

  it('DELETE /auth/sessions/:id revokes the other session with upstream logout; its cookie is refused on the next request, on another instance too', async () => {
    const laptop = await signedIn('Laptop browser');
    const phone = await signedIn('Phone app');
    const upstreamBefore = stack.sandbox.billingplatform.sessions().length;

    const revoked = await laptop.request('DELETE', `/auth/sessions/${handleOfClient(phone)}`);
    expect(revoked.status).toBe(204);

    const next = await onSecond(phone).get('/api/billingplatform/ACCOUNT/1001');
    expect(next.status).toBe(401);
    expect(next.body.error.code).toBe('unauthenticated');
    expect((await onSecond(phone).get('/auth/session')).body).toEqual(signedOut());
    expect(stack.sandbox.billingplatform.sessions()).toHaveLength(upstreamBefore - 1);
    // The revoking session carries on, and no longer lists the revoked one.
    expect((await laptop.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    expect((await listed(laptop)).map((session) => session.id)).not.toContain(handleOfClient(phone));
    // Revoking it again finds nothing.
    expect((await laptop.request('DELETE', `/auth/sessions/${handleOfClient(phone)}`)).status).toBe(404);
    const audited = stack.billfold.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.event === 'session_revoked');
    expect(audited.at(-1)).toMatchObject({ audit: true, outcome: 'success', reason: 'user' });
    expect(audited.at(-1)?.session).toMatch(/^[A-Za-z0-9_-]{12}$/);
  });

  it('DELETE /auth/sessions?others=true signs out everywhere else and keeps the current session', async () => {
    const devices = await Promise.all(['Laptop', 'Phone', 'Tablet'].map((device) => signedIn(device)));
    const [laptop, ...others] = devices as [CookieClient, ...CookieClient[]];
    const answer = await laptop.request('DELETE', '/auth/sessions?others=true');
    expect(answer.status).toBe(200);
    // Sessions of this user from earlier tests go too.
    expect(answer.body.revoked).toBeGreaterThanOrEqual(2);
    for (const client of others) {
      expect((await onSecond(client).get('/api/billingplatform/ACCOUNT/1001')).status).toBe(401);
    }
    const left = await listed(laptop);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatchObject({ id: handleOfClient(laptop), current: true });
    expect((await laptop.request('DELETE', '/auth/sessions')).body.error.code).toBe('invalid_request');
  });

  it('DELETE /auth/sessions/:id of the current session ends it and clears the cookie', async () => {
    const laptop = await signedIn('Laptop');
    const cookie = laptop.cookie!;
    const answer = await laptop.request('DELETE', `/auth/sessions/${handleOf(sessionIdOf(cookie))}`);
    expect(answer.status).toBe(204);
    expect(answer.setCookies.join()).toMatch(/Expires=Thu, 01 Jan 1970/);
    expect((await stack.billfold.billfold.repository.load(sessionIdOf(cookie))) === undefined).toBe(true);
    expect((await laptop.get('/auth/sessions', { cookie })).status).toBe(401);
  });

  it('shows a stranger (another upstream identity) nothing of them, and refuses to revoke them: 404', async () => {
    const owner = await signedIn('Owner laptop');
    // A stranger signed in to another provider, and one signed in to the same one as another user.
    const stranger = await signedIn('Stranger', 'billogram');
    const now = Date.now();
    const otherUserId = `other-user-session-${now}`;
    await stack.billfold.billfold.repository.create(otherUserId, {
      createdAt: now,
      lastSeenAt: now,
      device: 'Someone else',
      providers: {
        billingplatform: { sessionId: 'their-upstream-session', user: 'someone-else', connectedAt: now },
      },
    });

    const strangers = await listed(stranger);
    expect(strangers).toEqual([expect.objectContaining({ current: true, providers: ['billogram'] })]);
    const owners = (await listed(owner)).map((session) => session.id);
    expect(owners).not.toContain(handleOf(otherUserId));
    expect(owners).not.toContain(handleOfClient(stranger));

    for (const [client, target] of [
      [stranger, handleOfClient(owner)],
      [owner, handleOfClient(stranger)],
      [owner, handleOf(otherUserId)],
      [owner, 'not-a-handle'],
    ] as const) {
      const refused = await client.request('DELETE', `/auth/sessions/${target}`);
      expect(refused.status).toBe(404);
      expect(refused.body.error.code).toBe('not_found');
    }
    // "Everywhere else" is only the caller's own identity's sessions.
    await stranger.request('DELETE', '/auth/sessions?others=true');
    expect((await owner.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(200);
    expect(await stack.billfold.billfold.repository.load(otherUserId)).toBeDefined();
  });

  it('answers 401 unauthenticated without a session, and needs X-CSRF like every /auth route', async () => {
    const anonymous = clientOf(stack.billfold, 'Nobody');
    expect((await anonymous.get('/auth/sessions')).body.error.code).toBe('unauthenticated');
    expect((await anonymous.request('DELETE', '/auth/sessions/abc')).body.error.code).toBe('unauthenticated');
    const owner = await signedIn('Owner');
    expect((await owner.get('/auth/sessions', { 'x-csrf': '0' })).body.error.code).toBe(
      'csrf_header_missing',
    );
  });

  it('keeps the identity index keys hashed and expiring with their last session', async () => {
    if (where !== 'redis') return;
    const redis = await connectRedis();
    try {
      const prefix = stack.prefix!;
      const keys = await redis.keys(`${prefix}ix:*`);
      expect(keys).toContain(`${prefix}ix:all`);
      expect(keys.some((key) => key.startsWith(`${prefix}ix:billingplatform:`))).toBe(true);
      for (const key of keys) {
        expect(key).not.toContain(demo.billingplatform.username);
        expect(await redis.pTTL(key)).toBeGreaterThan(0);
      }
    } finally {
      redis.destroy();
    }
  });
});
