import { beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { SUPABASE_DEMO_USER_ID } from '../../src/sandbox/supabase-emulator.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { startScriptedUpstream, supabaseToken, type ScriptedUpstream } from '../support/scripted-upstream.js';
import { useStack } from '../support/stack.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdefghijklmnopqrstuvwxyz';

/** One call to the operator API. */
async function admin(adminUrl: string, method: string, query: Record<string, string>) {
  const response = await fetch(`${adminUrl}/admin/sessions?${new URLSearchParams(query).toString()}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  return { status: response.status, body: JSON.parse(await response.text()) };
}

describe('whose sessions are whose: personal upstream identities only', () => {
  let upstream: ScriptedUpstream;
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    // After the stack's own teardown: billfold stops before its upstream does.
    return () => upstream.close();
  });
  const stack = useStack({
    sandbox: false,
    env: () => ({
      ...upstream.env,
      ADMIN_PORT: '0',
      ADMIN_TOKEN,
      // The suite runs beside many others on a shared machine: identities, not store latency, are under test.
      STORE_TIMEOUT_MS: '5000',
    }),
  });

  const signIn = async (provider: string, body: object) => {
    const client = stack.client();
    const answer = await client.post(`/auth/${provider}/login`, body);
    expect(answer.status).toBe(200);
    return client;
  };
  const listed = async (client: Awaited<ReturnType<typeof signIn>>) => {
    const answer = await client.get('/auth/sessions');
    expect(answer.status).toBe(200);
    return answer.body.sessions as Array<{ current: boolean }>;
  };

  it('keeps Supabase users without an email (phone, anonymous) apart: each sees and revokes only their own session', async () => {
    const phone = await signIn('billbora', {
      supabaseToken: supabaseToken({
        sub: 'a1b2c3d4-0000-4000-8000-00000000000a',
        email: '',
        phone: '46700000001',
      }),
    });
    const anonymous = await signIn('billbora', {
      supabaseToken: supabaseToken({
        sub: 'a1b2c3d4-0000-4000-8000-00000000000b',
        email: '',
        is_anonymous: true,
      }),
    });
    expect(await listed(phone)).toHaveLength(1);
    expect(await listed(anonymous)).toHaveLength(1);
    expect((await phone.request('DELETE', '/auth/sessions?others=true')).body).toEqual({ revoked: 0 });
    expect((await anonymous.get('/auth/session')).body.authenticated).toBe(true);
  });

  it('puts a Supabase token that names no user (no sub) in no identity index', async () => {
    const first = await signIn('billbora', { supabaseToken: supabaseToken({ email: '' }) });
    const second = await signIn('billbora', { supabaseToken: supabaseToken({ email: '' }) });
    expect(await listed(first)).toHaveLength(1);
    expect((await first.request('DELETE', '/auth/sessions?others=true')).body).toEqual({ revoked: 0 });
    expect((await second.get('/auth/session')).body.authenticated).toBe(true);
  });

  it('never makes a session yours through a shared Billbora API key, nor signs your other providers out', async () => {
    const mine = await signIn('billbora', { apiKey: 'bb_shared_org_key' });
    expect(
      (await mine.post('/auth/billingplatform/login', { username: 'me', password: upstream.password }))
        .status,
    ).toBe(200);
    const colleague = await signIn('billbora', { apiKey: 'bb_shared_org_key' });

    expect(await listed(colleague)).toHaveLength(1);
    expect((await colleague.request('DELETE', '/auth/sessions?others=true')).body).toEqual({ revoked: 0 });
    const view = (await mine.get('/auth/session')).body;
    expect(view.providers.billingplatform.connected).toBe(true);
    expect(upstream.logouts).toEqual([]);
  });

  it('lets only the same Supabase user (sub) switch the organization: another user’s token is 403 and changes nothing', async () => {
    const alice = { sub: 'a1b2c3d4-0000-4000-8000-0000000000a1', email: 'alice@example.com' };
    const mallory = { sub: 'a1b2c3d4-0000-4000-8000-0000000000b2', email: 'alice@example.com' };
    const client = await signIn('billbora', { supabaseToken: supabaseToken(alice) });
    const exchanges = upstream.exchanges.length;

    const refused = await client.post('/auth/billbora/organization', {
      organizationId: 'org_b',
      supabaseToken: supabaseToken(mallory),
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'organization_access_denied', provider: 'billbora' });
    // Billbora never saw the foreign token, and the stored credential is still the first user's.
    expect(upstream.exchanges).toHaveLength(exchanges);
    expect((await client.get('/auth/session')).body.providers.billbora.organization.id).toBe('org_a');

    const same = await client.post('/auth/billbora/organization', {
      organizationId: 'org_b',
      supabaseToken: supabaseToken(alice),
    });
    expect(same.status).toBe(200);
    expect(same.body.providers.billbora.organization.id).toBe('org_b');
  });

  it('refuses an organization switch with a token that names no user', async () => {
    const client = await signIn('billbora', {
      supabaseToken: supabaseToken({ sub: 'a1b2c3d4-0000-4000-8000-0000000000c3' }),
    });
    const refused = await client.post('/auth/billbora/organization', {
      organizationId: 'org_b',
      supabaseToken: supabaseToken({ email: 'x@example.com' }),
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('organization_access_denied');
  });
});

describe('one person, any spelling', () => {
  const stack = useStack({
    env: {
      ADMIN_PORT: '0',
      ADMIN_TOKEN,
      // The suite runs beside many others on a shared machine: identities, not store latency, are under test.
      STORE_TIMEOUT_MS: '5000',
    },
  });

  const signIn = async (provider: string, body: object) => {
    const client = createCookieClient(stack.billfold.url, stack.billfold.config.session.cookieName);
    const answer = await client.post(`/auth/${provider}/login`, body);
    expect(answer.status).toBe(200);
    return client;
  };

  it('signs out everywhere else a session signed in with another spelling of the same Supabase email', async () => {
    const lower = await signIn('billbora', demo.billbora);
    const upper = await signIn('billbora', { ...demo.billbora, email: 'DEMO@Example.COM' });
    const sessions = (await lower.get('/auth/sessions')).body.sessions;
    expect(sessions).toHaveLength(2);
    expect((await lower.request('DELETE', '/auth/sessions?others=true')).body).toEqual({ revoked: 1 });
    expect((await upper.get('/auth/session')).body.authenticated).toBe(false);
  });

  it('lets the operator find and revoke a Billbora user by Supabase id, and a BILL user by any case of the email', async () => {
    const billbora = await signIn('billbora', demo.billbora);
    const bill = await signIn('bill', demo.bill);

    const byId = await admin(stack.billfold.adminUrl!, 'GET', {
      provider: 'billbora',
      user: SUPABASE_DEMO_USER_ID,
    });
    // The demo user's sessions: the one the test before kept, and this one.
    expect(byId.body.sessions).toHaveLength(2);
    const billQuery = { provider: 'bill', user: ' Demo@EXAMPLE.com ', orgId: demo.bill.orgId };
    expect((await admin(stack.billfold.adminUrl!, 'DELETE', billQuery)).body).toEqual({ revoked: 1 });
    expect((await bill.get('/auth/session')).body.authenticated).toBe(false);
    // A BILL user is a user within one organization: the same email elsewhere is someone else.
    const elsewhere = await admin(stack.billfold.adminUrl!, 'GET', { ...billQuery, orgId: 'OTHERORG' });
    expect(elsewhere.body.sessions).toEqual([]);
    expect((await billbora.get('/auth/session')).body.authenticated).toBe(true);
  });

  it('never makes two holders of one Billogram API user each other’s sessions', async () => {
    const first = await signIn('billogram', demo.billogram);
    const second = await signIn('billogram', demo.billogram);
    expect((await first.get('/auth/sessions')).body.sessions).toHaveLength(1);
    expect((await first.request('DELETE', '/auth/sessions?others=true')).body).toEqual({ revoked: 0 });
    expect((await second.get('/auth/session')).body.authenticated).toBe(true);
  });

  it('refuses to name a shared credential to the operator API: no person, no index', async () => {
    const answer = await admin(stack.billfold.adminUrl!, 'GET', {
      provider: 'billogram',
      user: 'demo-api-user',
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('invalid_request');
  });
});
