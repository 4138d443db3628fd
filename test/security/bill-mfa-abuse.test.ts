import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { SANDBOX_MOUNTS } from '../../src/sandbox/sandbox.js';
import { systemClock } from '../../src/clock.js';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { createCookieClient, type RunningBillfold } from '../support/billfold-harness.js';
import { uniquePrefix } from '../support/redis.js';
import { startGatedProxy } from '../support/gated-proxy.js';
import { startHostileUpstream } from '../support/hostile-upstream.js';
import { createSecretLedger, exerciseEveryProvider } from '../support/secret-ledger.js';
import { expectDocumentedError } from '../support/security-expect.js';
import { startStack, useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const ledger = createSecretLedger();

describe('the BILL v3 step-up under attack, on Redis', () => {
  const stack = useStack({ sandbox: { billApiVersion: 'v3' } });
  /** Default limits: 5 code attempts per BILL user per window. */
  let strict: RunningBillfold;
  /** Limits out of the way, so generated inputs meet the validation and BILL, not the limiter. */
  let lenient: RunningBillfold;
  const validations = () => stack.sandbox.billV3.requests.filter((r) => r.path === '/mfa/challenge/validate');

  beforeAll(async () => {
    strict = stack.billfold;
    lenient = await stack.start({
      REDIS_KEY_PREFIX: uniquePrefix(),
      LOGIN_MAX_FAILURES_PER_IP: '1000000',
      LOGIN_MAX_FAILURES_PER_USER: '1000000',
      LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES: '1000000',
      LOGIN_MAX_SUCCESSES_PER_IP: '1000000',
      BILL_LOGINS_PER_HOUR: '100000',
      BILL_LOGINS_PER_HOUR_PER_IP: '100000',
    });
  });
  const expectNoLeak = () => {
    ledger.collect(stack.sandbox);
    expect(ledger.leaks([...strict.logs, ...lenient.logs])).toEqual([]);
  };
  // Each test answers for what its own guesses got back and logged.
  afterEach(expectNoLeak);

  it('puts no secret it handled into any answer or log line, whatever ran before', async () => {
    await exerciseEveryProvider(lenient);
    expectNoLeak();
  });

  it('lets at most 5 of 50 parallel guesses reach BILL, and answers the rest 429 with Retry-After', async () => {
    const client = createCookieClient(strict.url, strict.config.session.cookieName);
    await client.post('/auth/bill/login', demo.bill);
    const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
    stack.sandbox.billV3.clearRequests();
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        client.post('/auth/bill/mfa/validate', { challengeId, token: String(100000 + index) }),
      ),
    );
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(5);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(45);
    expect(statuses.every((status) => status === 401 || status === 429)).toBe(true);
    expect(validations().length).toBeLessThanOrEqual(5);
    const limited = answers.find((answer) => answer.status === 429)!;
    expectDocumentedError(limited, 429, 'rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // Even the right code waits now: the count is the user's, not the challenge's.
    const right = await client.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode });
    expect(right.status).toBe(429);
  });

  it('asks BILL to text a code at most 5 times per window, of 50 parallel requests, per BILL user', async () => {
    // Its own store: the demo user's challenge budget on `strict` is the guessing test's.
    const own = await stack.start({ REDIS_KEY_PREFIX: uniquePrefix() });
    try {
      const other = createCookieClient(own.url, own.config.session.cookieName);
      await other.post('/auth/bill/login', demo.bill);
      stack.sandbox.billV3.clearRequests();
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => other.post('/auth/bill/mfa/challenge')),
      );
      const challenged = stack.sandbox.billV3.requests.filter((r) => r.path === '/mfa/challenge');
      expect(challenged.length).toBeLessThanOrEqual(5);
      expect(answers.filter((answer) => answer.status === 200).length).toBe(challenged.length);
      expect(answers.filter((answer) => answer.status === 429).length).toBeGreaterThanOrEqual(45);
    } finally {
      ledger.collect(stack.sandbox);
      expect(ledger.leaks(own.logs)).toEqual([]);
      await own.close();
    }
  });

  it('will not step a session up with another session’s challenge, even with the right code', async () => {
    const owner = createCookieClient(lenient.url, lenient.config.session.cookieName);
    const intruder = createCookieClient(lenient.url, lenient.config.session.cookieName);
    await owner.post('/auth/bill/login', demo.bill);
    await intruder.post('/auth/bill/login', demo.bill);
    const { challengeId } = (await owner.post('/auth/bill/mfa/challenge')).body;
    const stolen = await intruder.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode });
    expectDocumentedError(stolen, 401, 'invalid_credentials');
    expect((await intruder.get('/auth/session')).body.providers.bill.trusted).toBe(false);
    const own = await owner.post('/auth/bill/mfa/validate', { challengeId, token: demo.billMfaCode });
    expect(own.body.providers.bill.trusted).toBe(true);
  });

  it('never signs BILL back in or trusts it when the step-up is answered after the user signed out of BILL', async () => {
    const proxy = await startGatedProxy(stack.sandbox.url);
    const gated = await stack.start({
      BILL_BASE_URL: `${proxy.url}${SANDBOX_MOUNTS.billV3}`,
      REDIS_KEY_PREFIX: uniquePrefix(),
    });
    try {
      const client = createCookieClient(gated.url, gated.config.session.cookieName);
      await client.post('/auth/bill/login', demo.bill);
      await client.post('/auth/billogram/login', demo.billogram);
      const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body;
      proxy.close();
      const validating = client.post('/auth/bill/mfa/validate', {
        challengeId,
        token: demo.billMfaCode,
        rememberMe: true,
      });
      await proxy.arrived();
      const signingOut = client.post('/auth/bill/logout');
      // Billfold forgets BILL before it asks BILL to log out: wait for that call at the gate too.
      while (proxy.waiting() < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      proxy.open();
      const [validated, signedOut] = await Promise.all([validating, signingOut]);
      expect(signedOut.status).toBe(200);
      expect(validated.status).toBe(401);
      expect(['provider_not_connected', 'upstream_session_expired']).toContain(validated.body.error.code);
      const view = await client.get('/auth/session');
      expect(view.body.providers.bill).toEqual({ connected: false });
      expect(view.body.providers.billogram.connected).toBe(true);
      // Nor is the trust kept for a later sign-in.
      const again = await client.post('/auth/bill/login', demo.bill);
      expect(again.body.providers.bill.trusted).toBe(false);
    } finally {
      await gated.close();
      await proxy.stop();
    }
  });

  it('answers any validate body with a documented 400 or 401, never a 500, never echoing it', async () => {
    const client = createCookieClient(lenient.url, lenient.config.session.cookieName);
    await client.post('/auth/bill/login', demo.bill);
    const { challengeId } = (await client.post('/auth/bill/mfa/challenge')).body as { challengeId: string };
    const token = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: 'grapheme', maxLength: 12 }),
      // The right code in other spellings: fullwidth digits, padding, Arabic-Indic digits.
      fc.constantFrom(
        demo.billMfaCode.replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d))),
        ` ${demo.billMfaCode}`,
        demo.billMfaCode.replace(/\d/g, (d) => String.fromCharCode(0x0660 + Number(d))),
      ),
    );
    const body = fc.oneof(
      fc.record({ challengeId: fc.constant(challengeId), token }, { requiredKeys: [] }),
      fc.record({ challengeId: fc.string({ maxLength: 2000 }), token, rememberMe: fc.anything() }),
      fc.anything(),
    );
    await fc.assert(
      fc.asyncProperty(body, async (input) => {
        const answer = await client.request('POST', '/auth/bill/mfa/validate', {
          // JSON.stringify answers undefined for undefined input, though typed string.
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
          body: JSON.stringify(input) ?? 'null',
          headers: { 'content-type': 'application/json' },
        });
        expect([400, 401]).toContain(answer.status);
        expectDocumentedError(answer, answer.status, answer.body.error.code);
        if (typeof (input as { token?: unknown } | null)?.token === 'string') {
          const sent = (input as { token: string }).token;
          if (sent.length >= 4) expect(answer.text).not.toContain(JSON.stringify(sent).slice(1, -1));
        }
      }),
      { numRuns: 60 },
    );
    expect((await client.get('/auth/session')).body.providers.bill.trusted).toBe(false);
  });

  it('signs in with a sync token only as it is spelled: other cases and Unicode forms are refused', async () => {
    const { tokenName, tokenValue, orgId } = demo.billSyncToken;
    const variant = fc.constantFrom(
      (text: string) => text.toUpperCase(),
      (text: string) => text.normalize('NFKC').replace(/-/g, '\u2010'),
      (text: string) => text.replace(/o/g, '\u043e'),
      (text: string) => `${text} `,
      (text: string) => text.replace(/-/g, '\uff0d'),
    );
    await fc.assert(
      fc.asyncProperty(variant, fc.boolean(), async (change, onName) => {
        const client = createCookieClient(lenient.url, lenient.config.session.cookieName);
        const body = onName
          ? { tokenName: change(tokenName), tokenValue, orgId }
          : { tokenName, tokenValue: change(tokenValue), orgId };
        const answer = await client.post('/auth/bill/login', body);
        expectDocumentedError(answer, 401, 'invalid_credentials');
        expect(answer.setCookies).toEqual([]);
      }),
      { numRuns: 20 },
    );
  });
});

