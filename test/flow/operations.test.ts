import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { createCookieClient } from '../support/billfold-harness.js';
import { useStack } from '../support/stack.js';

/** Instances and processes on nothing but their own configuration: no sandbox, no Redis. */
const bare = useStack({ sandbox: false, store: 'embedded', instances: 0 });

// Graceful shutdown under load is proven in test/scale/graceful-shutdown.test.ts.
describe('start-up', () => {
  it('stops at start with every configuration problem listed in one message', async () => {
    const failure = await bare
      .spawn({
        NODE_ENV: 'production',
        SESSION_SECRETS: 'short',
        BILLINGPLATFORM_BASE_URL: 'http://example.com',
      })
      .then(
        () => 'started',
        (error: unknown) => (error as Error).message,
      );
    expect(failure).toMatch(/exited with 1/);
    for (const name of ['PUBLIC_ORIGIN', 'SESSION_SECRETS', 'SESSION_STORE', 'BILLINGPLATFORM_BASE_URL']) {
      expect(failure).toContain(`- ${name}:`);
    }
  });
});

describe('audit trail', () => {
  const stack = useStack({ store: 'embedded' });

  const auditLines = () =>
    stack.billfold.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.audit === true);

  it('writes one line per login, logout, expiry and refusal, with the session id only as a hash', async () => {
    const client = stack.client();
    await client.post('/auth/billingplatform/login', { ...demo.billingplatform, password: 'wrong' });
    await client.post('/auth/billingplatform/login', demo.billingplatform);
    await client.get('/auth/session', { 'x-csrf': '0' });
    await client.get('/auth/session', { origin: 'https://evil.example.com' });
    stack.sandbox.billingplatform.expireAllSessions();
    await client.get('/api/billingplatform/ACCOUNT/1001');
    await client.post('/auth/billingplatform/login', demo.billingplatform);
    await client.post('/auth/logout');

    const events = auditLines().map((entry) => `${String(entry.event)}:${String(entry.outcome)}`);
    expect(events).toEqual([
      'login:failure',
      'login:success',
      'csrf_refused:refused',
      'origin_refused:refused',
      'upstream_session_expired:failure',
      'login:success',
      'logout:success',
    ]);
    for (const entry of auditLines()) {
      expect(entry.requestId).toBeTruthy();
      // Who asked: the connecting address, as no proxy is trusted here.
      expect(entry.clientAddress).toBe('127.0.0.1');
      if (entry.session !== undefined) expect(entry.session).toMatch(/^[A-Za-z0-9_-]{12}$/);
    }
    expect(auditLines()[0]).toMatchObject({ provider: 'billingplatform', reason: 'invalid_credentials' });
  });

  it('names the provider and the session of a request refused before its route read them', async () => {
    const client = await stack.signIn(['billingplatform']);
    const session = auditLines().at(-1)?.session;
    expect(session).toMatch(/^[A-Za-z0-9_-]{12}$/);
    await client.post('/auth/bill/login', demo.bill, { 'x-csrf': '0' });
    await client.get('/api/billingplatform/ACCOUNT/1001', { origin: 'https://evil.example.com' });
    await client.post('/auth/billogram/login', { ...demo.billogram, apiPassword: 'wrong' });
    // A refusal on a path naming no provider, and one with a cookie nobody signed, name neither.
    await client.get('/auth/session', { 'x-csrf': '0' });
    await client.get('/api/nothing/x', { 'x-csrf': '0', cookie: 'billfold=s%3Aforged.sig' });
    // Express routes /AUTH as /auth; the line names the provider all the same.
    await client.post('/AUTH/bill/login', demo.bill, { 'x-csrf': '0' });
    expect(
      auditLines()
        .slice(-6)
        .map(({ event, provider, session: hashed }) => ({ event, provider, session: hashed })),
    ).toEqual([
      { event: 'csrf_refused', provider: 'bill', session },
      { event: 'origin_refused', provider: 'billingplatform', session },
      { event: 'login', provider: 'billogram', session },
      { event: 'csrf_refused', provider: undefined, session },
      { event: 'csrf_refused', provider: undefined, session: undefined },
      { event: 'csrf_refused', provider: 'bill', session },
    ]);
  });

  /** Every field an audit line may have (docs/audit.md). */
  const AUDIT_FIELDS = new Set([
    'level',
    'time',
    'service',
    'audit',
    'event',
    'outcome',
    'provider',
    'session',
    'requestId',
    'clientAddress',
    'route',
    'reason',
    'msg',
  ]);
  const auditLinesOf = (logs: string[]) =>
    logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.audit === true);

  it('audits every event of docs/audit.md and revocations, each one line of the documented schema', async () => {
    const limited = await stack.start({ LOGIN_MAX_FAILURES_PER_USER: '1' });
    const production = await bare.start({
      NODE_ENV: 'production',
      PUBLIC_ORIGIN: 'https://billfold.example.com',
      SESSION_STORE: 'memory',
    });
    let storeDown = false;
    const memory = createMemoryBackend({ clock: systemClock, maxEntries: 100 });
    const outage = await stack.start(
      {},
      {
        backend: {
          ...memory,
          get: (key) => (storeDown ? Promise.reject(new Error('down')) : memory.get(key)),
        },
      },
    );
    const client = createCookieClient(limited.url, limited.config.session.cookieName);
    // Renewal, then a renewal the upstream refuses (the provider is signed out), then a provider logout.
    await client.post('/auth/billbora/login', demo.billbora);
    stack.sandbox.billbora.expireAccessTokens();
    expect((await client.get('/api/billbora/invoices/')).status).toBe(200);
    // With both the Billbora and the Supabase sessions dead, renewal is refused.
    stack.sandbox.billbora.expireAllSessions();
    stack.sandbox.supabase.expireAllSessions();
    expect((await client.get('/api/billbora/invoices/')).body.error.code).toBe('upstream_session_expired');
    await client.post('/auth/billogram/login', demo.billogram);
    await client.post('/auth/billingplatform/login', demo.billingplatform);
    expect((await client.post('/auth/billogram/logout')).status).toBe(200);
    // A revocation from another device of the same user.
    const other = createCookieClient(limited.url, limited.config.session.cookieName);
    await other.post('/auth/billingplatform/login', demo.billingplatform);
    expect((await other.request('DELETE', '/auth/sessions?others=true')).body.revoked).toBe(1);
    // A failed login, then the refusal past the limit.
    await other.post('/auth/bill/login', { ...demo.bill, password: 'wrong' });
    expect((await other.post('/auth/bill/login', demo.bill)).status).toBe(429);
    // Plain HTTP in production, and a store outage.
    expect((await fetch(`${production.url}/auth/session`, { headers: { 'x-csrf': '1' } })).status).toBe(403);
    const victim = createCookieClient(outage.url, outage.config.session.cookieName);
    await victim.post('/auth/billingplatform/login', demo.billingplatform);
    storeDown = true;
    expect((await victim.get('/api/billingplatform/ACCOUNT/1001')).status).toBe(503);

    const lines = [
      ...auditLinesOf(limited.logs),
      ...auditLinesOf(production.logs),
      ...auditLinesOf(outage.logs),
    ];
    const seen = lines.map((entry) => `${String(entry.event)}:${String(entry.outcome)}`);
    for (const expected of [
      'login:success',
      'login:failure',
      'logout:success',
      'renewal:success',
      'renewal:failure',
      'upstream_session_expired:failure',
      'session_revoked:success',
      'rate_limited:refused',
      'https_refused:refused',
      'store_unavailable:refused',
    ]) {
      expect(seen).toContain(expected);
    }
    for (const entry of lines) {
      expect(Object.keys(entry).filter((key) => !AUDIT_FIELDS.has(key))).toEqual([]);
      expect(entry.msg).toBe(`audit ${String(entry.event)}`);
      expect(['success', 'failure', 'refused']).toContain(entry.outcome);
      if (entry.session !== undefined) expect(entry.session).toMatch(/^[A-Za-z0-9_-]{12}$/);
    }
    expect(lines.find((entry) => entry.event === 'rate_limited')).toMatchObject({
      provider: 'bill',
      route: '/auth/:provider/login',
    });
    expect(lines.find((entry) => entry.event === 'logout')).toMatchObject({ provider: 'billogram' });
    expect(lines.find((entry) => entry.event === 'session_revoked')).toMatchObject({ reason: 'user' });
    // No secret of any kind: passwords, cookies, upstream credentials.
    const text = JSON.stringify(lines);
    for (const secret of [demo.billbora.password, demo.bill.password, client.cookie!, other.cookie!]) {
      expect(text).not.toContain(secret.split('=').at(-1)!);
    }

    // Every event billfold audits is documented.
    const documented = await readFile(new URL('../../docs/audit.md', import.meta.url), 'utf8');
    for (const event of new Set([
      ...lines.map((entry) => String(entry.event)),
      'csrf_refused',
      'origin_refused',
    ])) {
      expect(documented).toContain(`\`${event}\``);
    }
  });
});
