import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { minutes, startTestSandbox, type TestSandbox } from './sandbox-test-client.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billingplatform;
const BASE = '/billingplatform/demo/rest/2.0';

describe('BillingPlatform emulator', () => {
  let t: TestSandbox;
  beforeAll(async () => {
    t = await startTestSandbox();
  });
  afterAll(() => t.sandbox.close());
  beforeEach(() => t.sandbox.reset());

  const login = async (credentials: unknown = demo) => t.call('POST', `${BASE}/login`, { json: credentials });
  const signIn = async () => {
    const answer = await login();
    return answer.body.loginResponse[0].SessionID as string;
  };
  const get = (path: string, sessionId?: string, headerName = 'sessionid') =>
    t.call('GET', `${BASE}${path}`, { headers: sessionId === undefined ? {} : { [headerName]: sessionId } });

  describe('POST /login', () => {
    it('answers 200 with a SessionID, ErrorCode "0" and an empty ErrorText', async () => {
      const answer = await login();
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        loginResponse: [{ SessionID: expect.any(String), ErrorCode: '0', ErrorText: [] }],
      });
      expect(t.sandbox.billingplatform.sessions()).toEqual([answer.body.loginResponse[0].SessionID]);
      t.sandbox.billingplatform.expireAllSessions();
    });

    it.each([
      ['a wrong password', { username: demo.username, password: 'wrong' }],
      ['an unknown user', { username: 'nobody', password: demo.password }],
      ['a missing password', { username: demo.username }],
      ['a body that is not an object', ['demo']],
    ])(
      'refuses %s with 401, an empty SessionID, a non-zero ErrorCode and a message list',
      async (_name, body) => {
        const answer = await login(body);
        expect(answer.status).toBe(401);
        const [result] = answer.body.loginResponse;
        expect(result.SessionID).toBe('');
        expect(result.ErrorCode).not.toBe('0');
        expect(result.ErrorText).toEqual([expect.any(String)]);
      },
    );

    it('answers a failed login with HTTP 200 (same body) while the switch is on, and 401 again after reset', async () => {
      t.sandbox.billingplatform.setLoginFailureStatus(200);
      const answer = await login({ username: demo.username, password: 'wrong' });
      expect(answer.status).toBe(200);
      expect(answer.body.loginResponse[0]).toMatchObject({ SessionID: '', ErrorCode: '1' });
      t.sandbox.reset();
      expect((await login({ username: demo.username, password: 'wrong' })).status).toBe(401);
    });
  });

  describe('authenticated calls', () => {
    it('accepts the sessionid header whatever its case', async () => {
      const sessionId = await signIn();
      expect((await get('/ACCOUNT/1001', sessionId, 'SessionID')).status).toBe(200);
      expect((await get('/ACCOUNT/1001', sessionId, 'SESSIONID')).status).toBe(200);
    });

    it.each([
      ['no sessionid header', undefined],
      ['an unknown session id', 'not-a-session'],
    ])(
      'answers %s with 401 {"error":"unauthorized","message":"Invalid session ID"}',
      async (_name, sessionId) => {
        const answer = await get('/ACCOUNT/1001', sessionId);
        expect(answer.status).toBe(401);
        expect(answer.body).toEqual({ error: 'unauthorized', message: 'Invalid session ID' });
      },
    );

    it('does not take the session id from an Authorization header', async () => {
      const sessionId = await signIn();
      const answer = await t.call('GET', `${BASE}/ACCOUNT/1001`, {
        headers: { authorization: `Session ${sessionId}` },
      });
      expect(answer.status).toBe(401);
    });

    it('checks the session before it reveals whether a path exists', async () => {
      expect((await get('/NOSUCH/1')).status).toBe(401);
      expect((await get('/NOSUCH/1', await signIn())).status).toBe(404);
    });
  });

  describe('POST /logout', () => {
    it('kills the session at once', async () => {
      const sessionId = await signIn();
      const logout = await t.call('POST', `${BASE}/logout`, { headers: { sessionid: sessionId } });
      expect(logout.status).toBe(200);
      expect((await get('/ACCOUNT/1001', sessionId)).status).toBe(401);
      expect(t.sandbox.billingplatform.sessions()).not.toContain(sessionId);
    });

    it('answers 401 without a live session', async () => {
      expect((await t.call('POST', `${BASE}/logout`)).status).toBe(401);
    });
  });

  describe('POST /logout with the Authorization-only switch', () => {
    it('accepts only `Authorization: Session <SessionID>` on logout, while other calls keep `sessionid`', async () => {
      t.sandbox.billingplatform.setLogoutForm('authorization');
      const sessionId = await signIn();
      const byHeader = await t.call('POST', `${BASE}/logout`, { headers: { sessionid: sessionId } });
      expect(byHeader.status).toBe(401);
      expect(t.sandbox.billingplatform.sessions()).toContain(sessionId);
      expect(
        (await t.call('GET', `${BASE}/ACCOUNT/1001`, { headers: { sessionid: sessionId } })).status,
      ).toBe(200);
      const byAuthorization = await t.call('POST', `${BASE}/logout`, {
        headers: { authorization: `Session ${sessionId}` },
      });
      expect(byAuthorization.status).toBe(200);
      expect(t.sandbox.billingplatform.sessions()).not.toContain(sessionId);
      t.sandbox.reset();
      const next = await signIn();
      const refused = await t.call('POST', `${BASE}/logout`, {
        headers: { authorization: `Session ${next}` },
      });
      expect(refused.status).toBe(401);
    });
  });

  describe('idle timeout', () => {
    it('expires a session after 30 idle minutes, and every authenticated call slides the timer', async () => {
      const sessionId = await signIn();
      t.clock.advance(minutes(29));
      expect((await get('/ACCOUNT/1001', sessionId)).status).toBe(200);
      t.clock.advance(minutes(29));
      expect((await get('/ACCOUNT/1001', sessionId)).status).toBe(200);
      t.clock.advance(minutes(30));
      const answer = await get('/ACCOUNT/1001', sessionId);
      expect(answer.status).toBe(401);
      expect(answer.body.message).toBe('Invalid session ID');
    });

    it('force-expires one session or all of them', async () => {
      const first = await signIn();
      const second = await signIn();
      t.sandbox.billingplatform.expireSession(first);
      expect((await get('/ACCOUNT/1001', first)).status).toBe(401);
      expect((await get('/ACCOUNT/1001', second)).status).toBe(200);
      t.sandbox.billingplatform.expireAllSessions();
      expect((await get('/ACCOUNT/1001', second)).status).toBe(401);
      expect(t.sandbox.billingplatform.sessions()).toEqual([]);
    });
  });

  describe('resources', () => {
    let sessionId: string;
    beforeAll(async () => {
      sessionId = await signIn();
    });

    it('GET /ACCOUNT/{id} answers a retrieveResponse, and 404 for an unknown id', async () => {
      const answer = await get('/ACCOUNT/1001', sessionId);
      expect(answer.body).toEqual({
        retrieveResponse: [expect.objectContaining({ Id: '1001', Name: expect.any(String) })],
      });
      expect((await get('/ACCOUNT/999999', sessionId)).status).toBe(404);
    });

    it('POST /ACCOUNT with brmObjects answers a createResponse whose Id can be read back', async () => {
      const created = await t.call('POST', `${BASE}/ACCOUNT`, {
        headers: { sessionid: sessionId },
        json: { brmObjects: { Name: 'Acme Two' } },
      });
      expect(created.status).toBe(200);
      const [{ Id }] = created.body.createResponse;
      const read = await get(`/ACCOUNT/${Id}`, sessionId);
      expect(read.body.retrieveResponse[0]).toMatchObject({ Id, Name: 'Acme Two' });
      const refused = await t.call('POST', `${BASE}/ACCOUNT`, {
        headers: { sessionid: sessionId },
        json: {},
      });
      expect(refused.status).toBe(400);
    });

    it('GET /query?sql= answers a queryResponse', async () => {
      const sql = encodeURIComponent("SELECT Id, Name FROM ACCOUNT WHERE Id = '1002'");
      const answer = await get(`/query?sql=${sql}`, sessionId);
      expect(answer.body).toEqual({ queryResponse: [expect.objectContaining({ Id: '1002' })] });
      expect(
        (await get('/query?sql=SELECT%20Id%20FROM%20ACCOUNT', sessionId)).body.queryResponse.length,
      ).toBeGreaterThan(1);
      expect((await get('/query', sessionId)).status).toBe(400);
    });
  });

  it('answers every request 429 with Retry-After while rate limited, login included', async () => {
    const sessionId = await signIn();
    t.sandbox.billingplatform.setRateLimited(true);
    for (const answer of [await login(), await get('/ACCOUNT/1001', sessionId)]) {
      expect(answer.status).toBe(429);
      expect(answer.headers.get('retry-after')).toBe('1');
    }
    t.sandbox.billingplatform.setRateLimited(false);
    expect((await get('/ACCOUNT/1001', sessionId)).status).toBe(200);
  });

  it('logs each request with method, path, query, lower-cased headers and the raw body', async () => {
    t.sandbox.billingplatform.clearRequests();
    await t.call('POST', `${BASE}/login?trace=1`, {
      json: demo,
      headers: { 'X-Trace-Id': 'abc' },
    });
    expect(t.sandbox.billingplatform.requests).toEqual([
      expect.objectContaining({
        method: 'POST',
        path: '/login',
        query: 'trace=1',
        headers: expect.objectContaining({ 'x-trace-id': 'abc', 'content-type': 'application/json' }),
        body: JSON.stringify(demo),
        receivedAt: t.clock.now(),
      }),
    ]);
    t.sandbox.billingplatform.clearRequests();
    expect(t.sandbox.billingplatform.requests).toEqual([]);
  });
});
