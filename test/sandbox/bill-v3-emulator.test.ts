import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { SANDBOX_MOUNTS } from '../../src/sandbox/sandbox.js';
import { minutes, startTestSandbox, waitFor, type Answer, type TestSandbox } from './sandbox-test-client.js';

const demo = SANDBOX_DEMO_CREDENTIALS.bill;
const devKey = SANDBOX_DEMO_CREDENTIALS.billDevKey;
const sync = SANDBOX_DEMO_CREDENTIALS.billSyncToken;
const code = SANDBOX_DEMO_CREDENTIALS.billMfaCode;
const BASE = SANDBOX_MOUNTS.billV3;
const login = { username: demo.userName, password: demo.password, organizationId: demo.orgId, devKey };
const payment = { vendorId: '00901DEMOVEND01', amount: 10 };

/** Asserts v3's error shape: a JSON array of `{code, message}` with a real status. */
function expectError(answer: Answer, status: number, errorCode: string) {
  expect(answer.status).toBe(status);
  expect(answer.body).toEqual([{ code: errorCode, message: expect.any(String) }]);
}

describe('BILL v3 emulator', () => {
  let t: TestSandbox;
  beforeAll(async () => {
    t = await startTestSandbox();
  });
  afterAll(() => t.sandbox.close());
  beforeEach(() => t.sandbox.reset());

  const post = (path: string, json: unknown, headers: Record<string, string> = {}) =>
    t.call('POST', `${BASE}${path}`, { json, headers });
  const signIn = async (body: Record<string, unknown> = login) => {
    const answer = await post('/login', body);
    return answer.body.sessionId as string;
  };
  const as = (sessionId: string) => ({ devKey, sessionId });
  const trust = async (sessionId: string, rememberMe = false) => {
    const { challengeId } = (await post('/mfa/challenge', {}, as(sessionId))).body;
    const body = { challengeId, token: code, device: 'phone-1', machineName: 'test', rememberMe };
    return post('/mfa/challenge/validate', body, as(sessionId));
  };

  describe('POST /login', () => {
    it('answers sessionId, organizationId, userId and trusted: false for a password sign-in', async () => {
      const answer = await post('/login', login);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        sessionId: expect.any(String),
        organizationId: demo.orgId,
        userId: expect.any(String),
        trusted: false,
      });
    });

    it('checks devKey, then organization, then credentials, answering real statuses', async () => {
      const allWrong = { username: 'x', password: 'y', organizationId: 'z', devKey: 'bad' };
      expectError(await post('/login', allWrong), 401, 'BDC_1102');
      expectError(await post('/login', { ...allWrong, devKey }), 401, 'BDC_1123');
      expectError(await post('/login', { ...allWrong, devKey, organizationId: demo.orgId }), 401, 'BDC_1101');
      const { password: _password, ...incomplete } = login;
      expectError(await post('/login', incomplete), 400, 'BDC_1108');
      expectError(await t.call('POST', `${BASE}/login`, { body: '{nope' }), 400, 'BDC_1122');
    });

    it('signs in with a sync token (its name and value as user name and password)', async () => {
      const answer = await post('/login', { ...login, username: sync.tokenName, password: sync.tokenValue });
      expect(answer.status).toBe(200);
      expect(answer.body.trusted).toBe(false);
    });
  });

  describe('later calls', () => {
    it('need devKey and sessionId headers (400), a valid devKey and a live session (401 BDC_1109)', async () => {
      const sessionId = await signIn();
      expectError(await t.call('GET', `${BASE}/vendors`, { headers: { devKey } }), 400, 'BDC_1108');
      expectError(await t.call('GET', `${BASE}/vendors`, { headers: { sessionId } }), 400, 'BDC_1108');
      expectError(
        await t.call('GET', `${BASE}/vendors`, { headers: { devKey: 'bad', sessionId } }),
        401,
        'BDC_1102',
      );
      expectError(await t.call('GET', `${BASE}/vendors`, { headers: as('nope') }), 401, 'BDC_1109');
      // Header names match in any case.
      const ok = await t.call('GET', `${BASE}/vendors`, {
        headers: { DEVKEY: devKey, SessionID: sessionId },
      });
      expect(ok.status).toBe(200);
    });

    it('pages vendors with max and an opaque page cursor; the last page has no nextPage', async () => {
      const sessionId = await signIn();
      const first = await t.call('GET', `${BASE}/vendors?max=1`, { headers: as(sessionId) });
      expect(first.body.results).toEqual([
        expect.objectContaining({ id: expect.any(String), name: expect.any(String) }),
      ]);
      expect(first.body.nextPage).toEqual(expect.any(String));
      const rest = await t.call('GET', `${BASE}/vendors?max=100&page=${first.body.nextPage as string}`, {
        headers: as(sessionId),
      });
      expect(rest.body.nextPage).toBeUndefined();
      expect(rest.body.results[0].id).not.toBe(first.body.results[0].id);
      for (const query of ['max=0', 'max=101', 'max=x', 'page=bm9wZQ']) {
        expectError(
          await t.call('GET', `${BASE}/vendors?${query}`, { headers: as(sessionId) }),
          400,
          'BDC_1122',
        );
      }
    });

    it('creates a vendor that GET /vendors/{id} reads back, and shares data and sessions with v2', async () => {
      const sessionId = await signIn();
      const created = await post('/vendors', { name: 'Umbrella' }, as(sessionId));
      expect(created.status).toBe(200);
      const read = await t.call('GET', `${BASE}/vendors/${created.body.id as string}`, {
        headers: as(sessionId),
      });
      expect(read.body).toMatchObject({ id: created.body.id, name: 'Umbrella', archived: false });
      expectError(await t.call('GET', `${BASE}/vendors/nope`, { headers: as(sessionId) }), 404, 'BDC_1120');
      // A v2 session works on v3 and sees the same vendor.
      const v2 = await t.call('POST', '/bill/api/v2/Login.json', { form: { ...demo, devKey } });
      const v2Session = v2.body.response_data.sessionId as string;
      const seen = await t.call('GET', `${BASE}/vendors/${created.body.id as string}`, {
        headers: as(v2Session),
      });
      expect(seen.body.name).toBe('Umbrella');
      expect(t.sandbox.billV3.sessions()).toEqual(t.sandbox.bill.sessions());
    });

    it('logs out at once, and GET /login/session shows the MFA status', async () => {
      const sessionId = await signIn();
      expect((await t.call('GET', `${BASE}/login/session`, { headers: as(sessionId) })).body).toMatchObject({
        organizationId: demo.orgId,
        mfaStatus: 'UNTRUSTED',
      });
      expect((await post('/logout', {}, as(sessionId))).status).toBe(200);
      expectError(await t.call('GET', `${BASE}/vendors`, { headers: as(sessionId) }), 401, 'BDC_1109');
    });

    it('answers an unknown path with 404 BDC_1121', async () => {
      expectError(await t.call('GET', `${BASE}/nothing`), 404, 'BDC_1121');
      expectError(await t.call('DELETE', `${BASE}/vendors`), 404, 'BDC_1121');
    });
  });

  describe('idle expiry', () => {
    it('ends a password session after 35 idle minutes, a sync-token one after 48 hours', async () => {
      const user = await signIn();
      const token = await signIn({ ...login, username: sync.tokenName, password: sync.tokenValue });
      t.clock.advance(minutes(34));
      expect((await t.call('GET', `${BASE}/vendors`, { headers: as(user) })).status).toBe(200);
      t.clock.advance(minutes(35));
      expectError(await t.call('GET', `${BASE}/vendors`, { headers: as(user) }), 401, 'BDC_1109');
      expect((await t.call('GET', `${BASE}/vendors`, { headers: as(token) })).status).toBe(200);
      t.clock.advance(minutes(47 * 60));
      expect((await t.call('GET', `${BASE}/vendors`, { headers: as(token) })).status).toBe(200);
      t.clock.advance(minutes(48 * 60));
      expectError(await t.call('GET', `${BASE}/vendors`, { headers: as(token) }), 401, 'BDC_1109');
    });
  });

  describe('MFA', () => {
    it('refuses a payment on an untrusted session with 403 BDC_1361 "Untrusted session"', async () => {
      const sessionId = await signIn();
      const refused = await post('/payments', payment, as(sessionId));
      expectError(refused, 403, 'BDC_1361');
      expect(refused.body[0].message).toBe('Untrusted session');
    });

    it('trusts the session once the challenge’s code is validated', async () => {
      const sessionId = await signIn();
      const validated = await trust(sessionId);
      expect(validated.status).toBe(200);
      expect(validated.body.rememberMeId).toBeUndefined();
      expect(t.sandbox.billV3.isTrusted(sessionId)).toBe(true);
      const paid = await post('/payments', payment, as(sessionId));
      expect(paid.status).toBe(200);
      expect(paid.body).toMatchObject({ ...payment, status: 'SCHEDULED' });
    });

    it('issues a rememberMeId that trusts a later sign-in and a step-up, for the same device only', async () => {
      const { rememberMeId } = (await trust(await signIn(), true)).body;
      expect(rememberMeId).toEqual(expect.any(String));
      const trusted = await post('/login', { ...login, rememberMeId, device: 'phone-1' });
      expect(trusted.body.trusted).toBe(true);
      const elsewhere = await post('/login', { ...login, rememberMeId, device: 'phone-2' });
      expect(elsewhere.body.trusted).toBe(false);
      const stepped = await post(
        '/mfa/step-up',
        { rememberMeId, device: 'phone-1' },
        as(elsewhere.body.sessionId),
      );
      expect(stepped.status).toBe(200);
      expect(t.sandbox.billV3.isTrusted(elsewhere.body.sessionId as string)).toBe(true);
      t.clock.advance(31 * 86_400_000);
      expect((await post('/login', { ...login, rememberMeId, device: 'phone-1' })).body.trusted).toBe(false);
    });

    it('spends a challenge after 5 wrong codes, and binds it to its session', async () => {
      const sessionId = await signIn();
      const other = await signIn();
      const { challengeId } = (await post('/mfa/challenge', {}, as(sessionId))).body;
      const attempt = (token: string, id = sessionId) =>
        post('/mfa/challenge/validate', { challengeId, token, device: 'd', machineName: 'm' }, as(id));
      expectError(await attempt(code, other), 400, 'BDC_1362');
      for (let index = 0; index < 5; index++) expectError(await attempt('000000'), 400, 'BDC_1363');
      expectError(await attempt(code), 400, 'BDC_1362');
      expect(t.sandbox.billV3.isTrusted(sessionId)).toBe(false);
    });

    it('expires a challenge after 10 minutes', async () => {
      const sessionId = await signIn();
      const { challengeId } = (await post('/mfa/challenge', {}, as(sessionId))).body;
      t.clock.advance(minutes(11));
      const body = { challengeId, token: code, device: 'd', machineName: 'm' };
      expectError(await post('/mfa/challenge/validate', body, as(sessionId)), 400, 'BDC_1362');
    });

    it('refuses MFA and payments to a sync-token session with 403 BDC_1364', async () => {
      const sessionId = await signIn({ ...login, username: sync.tokenName, password: sync.tokenValue });
      expectError(await post('/mfa/challenge', {}, as(sessionId)), 403, 'BDC_1364');
      expectError(await post('/payments', payment, as(sessionId)), 403, 'BDC_1364');
    });
  });

  describe('limits and secrets', () => {
    it('answers 429 BDC_1144 past the login limit, shared with v2', async () => {
      t.clock.set(Date.parse('2026-11-23T10:00:00Z'));
      t.sandbox.billV3.setLoginLimit(2);
      expect((await post('/login', login)).status).toBe(200);
      expect(
        (await t.call('POST', '/bill/api/v2/Login.json', { form: { ...demo, devKey } })).body.response_status,
      ).toBe(0);
      expectError(await post('/login', login), 429, 'BDC_1144');
    });

    it('answers 429 BDC_1322 past the concurrent requests per devKey and organization', async () => {
      const sessionId = await signIn();
      t.sandbox.billV3.setConcurrencyLimit(3);
      t.sandbox.billV3.clearRequests();
      t.sandbox.billV3.hangNext(3);
      const abort = new AbortController();
      const hung = Array.from({ length: 3 }, () =>
        t
          .call('GET', `${BASE}/vendors`, { headers: as(sessionId), signal: abort.signal })
          .catch(() => undefined),
      );
      await waitFor(() => t.sandbox.billV3.requests.length === 3);
      expectError(await t.call('GET', `${BASE}/vendors`, { headers: as(sessionId) }), 429, 'BDC_1322');
      abort.abort();
      await Promise.all(hung);
      await waitFor(
        async () => (await t.call('GET', `${BASE}/vendors`, { headers: as(sessionId) })).status === 200,
      );
    });

    it('records a sessionId or devKey in the URL, and refuses it in strict mode', async () => {
      const sessionId = await signIn();
      await t.call('GET', `${BASE}/vendors?sessionId=${sessionId}`, { headers: as(sessionId) });
      expect(t.sandbox.billV3.violations.map((violation) => violation.names)).toEqual([['sessionId']]);
      t.sandbox.billV3.setStrictMode(true);
      expectError(
        await t.call('GET', `${BASE}/vendors?devKey=${devKey}`, { headers: as(sessionId) }),
        400,
        'SANDBOX_SECRET_IN_QUERY',
      );
    });
  });
});
