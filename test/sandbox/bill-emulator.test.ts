import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BILL_SECRET_IN_QUERY_CODE } from '../../src/sandbox/bill-emulator.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { minutes, startTestSandbox, waitFor, type Answer, type TestSandbox } from './sandbox-test-client.js';

const demo = SANDBOX_DEMO_CREDENTIALS.bill;
const devKey = SANDBOX_DEMO_CREDENTIALS.billDevKey;
const BASE = '/bill/api/v2';
const loginFields = { ...demo, devKey };

/** Asserts BILL's failure envelope, inside HTTP 200 unless `status` says otherwise. */
function expectFailure(answer: Answer, code: string, status = 200) {
  expect(answer.status).toBe(status);
  expect(answer.body).toEqual({
    response_status: 1,
    response_message: 'Error',
    response_data: { error_code: code, error_message: expect.any(String) },
  });
}

describe('BILL emulator', () => {
  let t: TestSandbox;
  beforeAll(async () => {
    t = await startTestSandbox();
  });
  afterAll(() => t.sandbox.close());
  beforeEach(() => t.sandbox.reset());

  const post = (path: string, form: Record<string, string>, query = '') =>
    t.call('POST', `${BASE}${path}${query}`, { form });
  const signIn = async () => {
    const answer = await post('/Login.json', loginFields);
    return answer.body.response_data.sessionId as string;
  };
  const callWith = (sessionId: string, path: string, data?: unknown) =>
    post(path, { devKey, sessionId, ...(data !== undefined && { data: JSON.stringify(data) }) });

  describe('POST /Login.json', () => {
    it('answers the success envelope with sessionId, orgId, apiEndPoint and usersId', async () => {
      const answer = await post('/Login.json', loginFields);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        response_status: 0,
        response_message: 'Success',
        response_data: {
          sessionId: expect.any(String),
          orgId: demo.orgId,
          apiEndPoint: `${t.sandbox.url}/bill/api`,
          usersId: expect.any(String),
        },
      });
      expect(t.sandbox.bill.sessions()).toContain(answer.body.response_data.sessionId);
    });

    it('checks in order of severity: devKey BDC_1102, then orgId BDC_1123, then credentials BDC_1101, all in HTTP 200', async () => {
      const allWrong = { userName: 'x', password: 'y', orgId: 'z', devKey: 'bad' };
      expectFailure(await post('/Login.json', allWrong), 'BDC_1102');
      expectFailure(await post('/Login.json', { ...allWrong, devKey }), 'BDC_1123');
      expectFailure(await post('/Login.json', { ...allWrong, devKey, orgId: demo.orgId }), 'BDC_1101');
      expectFailure(await post('/Login.json', { ...loginFields, password: 'wrong' }), 'BDC_1101');
    });

    it('answers a missing field with BDC_1108', async () => {
      const { password: _password, ...withoutPassword } = loginFields;
      expectFailure(await post('/Login.json', withoutPassword), 'BDC_1108');
    });

    it('reads fields only from a form body, not from JSON', async () => {
      const answer = await t.call('POST', `${BASE}/Login.json`, { json: loginFields });
      expectFailure(answer, 'BDC_1108');
    });
  });

  describe('later calls', () => {
    it('need devKey and sessionId fields (BDC_1108), a valid devKey (BDC_1102) and a live session (BDC_1109, still HTTP 200)', async () => {
      const sessionId = await signIn();
      expectFailure(await post('/List/Vendor.json', { devKey }), 'BDC_1108');
      expectFailure(await post('/List/Vendor.json', { sessionId }), 'BDC_1108');
      expectFailure(await post('/List/Vendor.json', { devKey: 'bad', sessionId }), 'BDC_1102');
      const unknown = await post('/List/Vendor.json', { devKey, sessionId: 'not-a-session' });
      expectFailure(unknown, 'BDC_1109');
      expect(unknown.body.response_data.error_message).toBe('Session is invalid. Please log in.');
    });

    it('List/Vendor.json answers the vendors in the success envelope', async () => {
      const answer = await callWith(await signIn(), '/List/Vendor.json', { start: 0, max: 1 });
      expect(answer.body).toEqual({
        response_status: 0,
        response_message: 'Success',
        response_data: [expect.objectContaining({ entity: 'Vendor', id: expect.any(String) })],
      });
    });

    it('Crud/Create/Vendor.json creates a vendor that Crud/Read/Vendor.json reads back', async () => {
      const sessionId = await signIn();
      const created = await callWith(sessionId, '/Crud/Create/Vendor.json', {
        obj: { entity: 'Vendor', name: 'Umbrella' },
      });
      expect(created.body.response_status).toBe(0);
      const { id } = created.body.response_data;
      const read = await callWith(sessionId, '/Crud/Read/Vendor.json', { id });
      expect(read.body.response_data).toMatchObject({ entity: 'Vendor', id, name: 'Umbrella' });
    });

    it('refuses Crud calls without data (BDC_1108), with bad JSON (BDC_1122), a missing id (BDC_1117) or an unknown one (BDC_1120)', async () => {
      const sessionId = await signIn();
      expectFailure(await callWith(sessionId, '/Crud/Read/Vendor.json'), 'BDC_1108');
      expectFailure(await post('/Crud/Read/Vendor.json', { devKey, sessionId, data: '{nope' }), 'BDC_1122');
      expectFailure(await callWith(sessionId, '/Crud/Read/Vendor.json', {}), 'BDC_1117');
      expectFailure(await callWith(sessionId, '/Crud/Read/Vendor.json', { id: 'nope' }), 'BDC_1120');
      expectFailure(
        await callWith(sessionId, '/Crud/Create/Vendor.json', { obj: { entity: 'Bill' } }),
        'BDC_1118',
      );
    });

    it('GetSessionInfo.json answers the organization and user of the session', async () => {
      const answer = await callWith(await signIn(), '/GetSessionInfo.json');
      expect(answer.body.response_data).toEqual({ organizationId: demo.orgId, userId: expect.any(String) });
    });

    it('Logout.json kills the session at once', async () => {
      const sessionId = await signIn();
      expect((await callWith(sessionId, '/Logout.json')).body.response_status).toBe(0);
      expectFailure(await callWith(sessionId, '/GetSessionInfo.json'), 'BDC_1109');
      expect(t.sandbox.bill.sessions()).not.toContain(sessionId);
    });

    it('answers an unknown path, or a method other than POST, with HTTP 404 and BDC_1121', async () => {
      expectFailure(await post('/Crud/Read/Nothing.json', { devKey }), 'BDC_1121', 404);
      expectFailure(await t.call('GET', `${BASE}/List/Vendor.json`), 'BDC_1121', 404);
    });
  });

  describe('idle expiry', () => {
    it('expires a session after 35 idle minutes and answers BDC_1109 inside HTTP 200', async () => {
      const sessionId = await signIn();
      t.clock.advance(minutes(34));
      expect((await callWith(sessionId, '/GetSessionInfo.json')).body.response_status).toBe(0);
      t.clock.advance(minutes(34));
      // Any call resets the timer, a failed one included.
      expectFailure(await callWith(sessionId, '/Crud/Read/Vendor.json', { id: 'nope' }), 'BDC_1120');
      t.clock.advance(minutes(34));
      expect((await callWith(sessionId, '/GetSessionInfo.json')).body.response_status).toBe(0);
      t.clock.advance(minutes(35));
      expectFailure(await callWith(sessionId, '/GetSessionInfo.json'), 'BDC_1109');
    });

    it('force-expires one session or all of them', async () => {
      const first = await signIn();
      const second = await signIn();
      t.sandbox.bill.expireSession(first);
      expectFailure(await callWith(first, '/GetSessionInfo.json'), 'BDC_1109');
      expect((await callWith(second, '/GetSessionInfo.json')).body.response_status).toBe(0);
      t.sandbox.bill.expireAllSessions();
      expectFailure(await callWith(second, '/GetSessionInfo.json'), 'BDC_1109');
    });
  });

  describe('secrets in query strings', () => {
    it('records userName, password, devKey and sessionId in a URL as a violation (names only) and still answers', async () => {
      const answer = await post(
        '/Login.json',
        {},
        `?userName=${demo.userName}&password=${demo.password}&orgId=${demo.orgId}&devKey=${devKey}`,
      );
      expect(answer.body.response_status).toBe(0);
      expect(t.sandbox.bill.violations).toEqual([
        {
          method: 'POST',
          path: '/Login.json',
          names: ['userName', 'password', 'devKey'],
          receivedAt: t.clock.now(),
        },
      ]);
      expect(JSON.stringify(t.sandbox.bill.violations)).not.toContain(demo.password);
    });

    it('matches the names case-insensitively and records nothing for other parameters', async () => {
      const sessionId = await signIn();
      await post('/GetSessionInfo.json', { devKey, sessionId }, '?page=1');
      expect(t.sandbox.bill.violations).toEqual([]);
      await post('/GetSessionInfo.json', { devKey }, `?SESSIONID=${sessionId}`);
      expect(t.sandbox.bill.violations.map((violation) => violation.names)).toEqual([['SESSIONID']]);
    });

    it('refuses them with HTTP 400 in strict mode', async () => {
      t.sandbox.bill.setStrictMode(true);
      const sessionId = await signIn();
      expectFailure(
        await post('/GetSessionInfo.json', { devKey }, `?sessionId=${sessionId}`),
        BILL_SECRET_IN_QUERY_CODE,
        400,
      );
      expect(t.sandbox.bill.violations).toHaveLength(1);
      expect((await callWith(sessionId, '/GetSessionInfo.json')).body.response_status).toBe(0);
    });
  });

  describe('limits', () => {
    it('answers BDC_1144 past the login limit per devKey, until the next clock hour', async () => {
      t.clock.set(Date.parse('2026-11-23T10:00:00Z'));
      t.sandbox.bill.setLoginLimit(2);
      expect((await post('/Login.json', loginFields)).body.response_status).toBe(0);
      expectFailure(await post('/Login.json', { ...loginFields, password: 'wrong' }), 'BDC_1101');
      expectFailure(await post('/Login.json', loginFields), 'BDC_1144');
      t.clock.set(Date.parse('2026-11-23T10:59:59Z'));
      expectFailure(await post('/Login.json', loginFields), 'BDC_1144');
      t.clock.set(Date.parse('2026-11-23T11:00:00Z'));
      expect((await post('/Login.json', loginFields)).body.response_status).toBe(0);
    });

    it('answers BDC_1322 past the concurrent requests per devKey and organization', async () => {
      const sessionId = await signIn();
      t.sandbox.bill.setConcurrencyLimit(3);
      t.sandbox.bill.clearRequests();
      t.sandbox.bill.hangNext(3);
      const abort = new AbortController();
      const hung = Array.from({ length: 3 }, () =>
        t
          .call('POST', `${BASE}/GetSessionInfo.json`, { form: { devKey, sessionId }, signal: abort.signal })
          .catch(() => undefined),
      );
      await waitFor(() => t.sandbox.bill.requests.length === 3);
      expectFailure(await callWith(sessionId, '/GetSessionInfo.json'), 'BDC_1322');
      // The count is per organization: a login to another one is not held back (it fails on its own merits).
      expectFailure(await post('/Login.json', { ...loginFields, orgId: 'OTHERORG' }), 'BDC_1123');
      abort.abort();
      await Promise.all(hung);
      // The server learns of the aborted requests when their sockets close.
      await waitFor(
        async () => (await callWith(sessionId, '/GetSessionInfo.json')).body.response_status === 0,
      );
    });
  });
});
