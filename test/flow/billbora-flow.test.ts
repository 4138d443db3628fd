import { beforeEach, describe, expect, it } from 'vitest';
import type { StoreChoice } from '../../src/billfold.js';
import { RedisSessionStore } from '../../src/session/redis-session-store.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { startGatedProxy } from '../support/gated-proxy.js';
import { leaksOf } from '../support/secrets.js';
import { createTestClock } from '../support/test-clock.js';
import { startStack, useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billbora;

/** Signs in to the sandbox Supabase directly, as a browser using supabase-js would. */
async function supabaseAccessToken(sandbox: Sandbox): Promise<string> {
  const answer = await fetch(`${sandbox.env.SUPABASE_URL}/auth/v1/token?grant_type=password`, {
    method: 'POST',
    headers: { apikey: SANDBOX_DEMO_CREDENTIALS.supabaseAnonKey, 'content-type': 'application/json' },
    body: JSON.stringify(demo),
  });
  return ((await answer.json()) as { access_token: string }).access_token;
}

describe('Billbora end to end on Redis', () => {
  const lastBearer = () => stack.sandbox.billbora.requests.at(-1)!.headers.authorization;

  // One session sends bursts of 50 here to test single-flight renewal, so its share of connections is wider.
  const stack = useStack({ env: { RELAY_MAX_CONCURRENT_PER_SESSION: '64' } });
  beforeEach(() => stack.sandbox.reset());

  it('signs in with email and password through Supabase, exchanges, and relays with the Billbora JWT', async () => {
    const client = stack.client();
    const login = await client.post('/auth/billbora/login', demo);
    expect(login.status).toBe(200);
    expect(login.body.providers.billbora).toMatchObject({
      connected: true,
      mode: 'jwt',
      user: demo.email,
      organization: { id: 'org_demo' },
    });
    expect(Date.parse(login.body.providers.billbora.accessExpiresAt)).toBeGreaterThan(Date.now());
    const invoices = await client.get('/api/billbora/invoices/');
    expect(invoices.status).toBe(200);
    expect(lastBearer()).toMatch(/^Bearer ey/);
    expect(leaksOf([lastBearer()!.slice(7), demo.password], stack.billfold.logs)).toEqual([]);
  });

  it('refuses wrong credentials with invalid_credentials', async () => {
    const answer = await stack.client().post('/auth/billbora/login', { ...demo, password: 'wrong' });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 'invalid_credentials', provider: 'billbora' });
  });

  it('accepts a Supabase token from the browser and an organization to start in', async () => {
    const client = stack.client();
    const token = await supabaseAccessToken(stack.sandbox);
    const login = await client.post('/auth/billbora/login', {
      supabaseToken: token,
      organizationId: 'org_other',
    });
    expect(login.status).toBe(200);
    expect(login.body.providers.billbora).toMatchObject({
      user: demo.email,
      organization: { id: 'org_other' },
    });
  });

  it('switches organization, and answers organization_access_denied for one the user is not in', async () => {
    const client = stack.client();
    await client.post('/auth/billbora/login', demo);
    const switched = await client.post('/auth/billbora/organization', { organizationId: 'org_other' });
    expect(switched.status).toBe(200);
    expect(switched.body.providers.billbora.organization.id).toBe('org_other');
    const denied = await client.post('/auth/billbora/organization', { organizationId: 'org_nobody' });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('organization_access_denied');
    expect((await client.get('/auth/session')).body.providers.billbora.organization.id).toBe('org_other');
    const login = await stack
      .client()
      .post('/auth/billbora/login', { ...demo, organizationId: 'org_nobody' });
    expect(login.body.error.code).toBe('organization_access_denied');
  });

  it('signs in with an API key after one check call, and reads its 401 as upstream_session_expired', async () => {
    const client = stack.client();
    const login = await client.post('/auth/billbora/login', {
      apiKey: SANDBOX_DEMO_CREDENTIALS.billboraApiKey,
    });
    expect(login.body.providers.billbora).toMatchObject({ connected: true, mode: 'apiKey' });
    expect((await client.get('/api/billbora/invoices/')).status).toBe(200);
    expect(lastBearer()).toBe(`Bearer ${SANDBOX_DEMO_CREDENTIALS.billboraApiKey}`);
    stack.sandbox.billbora.setApiKeyRevoked(true);
    const answer = await client.get('/api/billbora/invoices/');
    expect(answer.body.error).toMatchObject({ code: 'upstream_session_expired', provider: 'billbora' });
    expect((await stack.client().post('/auth/billbora/login', { apiKey: 'bb_wrong' })).body.error.code).toBe(
      'invalid_credentials',
    );
  });

  it('refuses Billbora’s own auth endpoints through the relay', async () => {
    const client = stack.client();
    await client.post('/auth/billbora/login', demo);
    for (const path of ['users/auth/refresh/', 'USERS/AUTH/exchange/', 'users/auth']) {
      expect((await client.post(`/api/billbora/${path}`, {})).body.error.code).toBe(
        'forbidden_upstream_path',
      );
    }
  });

  it('renews once for 50 concurrent relays across an access-token expiry; all succeed with the new token', async () => {
    const client = stack.client();
    await client.post('/auth/billbora/login', demo);
    await client.get('/api/billbora/invoices/');
    const oldBearer = lastBearer();
    const before = stack.sandbox.billbora.refreshCalls();
    stack.sandbox.billbora.expireAccessTokens();

    const answers = await Promise.all(
      Array.from({ length: 50 }, () => client.get('/api/billbora/invoices/')),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect(stack.sandbox.billbora.refreshCalls() - before).toBe(1);
    expect(stack.sandbox.billbora.revokedFamilies()).toEqual([]);

    await client.get('/api/billbora/invoices/');
    expect(lastBearer()).not.toBe(oldBearer);
    expect(stack.sandbox.billbora.refreshCalls() - before).toBe(1);
  });

  it('renews shortly before the access token expires, without waiting for a 401', async () => {
    stack.sandbox.billbora.setAccessTokenLifetime(30_000);
    const client = stack.client();
    await client.post('/auth/billbora/login', demo);
    const before = stack.sandbox.billbora.refreshCalls();
    expect((await client.get('/api/billbora/invoices/')).status).toBe(200);
    expect(stack.sandbox.billbora.refreshCalls() - before).toBe(1);
    expect(
      stack.sandbox.billbora.requests.filter((r) => r.path.endsWith('/invoices/') && r.method === 'GET'),
    ).toHaveLength(1);
  });

  it('falls back to the Supabase session when the Billbora refresh token is dead, and signs out when both are', async () => {
    const client = stack.client();
    await client.post('/auth/billbora/login', demo);
    stack.sandbox.billbora.expireAllSessions();
    expect((await client.get('/api/billbora/invoices/')).status).toBe(200);

    stack.sandbox.billbora.expireAllSessions();
    stack.sandbox.supabase.expireAllSessions();
    const answer = await client.get('/api/billbora/invoices/');
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 'upstream_session_expired', provider: 'billbora' });
  });

  it('answers a switch Supabase refuses to sign in again with invalid_credentials, and keeps Billbora connected', async () => {
    const client = stack.client();
    await client.post('/auth/billbora/login', demo);
    stack.sandbox.supabase.expireAllSessions();
    const refused = await client.post('/auth/billbora/organization', { organizationId: 'org_other' });
    expect(refused.status).toBe(401);
    expect(refused.body.error).toMatchObject({ code: 'invalid_credentials', provider: 'billbora' });
    expect((await client.get('/auth/session')).body.providers.billbora.organization.id).toBe('org_demo');
    expect((await client.get('/api/billbora/invoices/')).status).toBe(200);
    const switched = await client.post('/auth/billbora/organization', {
      organizationId: 'org_other',
      supabaseToken: await supabaseAccessToken(stack.sandbox),
    });
    expect(switched.body.providers.billbora.organization.id).toBe('org_other');
  });

  it('ends only its own Supabase session at a sign-out: the person’s other sessions keep theirs', async () => {
    const [leaving, staying, current] = [stack.client(), stack.client(), stack.client()];
    for (const client of [leaving, staying, current])
      expect((await client.post('/auth/billbora/login', demo)).status).toBe(200);

    expect((await leaving.post('/auth/billbora/logout')).status).toBe(200);
    // Revoking the others (`staying` among them) signs each of them out upstream.
    expect((await current.request('DELETE', '/auth/sessions?others=true')).status).toBe(200);
    expect((await staying.get('/auth/session')).body.authenticated).toBe(false);
    // The switch needs the stored Supabase session; so does the fallback once Billbora's refresh dies.
    const switched = await current.post('/auth/billbora/organization', { organizationId: 'org_other' });
    expect(switched.status).toBe(200);
    stack.sandbox.billbora.expireAllSessions();
    expect((await current.get('/api/billbora/invoices/')).status).toBe(200);
  });
});

