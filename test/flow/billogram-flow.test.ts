import { beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { leaksOf } from '../support/secrets.js';
import { useStack } from '../support/stack.js';
import { signedOut } from '../support/security-expect.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billogram;
const basic = `Basic ${Buffer.from(`${demo.apiUserId}:${demo.apiPassword}`).toString('base64')}`;

describe('Billogram end to end on Redis', () => {
  const stack = useStack();
  beforeEach(() => stack.sandbox.reset());

  it('checks the credentials with one cheap call before storing them', async () => {
    const wrong = await stack.client().post('/auth/billogram/login', { ...demo, apiPassword: 'wrong' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('invalid_credentials');
    expect(wrong.setCookies).toEqual([]);
    const check = stack.sandbox.billogram.requests.at(-1)!;
    expect(check.method).toBe('GET');
    expect(check.path).toMatch(/\/customer$/);
    expect(check.query).toBe('page=1&page_size=1');
  });

  it('relays with HTTP Basic, replacing any Authorization the client sent, and passes other refusals through', async () => {
    const client = stack.client();
    expect((await client.post('/auth/billogram/login', demo)).status).toBe(200);
    const customer = await client.get('/api/billogram/customer/1', {
      authorization: 'Basic c3RvbGVuOnN0b2xlbg==',
    });
    expect(customer.status).toBe(200);
    expect(customer.body).toMatchObject({ status: 'OK', data: { customer_no: 1 } });
    expect(stack.sandbox.billogram.requests.at(-1)!.headers.authorization).toBe(basic);

    const denied = await client.request('DELETE', '/api/billogram/customer/1');
    expect(denied.status).toBe(403);
    expect(denied.body.status).toBe('PERMISSION_DENIED');
    expect((await client.get('/auth/session')).body.providers.billogram.connected).toBe(true);
    expect(leaksOf([basic.slice(6), demo.apiPassword], stack.billfold.logs)).toEqual([]);
  });

  it.each([401, 403] as const)(
    'reads INVALID_AUTH answered with %i as upstream_session_expired',
    async (status) => {
      stack.sandbox.billogram.setInvalidAuthStatus(status);
      const client = stack.client();
      await client.post('/auth/billogram/login', demo);
      stack.sandbox.billogram.expireAllSessions();
      const answer = await client.get('/api/billogram/customer/1');
      expect(answer.status).toBe(401);
      expect(answer.body.error).toMatchObject({ code: 'upstream_session_expired', provider: 'billogram' });
      expect((await client.get('/auth/session')).body).toEqual(signedOut());
    },
  );

  it('signs out without an upstream call (Billogram is stateless) and forgets the credential', async () => {
    const client = stack.client();
    await client.post('/auth/billogram/login', demo);
    stack.sandbox.billogram.clearRequests();
    const logout = await client.post('/auth/billogram/logout');
    expect(logout.body).toEqual(signedOut());
    expect(stack.sandbox.billogram.requests).toEqual([]);
    expect((await client.get('/api/billogram/customer/1')).body.error.code).toBe('unauthenticated');
  });
});
