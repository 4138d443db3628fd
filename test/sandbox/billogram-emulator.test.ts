import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { startTestSandbox, type Answer, type TestSandbox } from './sandbox-test-client.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billogram;
const BASE = '/billogram/api/v2';
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const GOOD = basic(demo.apiUserId, demo.apiPassword);

function expectError(answer: Answer, status: number, code: string) {
  expect(answer.status).toBe(status);
  expect(answer.body).toEqual({ status: code, data: { message: expect.any(String) } });
}

describe('Billogram emulator', () => {
  let t: TestSandbox;
  beforeAll(async () => {
    t = await startTestSandbox();
  });
  afterAll(() => t.sandbox.close());
  beforeEach(() => t.sandbox.reset());

  const get = (path: string, authorization?: string) =>
    t.call('GET', `${BASE}${path}`, { headers: authorization ? { authorization } : {} });

  describe('HTTP Basic on every request', () => {
    it('answers no credentials (or another scheme) with 401 MISSING_AUTH', async () => {
      expectError(await get('/customer'), 401, 'MISSING_AUTH');
      expectError(await get('/customer', 'Bearer token'), 401, 'MISSING_AUTH');
    });

    it('answers wrong credentials with 401 INVALID_AUTH', async () => {
      expectError(await get('/customer', basic(demo.apiUserId, 'wrong')), 401, 'INVALID_AUTH');
      expectError(await get('/customer', basic('someone', demo.apiPassword)), 401, 'INVALID_AUTH');
      expectError(
        await get('/customer', `Basic ${Buffer.from('no-colon').toString('base64')}`),
        401,
        'INVALID_AUTH',
      );
    });

    it('answers INVALID_AUTH with 403 while the switch is on', async () => {
      t.sandbox.billogram.setInvalidAuthStatus(403);
      expectError(await get('/customer', basic(demo.apiUserId, 'wrong')), 403, 'INVALID_AUTH');
      expectError(await get('/customer'), 401, 'MISSING_AUTH');
      t.sandbox.reset();
      expectError(await get('/customer', basic(demo.apiUserId, 'wrong')), 401, 'INVALID_AUTH');
    });

    it('is stateless: revoking the API user makes the same credentials INVALID_AUTH until reset', async () => {
      expect((await get('/customer/1', GOOD)).status).toBe(200);
      t.sandbox.billogram.expireAllSessions();
      expectError(await get('/customer/1', GOOD), 401, 'INVALID_AUTH');
      t.sandbox.reset();
      t.sandbox.billogram.expireSession(demo.apiUserId);
      expectError(await get('/customer/1', GOOD), 401, 'INVALID_AUTH');
      t.sandbox.reset();
      expect((await get('/customer/1', GOOD)).status).toBe(200);
    });
  });

  describe('customers', () => {
    it('GET /customer?page=1&page_size=1 answers OK with one customer and meta.total_count', async () => {
      const answer = await get('/customer?page=1&page_size=1', GOOD);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        status: 'OK',
        data: [expect.objectContaining({ customer_no: 1 })],
        meta: { total_count: expect.any(Number) },
      });
      expect(answer.body.meta.total_count).toBeGreaterThan(1);
    });

    it('refuses bad paging with 400 INVALID_PARAMETER and half a filter with 400 MISSING_QUERY_PARAMETER', async () => {
      expectError(await get('/customer?page=0', GOOD), 400, 'INVALID_PARAMETER');
      expectError(await get('/customer?page_size=1000', GOOD), 400, 'INVALID_PARAMETER');
      expectError(await get('/customer?page=x', GOOD), 400, 'INVALID_PARAMETER');
      expectError(await get('/customer?filter_field=name', GOOD), 400, 'MISSING_QUERY_PARAMETER');
      const filtered = await get('/customer?filter_field=name&filter_value=Acme%20AB', GOOD);
      expect(filtered.body.data).toEqual([expect.objectContaining({ name: 'Acme AB' })]);
    });

    it('GET /customer/{customer_no} answers OK, and 404 NOT_FOUND for an unknown one', async () => {
      expect((await get('/customer/1', GOOD)).body).toEqual({
        status: 'OK',
        data: expect.objectContaining({ customer_no: 1, name: expect.any(String) }),
      });
      expectError(await get('/customer/424242', GOOD), 404, 'NOT_FOUND');
      expectError(await get('/nothing', GOOD), 404, 'NOT_FOUND');
    });

    it('POST /customer creates a customer, and refuses one without a name with 400 INVALID_PARAMETER', async () => {
      const created = await t.call('POST', `${BASE}/customer`, {
        headers: { authorization: GOOD },
        json: { name: 'Nya Kunden AB' },
      });
      expect(created.status).toBe(200);
      const { customer_no } = created.body.data;
      expect((await get(`/customer/${customer_no}`, GOOD)).body.data.name).toBe('Nya Kunden AB');
      const refused = await t.call('POST', `${BASE}/customer`, {
        headers: { authorization: GOOD },
        json: {},
      });
      expectError(refused, 400, 'INVALID_PARAMETER');
    });

    it('answers what the API user may not do with 403 PERMISSION_DENIED', async () => {
      expectError(
        await t.call('DELETE', `${BASE}/customer/1`, { headers: { authorization: GOOD } }),
        403,
        'PERMISSION_DENIED',
      );
    });
  });
});