describe('no lost update: a relay in flight during a Billbora renewal', () => {
  const scenario = async (redisStore?: StoreChoice['redisStore']) => {
    // A sandbox of its own: the refresh and revocation counts are this scenario's alone.
    const stack = await startStack({ instances: 0 });
    const { sandbox } = stack;
    const proxy = await startGatedProxy(sandbox.url);
    try {
      const clock = createTestClock(Date.now());
      await stack.start(
        { BILLINGPLATFORM_BASE_URL: `${proxy.url}/billingplatform/demo/rest/2.0` },
        { clock, ...(redisStore && { redisStore }) },
      );
      const client = stack.client();
      await client.post('/auth/billingplatform/login', SANDBOX_DEMO_CREDENTIALS.billingplatform);
      await client.post('/auth/billbora/login', demo);

      proxy.close();
      const slow = client.get('/api/billingplatform/ACCOUNT/1001');
      await proxy.arrived();
      sandbox.billbora.expireAccessTokens();
      expect((await client.get('/api/billbora/invoices/')).status).toBe(200);
      // Two minutes on, the held BillingPlatform call (and only it) writes back the last-seen time,
      // holding the copy it read before the renewal.
      clock.advance(120_000);
      proxy.open();
      expect((await slow).status).toBe(200);
      // The write-back happens after the answer; wait until it has landed.
      for (let i = 0; i < 50; i++) {
        const view = await client.get('/auth/session');
        if (Date.parse(view.body.idleExpiresAt) >= clock.now() + 1_800_000) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect((await client.get('/api/billbora/invoices/')).status).toBe(200);
      return { refreshes: sandbox.billbora.refreshCalls(), revoked: sandbox.billbora.revokedFamilies() };
    } finally {
      await stack.close();
      await proxy.stop();
    }
  };

  it('keeps the renewed tokens: the other relay’s write-back cannot overwrite them with its stale copy', async () => {
    const outcome = await scenario();
    expect(outcome.refreshes).toBe(1);
    expect(outcome.revoked).toEqual([]);
  });

  it('would present a used refresh token if writes were blind (the scenario detects a lost update)', async () => {
    // What a store without compare-and-set does: the last writer wins, whatever it read.
    class BlindStore extends RedisSessionStore {
      protected override async compareAndSetRecord(
        sid: string,
        _expected: string | null,
        value: string | null,
        ttlMs: number,
      ) {
        return super.compareAndSetRecord(sid, await this.readRecord(sid), value, ttlMs);
      }
    }
    const blind: StoreChoice['redisStore'] = (options) => new BlindStore(options);
    const outcome = await scenario(blind);
    expect(outcome.revoked.length).toBeGreaterThan(0);
  });
});
