import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { startTestSandbox, type Answer, type TestSandbox } from './sandbox-test-client.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billbora;
const BASE = '/billbora/api/v1';
const HOUR_MS = 3_600_000;

/** Asserts Billbora's error envelope. */
function expectError(answer: Answer, status: number, code: string) {
  expect(answer.status).toBe(status);
  expect(answer.body).toEqual({
    error: { code, message: expect.any(String), details: expect.any(Object) },
    meta: {
      request_id: expect.any(String),
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    },
  });
}

describe('Billbora emulator', () => {
  let t: TestSandbox;
  beforeAll(async () => {
    t = await startTestSandbox();
  });
  afterAll(() => t.sandbox.close());
  beforeEach(() => t.sandbox.reset());

  const supabaseSignIn = async () => {
    const answer = await t.call('POST', '/supabase/auth/v1/token?grant_type=password', {
      headers: { apikey: SANDBOX_DEMO_CREDENTIALS.supabaseAnonKey },
      json: demo,
    });
    expect(answer.status).toBe(200);
    return answer.body.access_token as string;
  };
  const exchange = (supabaseToken: string, organizationId?: string) =>
    t.call('POST', `${BASE}/users/auth/exchange/`, {
      json: {
        supabase_token: supabaseToken,
        ...(organizationId !== undefined && { organization_id: organizationId }),
      },
    });
  const refresh = (token: string) =>
    t.call('POST', `${BASE}/users/auth/refresh/`, { json: { refresh: token } });
  const get = (path: string, bearer?: string) =>
    t.call('GET', `${BASE}${path}`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });

  it('runs the whole JWT flow: Supabase sign-in, exchange, calls, rotation, reuse revoking the family, expiry', async () => {
    const supabaseToken = await supabaseSignIn();

    // Exchange: the default organization, another one the user belongs to, and one it does not.
    const first = await exchange(supabaseToken);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      access: expect.any(String),
      refresh: expect.any(String),
      organization: { id: 'org_demo', name: 'Demo Organization' },
    });
    const other = await exchange(supabaseToken, 'org_other');
    expect(other.body.organization).toEqual({ id: 'org_other', name: 'Other Organization' });
    const denied = await exchange(supabaseToken, 'org_stranger');
    expectError(denied, 403, 'organization_access_denied');

    // Calls carry the organization of their token.
    const demoInvoices = await get('/invoices/', first.body.access);
    expect(demoInvoices.status).toBe(200);
    const otherInvoices = await get('/invoices/', other.body.access);
    expect(otherInvoices.body.results).not.toEqual(demoInvoices.body.results);

    // Refresh rotates; the new pair works.
    const rotated = await refresh(first.body.refresh);
    expect(rotated.status).toBe(200);
    expect(rotated.body).toEqual({ access: expect.any(String), refresh: expect.any(String) });
    expect(rotated.body.refresh).not.toBe(first.body.refresh);
    expect((await get('/invoices/', rotated.body.access)).status).toBe(200);

    // Presenting the used refresh token again revokes the whole family.
    expectError(await refresh(first.body.refresh), 401, 'invalid_token');
    const family = String(decodeJwt(first.body.access).sid);
    expect(t.sandbox.billbora.revokedFamilies()).toEqual([family]);
    expectError(await refresh(rotated.body.refresh), 401, 'invalid_token');
    expectError(await get('/invoices/', rotated.body.access), 401, 'invalid_token');
    expect(t.sandbox.billbora.refreshCalls()).toBe(3);
    // Another family (the org_other exchange) is untouched.
    expect((await get('/invoices/', other.body.access)).status).toBe(200);

    // An expired access token: 401 token_expired with details.expired_at.
    const exp = decodeJwt(other.body.access).exp!;
    t.clock.advance(HOUR_MS);
    const expired = await get('/invoices/', other.body.access);
    expectError(expired, 401, 'token_expired');
    expect(expired.body.error.details).toEqual({
      expired_at: new Date(exp * 1000).toISOString().replace('.000', ''),
    });
    // ...and the Supabase token has expired with it, so the exchange refuses it.
    expectError(await exchange(supabaseToken), 401, 'invalid_token');
  });

  describe('POST /users/auth/exchange/', () => {
    it('issues compact HS256 access tokens and short refresh tokens (billfold stores them within 2 KiB)', async () => {
      const { body } = await exchange(await supabaseSignIn());
      expect(decodeProtectedHeader(body.access)).toEqual({ alg: 'HS256' });
      expect(decodeJwt(body.access)).toEqual({
        sub: expect.any(String),
        org: 'org_demo',
        sid: expect.any(String),
        jti: expect.any(String),
        iat: Math.floor(t.clock.now() / 1000),
        exp: Math.floor(t.clock.now() / 1000) + 3600,
      });
      expect(body.access.length).toBeLessThan(200);
      expect(body.refresh.length).toBeLessThanOrEqual(16);
    });

    it('accepts only this sandbox Supabase access tokens: 401 invalid_token for anything else', async () => {
      const supabaseToken = await supabaseSignIn();
      const [header, payload] = supabaseToken.split('.');
      expectError(await exchange(`${header}.${payload}.forged-signature`), 401, 'invalid_token');
      expectError(await exchange('not-a-jwt'), 401, 'invalid_token');
      const { body } = await exchange(supabaseToken);
      // A Billbora token is not a Supabase token.
      expectError(await exchange(body.access), 401, 'invalid_token');
    });

    it('refuses a body without supabase_token with 400 validation_error', async () => {
      const answer = await t.call('POST', `${BASE}/users/auth/exchange/`, { json: {} });
      expectError(answer, 400, 'validation_error');
      expect(answer.body.error.details).toEqual({ supabase_token: [expect.any(String)] });
    });
  });

  describe('authenticated calls', () => {
    it('answer 401 missing_token without a bearer token and 401 invalid_token for a bad one', async () => {
      expectError(await get('/invoices/'), 401, 'missing_token');
      expectError(await get('/invoices/', 'garbage'), 401, 'invalid_token');
    });

    it('accept the API key as a Bearer token, until it is revoked', async () => {
      const key = SANDBOX_DEMO_CREDENTIALS.billboraApiKey;
      expect((await get('/invoices/', key)).status).toBe(200);
      expectError(await get('/invoices/', 'bb_wrong_key'), 401, 'invalid_token');
      // An API key belongs to an organization, not to a user.
      expectError(await get('/users/me/organizations/', key), 403, 'insufficient_permissions');
      t.sandbox.billbora.setApiKeyRevoked(true);
      expectError(await get('/invoices/', key), 401, 'invalid_token');
    });

    it('GET /users/me/organizations/ lists the memberships and marks the current one', async () => {
      const { body } = await exchange(await supabaseSignIn(), 'org_other');
      const answer = await get('/users/me/organizations/', body.access);
      expect(answer.body.results).toEqual([
        expect.objectContaining({ id: 'org_demo', name: 'Demo Organization', is_current: false }),
        expect.objectContaining({ id: 'org_other', name: 'Other Organization', is_current: true }),
      ]);
    });

    it('POST /invoices/ creates an invoice in the token organization, and refuses a bad one with 400 validation_error', async () => {
      const { body } = await exchange(await supabaseSignIn());
      const headers = { authorization: `Bearer ${body.access}` };
      const created = await t.call('POST', `${BASE}/invoices/`, {
        headers,
        json: { customer_name: 'Umbrella', amount: 42 },
      });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ customer_name: 'Umbrella', amount: '42.00', status: 'draft' });
      expect((await get('/invoices/', body.access)).body.results).toContainEqual(created.body);
      const refused = await t.call('POST', `${BASE}/invoices/`, {
        headers,
        json: { customer_name: 'X', amount: -1 },
      });
      expectError(refused, 400, 'validation_error');
      expect(refused.body.error.details).toEqual({ amount: [expect.any(String)] });
    });

    it('answer an unknown path (trailing slash included) with 404 not_found', async () => {
      expectError(await get('/invoices', SANDBOX_DEMO_CREDENTIALS.billboraApiKey), 404, 'not_found');
      expectError(await get('/nothing/'), 404, 'not_found');
    });
  });

  describe('control', () => {
    it('sets the lifetime of access tokens issued from then on', async () => {
      t.sandbox.billbora.setAccessTokenLifetime(60_000);
      const { body } = await exchange(await supabaseSignIn());
      expect(decodeJwt(body.access).exp! - decodeJwt(body.access).iat!).toBe(60);
      t.clock.advance(60_000);
      expectError(await get('/invoices/', body.access), 401, 'token_expired');
      const renewed = await refresh(body.refresh);
      expect((await get('/invoices/', renewed.body.access)).status).toBe(200);
    });

    it('force-expires the access tokens of one family (refresh still works) or of all', async () => {
      const supabaseToken = await supabaseSignIn();
      const one = (await exchange(supabaseToken)).body;
      const two = (await exchange(supabaseToken)).body;
      t.sandbox.billbora.expireAccessTokens(String(decodeJwt(one.access).sid));
      const expired = await get('/invoices/', one.access);
      expectError(expired, 401, 'token_expired');
      expect(expired.body.error.details.expired_at).toBe(
        new Date(t.clock.now()).toISOString().replace('.000', ''),
      );
      expect((await get('/invoices/', two.access)).status).toBe(200);
      const renewed = (await refresh(one.refresh)).body;
      expect((await get('/invoices/', renewed.access)).status).toBe(200);
      t.sandbox.billbora.expireAccessTokens();
      expectError(await get('/invoices/', renewed.access), 401, 'token_expired');
      expectError(await get('/invoices/', two.access), 401, 'token_expired');
    });

    it('revokes one token family or all of them: access and refresh get 401 invalid_token', async () => {
      const supabaseToken = await supabaseSignIn();
      const one = (await exchange(supabaseToken)).body;
      const two = (await exchange(supabaseToken)).body;
      const oneFamily = String(decodeJwt(one.access).sid);
      expect(t.sandbox.billbora.sessions()).toContain(oneFamily);
      t.sandbox.billbora.expireSession(oneFamily);
      expectError(await get('/invoices/', one.access), 401, 'invalid_token');
      expectError(await refresh(one.refresh), 401, 'invalid_token');
      expect((await get('/invoices/', two.access)).status).toBe(200);
      t.sandbox.billbora.expireAllSessions();
      expectError(await refresh(two.refresh), 401, 'invalid_token');
      expect(t.sandbox.billbora.sessions()).toEqual([]);
      expect(t.sandbox.billbora.revokedFamilies()).toEqual([]);
    });
  });
});