describe('the BILL v3 step-up when BILL or the store misbehave', () => {
  const odd = [
    { status: 200, body: 'not json' },
    { status: 200, body: '[]' },
    { status: 200, body: 'null' },
    { status: 200, body: '{"challengeId": 7, "rememberMeId": {"a": 1}}' },
    { status: 500, body: '{}' },
    { status: 401, body: '[{"code": "BDC_1109"}]' },
    { status: 401, body: 'garbage' },
    { status: 403, body: '[]' },
    { status: 429, body: '[{"code": "BDC_1322"}]' },
    { status: 302, body: '', headers: { location: 'https://elsewhere.example/' } },
  ];

  it.each(odd)(
    'answers BILL’s odd MFA answer $status $body with a documented error, never a 500',
    async (answer) => {
      const upstream = await startHostileUpstream();
      upstream.login = () => ({ body: JSON.stringify({ sessionId: upstream.sessionId, trusted: false }) });
      upstream.answer = () => answer;
      const stack = await startStack({
        sandbox: false,
        store: 'embedded',
        env: {
          BILL_BASE_URL: upstream.baseUrl,
          BILL_API_VERSION: 'v3',
          BILL_DEV_KEY: demo.billDevKey,
          BILLOGRAM_BASE_URL: `${upstream.url}/billogram`,
          ALLOW_INSECURE_UPSTREAMS: 'true',
        },
      });
      try {
        const client = stack.client();
        expect((await client.post('/auth/bill/login', demo.bill)).status).toBe(200);
        for (const [path, body] of [
          ['/auth/bill/mfa/challenge', undefined],
          ['/auth/bill/mfa/validate', { challengeId: 'c', token: '123456', rememberMe: true }],
        ] as const) {
          const result = await client.post(path, body);
          expect([400, 401, 429, 502]).toContain(result.status);
          expectDocumentedError(result, result.status, result.body.error.code);
          expect(result.text).not.toContain('elsewhere');
          if (result.status === 401 && result.body.error.code === 'upstream_session_expired') break;
        }
        expect(upstream.requests.some((r) => r.url.startsWith('/bp/mfa/'))).toBe(true);
        const view = await client.get('/auth/session');
        // Only a real BDC_1109 signs BILL out; nothing odd makes the session trusted.
        if (answer.status === 401 && answer.body.includes('BDC_1109'))
          expect(view.body.authenticated).toBe(false);
        else expect(view.body.providers.bill).toMatchObject({ connected: true, trusted: false });
      } finally {
        await stack.close();
        await upstream.close();
      }
    },
  );

  it('answers 503 and loses nothing when the store fails as the step-up is saved; a new step-up then works', async () => {
    const stack = await startStack({ sandbox: { billApiVersion: 'v3' }, store: 'embedded', instances: 0 });
    try {
      let failWrites = false;
      const memory = createMemoryBackend({ clock: systemClock, maxEntries: 100 });
      await stack.start(
        {},
        {
          backend: {
            ...memory,
            compareAndSet: (...args) =>
              failWrites ? Promise.reject(new Error('store down')) : memory.compareAndSet(...args),
          },
        },
      );
      const client = stack.client();
      await client.post('/auth/bill/login', demo.bill);
      const first = (await client.post('/auth/bill/mfa/challenge')).body.challengeId as string;
      failWrites = true;
      const failed = await client.post('/auth/bill/mfa/validate', {
        challengeId: first,
        token: demo.billMfaCode,
        rememberMe: true,
      });
      expectDocumentedError(failed, 503, 'session_store_unavailable');
      expect(failed.setCookies).toEqual([]);
      failWrites = false;
      const view = await client.get('/auth/session');
      expect(view.body.providers.bill).toMatchObject({ connected: true, trusted: false });
      const second = (await client.post('/auth/bill/mfa/challenge')).body.challengeId as string;
      const retried = await client.post('/auth/bill/mfa/validate', {
        challengeId: second,
        token: demo.billMfaCode,
        rememberMe: true,
      });
      expect(retried.body.providers.bill.trusted).toBe(true);
    } finally {
      await stack.close();
    }
  });
});
