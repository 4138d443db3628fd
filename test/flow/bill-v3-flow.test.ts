import { beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createSessionCodec } from '../../src/session/session-codec.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import { createCookieClient, receivedBodies } from '../support/billfold-harness.js';
import { uniquePrefix, useRedisWatch } from '../support/redis.js';
import { createSecretLedger } from '../support/secret-ledger.js';
import { createTestClock } from '../support/test-clock.js';
import { signedOut } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const payment = { vendorId: '00901DEMOVEND01', amount: 125.5 };
const prefix = uniquePrefix();
const ledger = createSecretLedger();

describe('BILL v3 end to end on Redis, against the sandbox over HTTP', () => {
  const upstreamClock = createTestClock(Date.now());
  // Every command any client sends Redis naming this file's prefix, watched from before the stack
  // starts until after it has stopped.
  const watch = useRedisWatch(prefix);
  const newClient = () => stack.client();
  const v3Requests = (path: string) => stack.sandbox.billV3.requests.filter((r) => r.path === path);

  /** Opens every stored session of this file (the test holds the key) and adds its secrets to the ledger. */
  const harvestStored = async () => {
    const codec = createSessionCodec(stack.billfold.config.session.encryptionKeys);
    const records: SessionRecord[] = [];
    for await (const keys of watch.redis.scanIterator({ MATCH: `${prefix}s:*`, COUNT: 100 })) {
      for (const key of keys) {
        const value = await watch.redis.get(key);
        const record = value === null ? undefined : codec.open(key.slice(`${prefix}s:`.length), value);
        if (!record) continue;
        records.push(record);
        ledger.add(record.providers.bill?.sessionId, record.trustedDevices?.bill?.rememberMeId);
      }
    }
    return records;
  };

  const stack = useStack({
    prefix,
    sandbox: { clock: upstreamClock, billApiVersion: 'v3' },
    // The suite signs in far more often than one user would: the login budgets are not under test here.
    env: {
      LOGIN_MAX_SUCCESSES_PER_IP: '1000000',
      BILL_LOGINS_PER_HOUR: '100000',
      BILL_LOGINS_PER_HOUR_PER_IP: '100000',
    },
  });
  beforeEach(() => {
    ledger.collect(stack.sandbox);
    stack.sandbox.reset();
  });

  it('signs in with JSON and the configured devKey, and shows v3, the mode and an untrusted session', async () => {
    const client = newClient();
    const login = await client.post('/auth/bill/login', demo.bill);
    expect(login.status).toBe(200);
    expect(login.body.providers.bill).toMatchObject({
      connected: true,
      apiVersion: 'v3',
      mode: 'password',
      user: demo.bill.userName,
      orgId: demo.bill.orgId,
      trusted: false,
    });
    expect(login.body.providers.bill.trustedUntil).toBeUndefined();
    const idle = Date.parse(login.body.providers.bill.upstreamIdleExpiresAt) - Date.now();
    expect(idle).toBeGreaterThan(34 * 60_000);
    expect(idle).toBeLessThanOrEqual(35 * 60_000);
    const [sent] = v3Requests('/login');
    expect(sent?.query).toBe('');
    expect(sent?.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(sent?.body ?? '')).toEqual({
      username: demo.bill.userName,
      password: demo.bill.password,
      organizationId: demo.bill.orgId,
      devKey: demo.billDevKey,
    });
  });

  it('relays with devKey and sessionId headers set by billfold, client values of any case dropped', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    const sessionId = stack.sandbox.billV3.sessions().at(-1)!;
    const first = await client.request('GET', '/api/bill/vendors?max=1', {
      headers: { DevKey: 'evil-key', SESSIONID: 'evil-session', 'x-devkey': 'evil' },
    });
    expect(first.status).toBe(200);
    expect(first.body.results).toHaveLength(1);
    const sent = stack.sandbox.billV3.requests.at(-1)!;
    expect(sent.headers.devkey).toBe(demo.billDevKey);
    expect(sent.headers.sessionid).toBe(sessionId);
    expect(sent.headers['x-devkey']).toBeUndefined();
    expect(JSON.stringify(sent.headers)).not.toContain('evil');
    // BILL's opaque page cursor passes through, and the last page has no nextPage.
    const second = await client.get(`/api/bill/vendors?max=1&page=${first.body.nextPage as string}`);
    expect(second.status).toBe(200);
    expect(second.body.nextPage).toBeUndefined();
    // A JSON body streams through untouched.
    const created = await client.request('POST', '/api/bill/vendors', { json: { name: 'Umbrella' } });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ name: 'Umbrella', id: expect.any(String) });
    expect(stack.sandbox.billV3.violations).toEqual([]);
  });

  it('refuses BILL’s own login, logout and MFA endpoints through the relay, in any case', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    for (const path of [
      'login',
      'LOGIN/session',
      '%6cogin',
      'login;x',
      'logout',
      'Logout/',
      'mfa/challenge',
      'Mfa/Challenge/Validate',
      'm%66a/step-up',
      '%256dfa/challenge',
    ]) {
      const answer = await client.request('POST', `/api/bill/${path}`, { json: {} });
      expect({ path, code: answer.body.error?.code }).toEqual({ path, code: 'forbidden_upstream_path' });
    }
  });

  it('reads 401 BDC_1109 as upstream_session_expired and marks BILL disconnected, other providers kept', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    await client.post('/auth/billogram/login', demo.billogram);
    upstreamClock.advance(36 * 60_000);
    const answer = await client.get('/api/bill/vendors');
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 'upstream_session_expired', provider: 'bill' });
    expect(stack.sandbox.billV3.requests.at(-1)?.path).toBe('/vendors');
    const view = await client.get('/auth/session');
    expect(view.body.providers.bill).toEqual({ connected: false });
    expect(view.body.providers.billogram.connected).toBe(true);
  });

  it('runs one session through login, relay, BDC_1109 expiry, a new login and logout observed upstream', async () => {
    const client = newClient();
    expect((await client.post('/auth/bill/login', demo.bill)).status).toBe(200);
    await client.post('/auth/billogram/login', demo.billogram);
    expect((await client.get('/api/bill/vendors?max=2')).status).toBe(200);
    upstreamClock.advance(36 * 60_000);
    const expired = await client.get('/api/bill/vendors?max=2');
    expect(expired.body.error).toMatchObject({ code: 'upstream_session_expired', provider: 'bill' });
    expect((await client.get('/api/bill/vendors?max=2')).body.error.code).toBe('provider_not_connected');
    expect((await client.post('/auth/bill/login', demo.bill)).status).toBe(200);
    const sessionId = stack.sandbox.billV3.sessions().at(-1)!;
    expect((await client.get('/api/bill/vendors?max=2')).status).toBe(200);
    stack.sandbox.billV3.clearRequests();
    expect((await client.post('/auth/bill/logout')).body.providers.bill).toEqual({ connected: false });
    expect(v3Requests('/logout').map((r) => r.headers.sessionid)).toEqual([sessionId]);
    expect(stack.sandbox.billV3.sessions()).not.toContain(sessionId);
    expect((await client.get('/api/bill/vendors')).body.error.code).toBe('provider_not_connected');
  });

  it('signs out upstream with POST /logout carrying the session’s headers', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    const sessionId = stack.sandbox.billV3.sessions().at(-1)!;
    const logout = await client.post('/auth/bill/logout');
    expect(logout.status).toBe(200);
    expect(logout.body).toEqual(signedOut());
    const [call] = v3Requests('/logout');
    expect(call?.headers.sessionid).toBe(sessionId);
    expect(call?.headers.devkey).toBe(demo.billDevKey);
    expect(stack.sandbox.billV3.sessions()).not.toContain(sessionId);
  });

  it('refuses a payment with mfa_required, steps up with challenge and validate, and the same call then succeeds', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    const refused = await client.request('POST', '/api/bill/payments', { json: payment });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'mfa_required', provider: 'bill' });
    // billfold's own error (its request id), not BILL's relayed 403.
    expect(refused.body.error.requestId).toBe(refused.headers.get('x-request-id'));
    expect((await client.get('/auth/session')).body.providers.bill).toMatchObject({
      connected: true,
      trusted: false,
    });

    const challenge = await client.post('/auth/bill/mfa/challenge');
    expect(challenge.status).toBe(200);
    expect(Object.keys(challenge.body)).toEqual(['challengeId']);
    expect(v3Requests('/mfa/challenge')).toHaveLength(1);

    const validate = await client.post('/auth/bill/mfa/validate', {
      challengeId: challenge.body.challengeId,
      token: demo.billMfaCode,
      rememberMe: true,
    });
    expect(validate.status).toBe(200);
    expect(validate.body.providers.bill).toMatchObject({ connected: true, trusted: true });
    const until = Date.parse(validate.body.providers.bill.trustedUntil) - Date.now();
    expect(until).toBeGreaterThan(29 * 86_400_000);
    expect(until).toBeLessThanOrEqual(30 * 86_400_000);
    const [sentValidate] = v3Requests('/mfa/challenge/validate');
    expect(JSON.parse(sentValidate?.body ?? '')).toMatchObject({
      challengeId: challenge.body.challengeId,
      token: demo.billMfaCode,
      rememberMe: true,
      device: expect.stringMatching(/^billfold-/),
      machineName: expect.any(String),
    });

    const paid = await client.request('POST', '/api/bill/payments', { json: payment });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ vendorId: payment.vendorId, amount: payment.amount });

    // The rememberMeId is in the sealed session only.
    const stored = await harvestStored();
    const remembered = stored.map((record) => record.trustedDevices?.bill?.rememberMeId).filter(Boolean);
    expect(remembered.length).toBeGreaterThan(0);
    for (const text of [refused.text, challenge.text, validate.text, paid.text]) {
      for (const id of remembered) expect(text).not.toContain(id);
    }

    // A second BILL login in the same billfold session is trusted without a code.
    const before = client.cookie;
    stack.sandbox.billV3.clearRequests();
    const again = await client.post('/auth/bill/login', demo.bill);
    expect(again.status).toBe(200);
    expect(client.cookie).not.toBe(before);
    expect(again.body.providers.bill).toMatchObject({ trusted: true });
    const [relogin] = v3Requests('/login');
    const sentLogin = JSON.parse(relogin?.body ?? '') as Record<string, string>;
    expect(remembered).toContain(sentLogin.rememberMeId);
    expect(sentLogin.device).toBe(JSON.parse(sentValidate?.body ?? '').device);
    const newSession = stack.sandbox.billV3.sessions().at(-1)!;
    expect(stack.sandbox.billV3.isTrusted(newSession)).toBe(true);
    expect((await client.request('POST', '/api/bill/payments', { json: payment })).status).toBe(200);
    expect(v3Requests('/mfa/challenge')).toEqual([]);

    // Another billfold session does not share the trust; signing out of BILL forgets it.
    const stranger = newClient();
    expect((await stranger.post('/auth/bill/login', demo.bill)).body.providers.bill.trusted).toBe(false);
    await client.post('/auth/billogram/login', demo.billogram);
    await client.post('/auth/bill/logout');
    expect((await client.post('/auth/bill/login', demo.bill)).body.providers.bill.trusted).toBe(false);
  });

  it('shows the session untrusted again once BILL answers BDC_1361 for a session billfold thought trusted', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
    await client.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode });
    expect((await client.get('/auth/session')).body.providers.bill.trusted).toBe(true);
    stack.sandbox.billV3.distrustSession(stack.sandbox.billV3.sessions().at(-1)!);
    const refused = await client.request('POST', '/api/bill/payments', { json: payment });
    expect(refused.body.error.code).toBe('mfa_required');
    const view = await client.get('/auth/session');
    expect(view.body.providers.bill).toMatchObject({ connected: true, trusted: false });
    expect(view.body.providers.bill.trustedUntil).toBeUndefined();
  });

  it('keeps the trust for the upstream session only when rememberMe is not asked for', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
    const validate = await client.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode });
    expect(validate.body.providers.bill.trusted).toBe(true);
    expect(validate.body.providers.bill.trustedUntil).toBe(
      validate.body.providers.bill.upstreamIdleExpiresAt,
    );
    expect(JSON.parse(v3Requests('/mfa/challenge/validate')[0]?.body ?? '').rememberMe).toBe(false);
    expect((await client.request('POST', '/api/bill/payments', { json: payment })).status).toBe(200);
    expect((await client.post('/auth/bill/login', demo.bill)).body.providers.bill.trusted).toBe(false);
    expect(JSON.parse(v3Requests('/login').at(-1)?.body ?? '').rememberMeId).toBeUndefined();
  });

  it('answers a wrong code with invalid_credentials and leaves the session untrusted', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
    const wrong = await client.post('/auth/bill/mfa/validate', { challengeId, token: '000000' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatchObject({ code: 'invalid_credentials', provider: 'bill' });
    expect((await client.get('/auth/session')).body.providers.bill.trusted).toBe(false);
    const right = await client.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode });
    expect(right.body.providers.bill.trusted).toBe(true);
  });

  it('refuses the step-up without a session, without BILL, with unknown fields, and for a sync-token session', async () => {
    const anonymous = newClient();
    expect((await anonymous.post('/auth/bill/mfa/challenge')).body.error.code).toBe('unauthenticated');
    const other = newClient();
    await other.post('/auth/billogram/login', demo.billogram);
    expect((await other.post('/auth/bill/mfa/challenge')).body.error).toMatchObject({
      code: 'provider_not_connected',
      provider: 'bill',
    });
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    for (const body of [
      { challengeId: 'x', token: '1', extra: 1 },
      { challengeId: 'x' },
      { challengeId: 'x', token: 123456 },
      { challengeId: 'x', token: '1', rememberMe: 'yes' },
    ]) {
      const answer = await client.post('/auth/bill/mfa/validate', body);
      expect({ body, status: answer.status, code: answer.body.error?.code }).toEqual({
        body,
        status: 400,
        code: 'invalid_request',
      });
    }
    expect((await client.post('/auth/bill/mfa/challenge', { phone: '+1' })).status).toBe(400);
    expect(v3Requests('/mfa/challenge/validate')).toEqual([]);

    const synced = newClient();
    await synced.post('/auth/bill/login', demo.billSyncToken);
    const refused = await synced.post('/auth/bill/mfa/challenge');
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 'invalid_request', provider: 'bill' });
    expect(v3Requests('/mfa/challenge')).toEqual([]);
  });

  it('signs BILL out when the upstream session died before the step-up', async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    await client.post('/auth/billogram/login', demo.billogram);
    stack.sandbox.billV3.expireAllSessions();
    const answer = await client.post('/auth/bill/mfa/challenge');
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 'upstream_session_expired', provider: 'bill' });
    expect((await client.get('/auth/session')).body.providers.bill).toEqual({ connected: false });
  });

  it('signs in with a sync token, shows mode sync-token and the 48-hour idle expiry, and relays', async () => {
    const client = newClient();
    const login = await client.post('/auth/bill/login', demo.billSyncToken);
    expect(login.status).toBe(200);
    expect(login.body.providers.bill).toMatchObject({
      connected: true,
      apiVersion: 'v3',
      mode: 'sync-token',
      user: demo.billSyncToken.tokenName,
      trusted: false,
    });
    const idle = Date.parse(login.body.providers.bill.upstreamIdleExpiresAt) - Date.now();
    expect(idle).toBeGreaterThan(47 * 3_600_000);
    expect(idle).toBeLessThanOrEqual(48 * 3_600_000);
    expect(JSON.parse(v3Requests('/login')[0]?.body ?? '')).toMatchObject({
      username: demo.billSyncToken.tokenName,
      password: demo.billSyncToken.tokenValue,
    });
    upstreamClock.advance(36 * 60_000);
    const vendors = await client.get('/api/bill/vendors');
    expect(vendors.status).toBe(200);
    expect(vendors.body.results.length).toBeGreaterThan(0);
    // BILL refuses payments on a sync-token session; that answer is BILL's, relayed as it is.
    const pay = await client.request('POST', '/api/bill/payments', { json: payment });
    expect(pay.status).toBe(403);
    expect(pay.body).toEqual([{ code: 'BDC_1364', message: expect.any(String) }]);
    expect(login.text).not.toContain(demo.billSyncToken.tokenValue);
  });

  it('puts sync-token sessions in no identity index: they never list each other or a user’s sessions', async () => {
    const person = newClient();
    await person.post('/auth/bill/login', demo.bill);
    const integration = newClient();
    await integration.post('/auth/bill/login', demo.billSyncToken);
    const theirs = await integration.get('/auth/sessions');
    expect(theirs.body.sessions).toHaveLength(1);
    const mine = await person.get('/auth/sessions');
    expect(mine.status).toBe(200);
    const handles = (mine.body.sessions as { id: string }[]).map((session) => session.id);
    expect(handles).not.toContain(theirs.body.sessions[0].id);
    await person.request('DELETE', '/auth/sessions?others=true');
    expect((await integration.get('/auth/session')).body.authenticated).toBe(true);
  });

  it('refuses a wrong sync token with invalid_credentials', async () => {
    const answer = await newClient().post('/auth/bill/login', {
      ...demo.billSyncToken,
      tokenValue: 'nope-nope',
    });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 'invalid_credentials', provider: 'bill' });
  });

  /**
   * The traffic the leak checks judge, made by each of them so none depends on the tests before it:
   * a sign-in, a trusted MFA step-up remembered, a relayed payment, a second sign-in on the
   * remembered device, and a sign-out.
   */
  const exerciseV3 = async () => {
    const client = newClient();
    await client.post('/auth/bill/login', demo.bill);
    const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
    await client.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode, rememberMe: true });
    expect((await client.request('POST', '/api/bill/payments', { json: payment })).status).toBe(200);
    await client.post('/auth/bill/login', demo.bill);
    await harvestStored();
    await client.post('/auth/logout');
    ledger.collect(stack.sandbox);
  };

  describe('what the suite leaves behind', () => {
    it('puts no rememberMeId, sessionId or devKey in any response or log line', async () => {
      await exerciseV3();
      ledger.collect(stack.sandbox);
      // At least the exercise's own six answers (body and headers each) and their log lines.
      expect(receivedBodies.length).toBeGreaterThanOrEqual(12);
      expect(stack.billfold.logs.length).toBeGreaterThanOrEqual(6);
      expect(ledger.secrets).toContain(demo.billDevKey);
      expect(ledger.leaks(stack.billfold.logs)).toEqual([]);
    });

    it('sent Redis no secret in clear, in any command', async () => {
      await exerciseV3();
      expect(watch.monitored.length).toBeGreaterThan(10);
      // The ledger holds every upstream sessionId and rememberMeId seen, the devKey and the passwords.
      expect(ledger.secrets.size).toBeGreaterThan(10);
      for (const secret of ledger.secrets) {
        const found = watch.monitored.filter((line) => line.includes(secret));
        expect({ secret: secret.slice(0, 6), found }).toEqual({ secret: secret.slice(0, 6), found: [] });
      }
    });
  });
});

describe('BILL_API_VERSION=v3 npm start with nothing else configured', () => {
  // No sandbox and no Redis of the suite's: the process starts its own sandbox.
  const bare = useStack({ sandbox: false, store: 'embedded', instances: 0 });

  it('points BILL at the sandbox’s v3 emulator and prints how to use it', async () => {
    const started = await bare.spawn({ NODE_ENV: 'development', BILL_API_VERSION: 'v3' });
    try {
      const client = createCookieClient(started.url, 'billfold');
      const login = await client.post('/auth/bill/login', demo.bill);
      expect(login.status).toBe(200);
      expect(login.body.providers.bill).toMatchObject({ apiVersion: 'v3', trusted: false });
      expect((await client.request('POST', '/api/bill/payments', { json: payment })).body.error.code).toBe(
        'mfa_required',
      );
      const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
      const validate = await client.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode });
      expect(validate.body.providers.bill.trusted).toBe(true);
      const banner = started.lines.join('\n');
      expect(banner).toMatch(/export BILL_BASE_URL=http:\/\/127\.0\.0\.1:\d+\/bill\/connect\/v3/);
      expect(banner).toContain(`v3 MFA code ${demo.billMfaCode}`);
    } finally {
      await started.stop();
    }
  });
});
