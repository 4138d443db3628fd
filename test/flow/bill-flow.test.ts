import { beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { leaksOf } from '../support/secrets.js';
import { createTestClock } from '../support/test-clock.js';
import { useStack } from '../support/stack.js';
import { signedOut } from '../support/security-expect.js';

const demo = SANDBOX_DEMO_CREDENTIALS.bill;
const form = (fields: Record<string, string>) => ({
  body: new URLSearchParams(fields).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
});

describe('BILL end to end on Redis', () => {
  const upstreamClock = createTestClock(Date.now());

  const stack = useStack({ sandbox: { clock: upstreamClock } });
  beforeEach(() => stack.sandbox.reset());

  it('signs in with the configured devKey and shows the org and the upstream idle deadline', async () => {
    const client = stack.client();
    const login = await client.post('/auth/bill/login', demo);
    expect(login.status).toBe(200);
    expect(login.body.providers.bill).toMatchObject({
      connected: true,
      user: demo.userName,
      orgId: demo.orgId,
    });
    const idle = Date.parse(login.body.providers.bill.upstreamIdleExpiresAt) - Date.now();
    expect(idle).toBeGreaterThan(34 * 60_000);
    expect(idle).toBeLessThanOrEqual(35 * 60_000);
    const sent = stack.sandbox.bill.requests.find((r) => r.path.endsWith('/Login.json'))!;
    expect(new URLSearchParams(sent.body).get('devKey')).toBe(SANDBOX_DEMO_CREDENTIALS.billDevKey);
    expect(sent.query).toBe('');
  });

  it('refuses a devKey sent by the client: the login body allows only userName, password and orgId', async () => {
    const answer = await stack.client().post('/auth/bill/login', { ...demo, devKey: 'attacker-key' });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('invalid_request');
  });

  it('sets devKey and sessionId in relayed form bodies, replacing any the client sent, and never in the URL', async () => {
    stack.sandbox.bill.setStrictMode(true);
    const client = stack.client();
    await client.post('/auth/bill/login', demo);
    const sessionId = stack.sandbox.bill.sessions().at(-1)!;
    const list = await client.request(
      'POST',
      '/api/bill/List/Vendor.json',
      form({ data: JSON.stringify({ start: 0, max: 10 }), devKey: 'evil', SESSIONID: 'evil' }),
    );
    expect(list.status).toBe(200);
    expect(list.body.response_status).toBe(0);
    const sent = new URLSearchParams(stack.sandbox.bill.requests.at(-1)!.body);
    expect(sent.getAll('devKey')).toEqual([SANDBOX_DEMO_CREDENTIALS.billDevKey]);
    expect(sent.getAll('sessionId')).toEqual([sessionId]);
    expect(sent.get('SESSIONID')).toBeNull();
    expect(stack.sandbox.bill.violations).toEqual([]);

    // A body-less call still carries the credential in its form body.
    const info = await client.request('POST', '/api/bill/GetSessionInfo.json');
    expect(info.status).toBe(200);
    expect(info.body.response_status).toBe(0);
    expect(
      leaksOf([sessionId, SANDBOX_DEMO_CREDENTIALS.billDevKey, demo.password], stack.billfold.logs),
    ).toEqual([]);
  });

  it('keeps a UTF-8 form field as sent, and refuses a form not UTF-8 or with a stray % rather than change it', async () => {
    const client = stack.client();
    await client.post('/auth/bill/login', demo);
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const data = JSON.stringify({ name: 'Café Ünïcode ✓ 日本' });
    const sent = () => new URLSearchParams(stack.sandbox.bill.requests.at(-1)!.body);

    // Percent-encoded, and raw.
    const kept = await client.request('POST', '/api/bill/List/Vendor.json', {
      body: `data=${encodeURIComponent(data)}&note=Café+✓`,
      headers,
    });
    expect(kept.status).toBe(200);
    expect(sent().get('data')).toBe(data);
    expect(sent().get('note')).toBe('Café ✓');

    const before = stack.sandbox.bill.requests.length;
    for (const body of [
      'data=Caf%E9', // Latin-1 é, percent-encoded
      Buffer.concat([Buffer.from('data=Caf'), Buffer.from([0xe9])]), // Latin-1 é, raw
      'data=%C3', // a UTF-8 sequence cut short
      'data=%C0%AF', // an overlong '/'
      'da%FFta=1',
      'data=%41✓%zz', // a stray '%', which Node's URLSearchParams reads as 'A\u0013%zz'
      'data=100%',
    ]) {
      const refused = await client.request('POST', '/api/bill/List/Vendor.json', { body, headers });
      expect(refused.status, String(body)).toBe(400);
      expect(refused.body.error).toMatchObject({ code: 'invalid_request', provider: 'bill' });
    }
    expect(stack.sandbox.bill.requests.length).toBe(before);
    expect((await client.get('/auth/session')).body.providers.bill.connected).toBe(true);
  });

  it('reads BDC_1109 inside an HTTP 200 as upstream_session_expired and marks BILL disconnected', async () => {
    const client = stack.client();
    await client.post('/auth/bill/login', demo);
    await client.post('/auth/billogram/login', SANDBOX_DEMO_CREDENTIALS.billogram);
    upstreamClock.advance(36 * 60_000);
    const answer = await client.request('POST', '/api/bill/List/Vendor.json', form({ data: '{}' }));
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 'upstream_session_expired', provider: 'bill' });
    const view = await client.get('/auth/session');
    expect(view.body.providers.bill).toEqual({ connected: false });
    expect(view.body.providers.billogram.connected).toBe(true);
  });

  it('signs in with a sync token, shows mode sync-token and the 48-hour idle expiry, and relays', async () => {
    const token = SANDBOX_DEMO_CREDENTIALS.billSyncToken;
    const client = stack.client();
    const login = await client.post('/auth/bill/login', token);
    expect(login.status).toBe(200);
    expect(login.body.providers.bill).toMatchObject({
      connected: true,
      apiVersion: 'v2',
      mode: 'sync-token',
      user: token.tokenName,
      orgId: token.orgId,
    });
    expect(login.body.providers.bill.trusted).toBeUndefined();
    const idle = Date.parse(login.body.providers.bill.upstreamIdleExpiresAt) - Date.now();
    expect(idle).toBeGreaterThan(47 * 3_600_000);
    expect(idle).toBeLessThanOrEqual(48 * 3_600_000);
    const sent = new URLSearchParams(stack.sandbox.bill.requests.find((r) => r.path === '/Login.json')!.body);
    expect([sent.get('userName'), sent.get('password')]).toEqual([token.tokenName, token.tokenValue]);
    // BILL keeps a sync-token session 48 hours; 36 idle minutes end a password one, not this.
    upstreamClock.advance(36 * 60_000);
    const list = await client.request('POST', '/api/bill/List/Vendor.json', form({ data: '{}' }));
    expect(list.status).toBe(200);
    expect(list.body.response_status).toBe(0);
    expect(leaksOf([token.tokenValue, stack.sandbox.bill.sessions().at(-1)!], stack.billfold.logs)).toEqual(
      [],
    );
  });

  it('names the missing or extra field of a BILL login body', async () => {
    for (const [body, field] of [
      [{ userName: demo.userName, orgId: demo.orgId }, 'password'],
      [{ tokenName: 'x', orgId: demo.orgId }, 'tokenValue'],
      [{ ...demo, tokenName: 'x', tokenValue: 'y' }, 'tokenName'],
    ] as const) {
      const answer = await stack.client().post('/auth/bill/login', body);
      expect(answer.status).toBe(400);
      expect(answer.body.error).toMatchObject({
        code: 'invalid_request',
        message: expect.stringContaining(field),
      });
    }
  });

  it('refuses BILL’s own login and logout endpoints through the relay, in any case', async () => {
    const client = stack.client();
    await client.post('/auth/bill/login', demo);
    for (const path of ['Login.json', 'login.JSON', 'Logout.json']) {
      const answer = await client.request('POST', `/api/bill/${path}`, form({}));
      expect(answer.body.error.code).toBe('forbidden_upstream_path');
    }
  });

  it('signs out upstream with Logout.json and ends the session with its last provider', async () => {
    const client = stack.client();
    await client.post('/auth/bill/login', demo);
    const sessionId = stack.sandbox.bill.sessions().at(-1)!;
    const logout = await client.post('/auth/bill/logout');
    expect(logout.status).toBe(200);
    expect(logout.body).toEqual(signedOut());
    expect(logout.setCookies.join()).toMatch(/Expires=Thu, 01 Jan 1970/);
    const call = stack.sandbox.bill.requests.find((r) => r.path.endsWith('/Logout.json'))!;
    expect(new URLSearchParams(call.body).get('sessionId')).toBe(sessionId);
    expect(stack.sandbox.bill.sessions()).not.toContain(sessionId);
  });
});
