import { describe, expect, it } from 'vitest';
import { createBearerCheck } from '../../src/middleware/bearer-auth.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { startStack, useStack } from '../support/stack.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdefghijklmnopqrstuvwxyz';
const METRICS_TOKEN = 'metrics-token-0123456789abcdefghijklmnopqrstuvwxyz';

/** One call to the operator API, with the right token unless told another (null: none). */
async function admin(
  adminUrl: string,
  method: string,
  query: Record<string, string>,
  token: string | null = ADMIN_TOKEN,
) {
  const response = await fetch(`${adminUrl}/admin/sessions?${new URLSearchParams(query).toString()}`, {
    method,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: JSON.parse(text) };
}

const DEMO_USER = { provider: 'billingplatform', user: demo.billingplatform.username };

describe('the operator API on ADMIN_PORT, two instances on one Redis', () => {
  const stack = useStack({ instances: 2, env: { ADMIN_PORT: '0', ADMIN_TOKEN } });

  const signedIn = async (provider: 'billingplatform' | 'billogram' | 'bill', device: string) => {
    const client = stack.client();
    const login = await client.post(`/auth/${provider}/login`, demo[provider], { 'user-agent': device });
    expect(login.status).toBe(200);
    return client;
  };

  it("lists a provider user's sessions by handle, with device, times and providers, and nobody else's", async () => {
    await signedIn('billingplatform', 'Laptop');
    await signedIn('billingplatform', 'Phone');
    await signedIn('billogram', 'Someone else');

    const listed = await admin(stack.billfold.adminUrl!, 'GET', DEMO_USER);
    expect(listed.status).toBe(200);
    expect(listed.headers.get('cache-control')).toBe('no-store');
    expect(listed.body.sessions.map((s: { device: string }) => s.device).sort()).toEqual(['Laptop', 'Phone']);
    for (const session of listed.body.sessions) {
      expect(Object.keys(session)).toEqual(['id', 'device', 'createdAt', 'lastSeenAt', 'providers']);
      expect(session.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(session.providers).toEqual(['billingplatform']);
    }
    // The same answer from the other instance, and for a user nobody signed in as, an empty list.
    expect((await admin(stack.instances[1]!.adminUrl!, 'GET', DEMO_USER)).body).toEqual(listed.body);
    expect((await admin(stack.billfold.adminUrl!, 'GET', { ...DEMO_USER, user: 'nobody' })).body).toEqual({
      sessions: [],
    });
    // BILL users are named with their organization.
    await signedIn('bill', 'Accounts desk');
    const bill = await admin(stack.billfold.adminUrl!, 'GET', {
      provider: 'bill',
      user: demo.bill.userName,
      orgId: demo.bill.orgId,
    });
    expect(bill.body.sessions.map((s: { device: string }) => s.device)).toEqual(['Accounts desk']);
  });

  it('revokes them all at once with upstream logout; the other instance refuses their cookies on the next request', async () => {
    const laptop = await signedIn('billingplatform', 'Laptop');
    const phone = await signedIn('billingplatform', 'Phone');
    const bystander = await signedIn('billogram', 'Bystander');
    const upstreamBefore = stack.sandbox.billingplatform.sessions().length;

    const revoked = await admin(stack.billfold.adminUrl!, 'DELETE', DEMO_USER);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked).toBeGreaterThanOrEqual(2);
    expect(stack.sandbox.billingplatform.sessions().length).toBe(upstreamBefore - revoked.body.revoked);

    for (const client of [laptop, phone]) {
      const onSecond = stack.client(1);
      onSecond.cookie = client.cookie;
      const next = await onSecond.get('/api/billingplatform/ACCOUNT/1001');
      expect(next.status).toBe(401);
      expect(next.body.error.code).toBe('unauthenticated');
    }
    expect((await bystander.get('/api/billogram/customer')).status).toBe(200);
    expect((await admin(stack.instances[1]!.adminUrl!, 'GET', DEMO_USER)).body).toEqual({ sessions: [] });
    expect((await admin(stack.instances[1]!.adminUrl!, 'DELETE', DEMO_USER)).body).toEqual({ revoked: 0 });

    const audited = stack.billfold.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.audit === true && entry.event === 'session_revoked');
    expect(audited.length).toBe(revoked.body.revoked);
    for (const entry of audited) expect(entry).toMatchObject({ outcome: 'success', reason: 'operator' });
  });

  it('answers 401 without the right bearer token, whatever its length, and never on the main port', async () => {
    for (const token of [
      null,
      '',
      'x',
      ADMIN_TOKEN.slice(0, -1),
      `${ADMIN_TOKEN}0`,
      ADMIN_TOKEN.toUpperCase(),
    ]) {
      const refused = await admin(stack.billfold.adminUrl!, 'GET', DEMO_USER, token);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer');
      expect(refused.body.error).toMatchObject({ code: 'unauthenticated' });
      expect(refused.body.error.requestId).toBeTruthy();
    }
    const basic = await fetch(`${stack.billfold.adminUrl!}/admin/sessions?provider=bill&user=x`, {
      headers: { authorization: `Basic ${ADMIN_TOKEN}` },
    });
    expect(basic.status).toBe(401);
    const onMain = await createCookieClient(stack.billfold.url, 'billfold').request(
      'GET',
      '/admin/sessions',
      {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      },
    );
    expect(onMain.status).toBe(404);
  });

  it('refuses bad queries, other paths and methods in the documented error shape', async () => {
    const cases: Array<[string, Record<string, string>, number, string]> = [
      ['GET', { provider: 'nowhere', user: 'demo' }, 400, 'invalid_request'],
      ['GET', { provider: 'billingplatform' }, 400, 'invalid_request'],
      ['DELETE', { provider: 'billingplatform', user: 'x'.repeat(321) }, 400, 'invalid_request'],
      ['GET', { provider: 'bill', user: demo.bill.userName }, 400, 'invalid_request'],
      ['POST', DEMO_USER, 405, 'method_not_allowed'],
    ];
    for (const [method, query, status, code] of cases) {
      const answer = await admin(stack.billfold.adminUrl!, method, query);
      expect([answer.status, answer.body.error.code]).toEqual([status, code]);
    }
    const missing = await admin(stack.billfold.adminUrl!, 'GET', {});
    expect(missing.body.error.message).toBe('Invalid or missing fields: provider, user.');
    const elsewhere = await fetch(`${stack.billfold.adminUrl!}/admin/other`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(elsewhere.status).toBe(404);
  });
});

describe('the operator API on the embedded store', () => {
  it('lists and revokes the sessions of the one instance', async () => {
    const stack = await startStack({ store: 'embedded', env: { ADMIN_PORT: '0', ADMIN_TOKEN } });
    const { billfold } = stack;
    try {
      const client = stack.client();
      await client.post('/auth/billingplatform/login', demo.billingplatform);
      expect((await admin(billfold.adminUrl!, 'GET', DEMO_USER)).body.sessions).toHaveLength(1);
      expect((await admin(billfold.adminUrl!, 'DELETE', DEMO_USER)).body).toEqual({ revoked: 1 });
      expect((await client.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(401);
    } finally {
      await stack.close();
    }
  });

  it('is off unless ADMIN_PORT and ADMIN_TOKEN are both set', async () => {
    // An instance with nothing configured at all: no sandbox, no Redis.
    const stack = await startStack({ sandbox: false, store: 'embedded' });
    try {
      expect(stack.billfold.billfold.adminHandler).toBeUndefined();
      expect(stack.billfold.adminUrl).toBeUndefined();
    } finally {
      await stack.close();
    }
  });
});

describe('the bearer check', () => {
  it('accepts the token alone, compares in constant time over equal-length digests, and never throws', () => {
    const check = createBearerCheck(ADMIN_TOKEN);
    expect(check(`Bearer ${ADMIN_TOKEN}`)).toBe(true);
    expect(check(`bearer ${ADMIN_TOKEN}`)).toBe(true);
    // Lengths that would make a bare timingSafeEqual throw are just wrong tokens.
    for (const header of [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      `Bearer ${ADMIN_TOKEN}x`,
      `Bearer ${'a'.repeat(5000)}`,
    ]) {
      expect(check(header)).toBe(false);
    }
    expect(check(`Bearer ${ADMIN_TOKEN} extra`)).toBe(false);
  });
});

describe('src/main.ts with ADMIN_PORT and METRICS_PORT', () => {
  // A process on its own configuration alone: no sandbox, no Redis.
  const stack = useStack({ sandbox: false, store: 'embedded', instances: 0 });

  it('listens on both beside the main port, and closes them on SIGTERM', async () => {
    const billfold = await stack.spawn({
      BILLINGPLATFORM_BASE_URL: 'https://billing.example.com/rest/2.0',
      ADMIN_PORT: '0',
      ADMIN_TOKEN,
      METRICS_PORT: '0',
      METRICS_TOKEN,
    });
    const listening = JSON.parse(billfold.lines.find((line) => line.includes('"billfold listening"'))!);
    const adminUrl = `http://127.0.0.1:${listening.adminPort}`;
    const metricsUrl = `http://127.0.0.1:${listening.metricsPort}`;
    try {
      expect(new Set([listening.port, listening.adminPort, listening.metricsPort]).size).toBe(3);
      expect((await admin(adminUrl, 'GET', DEMO_USER)).body).toEqual({ sessions: [] });
      const metrics = await fetch(`${metricsUrl}/metrics`, {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('http_requests_total{route="/admin/sessions"');
    } finally {
      expect(await billfold.stop('SIGTERM')).toBe(0);
    }
    await expect(fetch(`${adminUrl}/admin/sessions`)).rejects.toThrow();
    await expect(fetch(`${metricsUrl}/metrics`)).rejects.toThrow();
  });
});
