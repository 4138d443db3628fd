import { beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import {
  BillfoldError,
  createBillfoldClient,
  isBillfoldError,
  type BillfoldEvents,
  type LoginBodies,
} from '../../src/client/billfold-client.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import type { billLoginSchema } from '../../src/upstream/bill/bill-adapter.js';
import type { billboraLoginSchema } from '../../src/upstream/billbora/billbora-adapter.js';
import type { billingPlatformLoginSchema } from '../../src/upstream/billingplatform/billingplatform-adapter.js';
import type { billogramLoginSchema } from '../../src/upstream/billogram/billogram-adapter.js';
import { signedOut } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';
import { createTestClock } from '../support/test-clock.js';

/** A fetch that records what the client sent, then sends it. */
function recordingFetch() {
  const sent: { method: string; url: string; headers: Headers }[] = [];
  const recorded: typeof fetch = (input, init) => {
    const url = input instanceof Request ? input.url : input.toString();
    sent.push({ method: init?.method ?? 'GET', url, headers: new Headers(init?.headers) });
    return fetch(input, init);
  };
  return { sent, fetch: recorded };
}

describe('createBillfoldClient in Node, against billfold and the sandbox', () => {
  const stack = useStack({ store: 'embedded', sandbox: { billApiVersion: 'v3' } });
  beforeEach(() => stack.sandbox.reset());

  it('takes, at the type level, exactly the login bodies billfold validates', () => {
    expectTypeOf<LoginBodies['billingplatform']>().toEqualTypeOf<
      z.input<typeof billingPlatformLoginSchema>
    >();
    expectTypeOf<LoginBodies['billogram']>().toEqualTypeOf<z.input<typeof billogramLoginSchema>>();
    expectTypeOf<LoginBodies['billbora']>().toExtend<z.input<typeof billboraLoginSchema>>();
    expectTypeOf<LoginBodies['bill']>().toExtend<z.input<typeof billLoginSchema>>();
  });

  it('signs in to each provider, reads the session, relays with X-CSRF and the cookie, and signs out', async () => {
    const { sent, fetch } = recordingFetch();
    const client = createBillfoldClient({ baseUrl: stack.billfold.url, fetch });
    expect(await client.session()).toEqual(signedOut());

    const view = await client.signIn('billingplatform', demo.billingplatform);
    expect(view).toMatchObject({ authenticated: true, providers: { billingplatform: { connected: true } } });
    await client.signIn('billogram', demo.billogram);
    const account = await client.relay<{ id?: unknown }>('billingplatform', 'ACCOUNT/1001');
    expect(account.status).toBe(200);
    const customers = await client.relay('billogram', 'customer', { query: { page: '1', page_size: '10' } });
    expect(customers.status).toBe(200);
    expect(stack.sandbox.billogram.requests.at(-1)?.query).toContain('page_size=10');

    // A provider's own 404 is an answer, not an error of billfold's.
    const missing = await client.relay('billingplatform', 'ACCOUNT/does-not-exist');
    expect(missing.status).toBe(404);

    const afterOne = await client.signOut('billogram');
    expect(afterOne.authenticated && afterOne.providers.billogram).toEqual({ connected: false });
    expect(await client.signOut()).toEqual({
      authenticated: false,
      providers: {
        billingplatform: { connected: false },
        bill: { connected: false },
        billogram: { connected: false },
        billbora: { connected: false },
      },
    });
    expect(await client.session()).toEqual(signedOut());
    expect(sent.length).toBeGreaterThan(8);
    for (const call of sent) expect(call.headers.get('x-csrf')).toBe('1');
    expect(
      sent.some((call) =>
        call.headers.get('cookie')?.startsWith(`${stack.billfold.config.session.cookieName}=`),
      ),
    ).toBe(true);
  });

  it('throws billfold’s errors typed by code, with the provider and request id', async () => {
    const client = createBillfoldClient({ baseUrl: stack.billfold.url });
    const refused = await client
      .signIn('billingplatform', { ...demo.billingplatform, password: 'wrong' })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(BillfoldError);
    expect(isBillfoldError(refused, 'invalid_credentials')).toBe(true);
    if (!isBillfoldError(refused, 'invalid_credentials')) return;
    expectTypeOf(refused.code).toEqualTypeOf<'invalid_credentials'>();
    expect({ status: refused.status, provider: refused.provider }).toEqual({
      status: 401,
      provider: 'billingplatform',
    });
    expect(refused.requestId).toMatch(/./);

    const relayed = await client.relay('billogram', 'customer').catch((error: unknown) => error);
    expect(isBillfoldError(relayed, 'unauthenticated')).toBe(true);
    await client.signIn('bill', demo.bill);
    const payment = await client
      .relay('bill', 'payments', { method: 'POST', json: { vendorId: '00901DEMOVEND01', amount: 42 } })
      .catch((error: unknown) => error);
    expect(isBillfoldError(payment, 'mfa_required')).toBe(true);
    const { challengeId } = await client.requestBillMfaCode();
    const trusted = await client.verifyBillMfaCode({ challengeId, token: demo.billMfaCode });
    expect(trusted.authenticated && trusted.providers.bill).toMatchObject({ trusted: true });
    const paid = await client.relay('bill', 'payments', {
      method: 'POST',
      json: { vendorId: '00901DEMOVEND01', amount: 42 },
    });
    expect(paid.status).toBeLessThan(300);
  });

  it('switches the Billbora organization, and lists and revokes its own sessions', async () => {
    const laptop = createBillfoldClient({ baseUrl: stack.billfold.url });
    const phone = createBillfoldClient({ baseUrl: stack.billfold.url });
    await laptop.signIn('billbora', demo.billbora);
    await phone.signIn('billbora', demo.billbora);
    const switched = await laptop.switchBillboraOrganization('org_other');
    expect(switched.authenticated && switched.providers.billbora).toMatchObject({
      organization: { id: 'org_other' },
    });
    const denied = await laptop.switchBillboraOrganization('org_nobody').catch((error: unknown) => error);
    expect(isBillfoldError(denied, 'organization_access_denied')).toBe(true);
    const sessions = await laptop.sessions();
    expect(sessions.map((session) => session.current)).toEqual([true, false]);
    expect(await laptop.revokeOtherSessions()).toBe(1);
    expect((await phone.session()).authenticated).toBe(false);
    await laptop.revokeSession(sessions[0]?.id ?? '');
    expect((await laptop.session()).authenticated).toBe(false);
  });

  it('tells its listeners when an upstream ends its session, and when the session ends', async () => {
    const client = createBillfoldClient({ baseUrl: stack.billfold.url });
    const events: string[] = [];
    const stop = client.on('upstream-expired', ({ provider }) => events.push(`upstream-expired ${provider}`));
    client.on('session-expired', ({ previous }) =>
      events.push(`session-expired ${String(previous.authenticated)}`),
    );
    await client.signIn('billogram', demo.billogram);
    await client.signIn('billingplatform', demo.billingplatform);
    stack.sandbox.billingplatform.expireAllSessions();
    const expired = await client.relay('billingplatform', 'ACCOUNT/1001').catch((error: unknown) => error);
    expect(isBillfoldError(expired, 'upstream_session_expired')).toBe(true);
    expect(events).toEqual(['upstream-expired billingplatform']);

    // Revoked elsewhere: the next read finds it gone.
    await client.signIn('billingplatform', demo.billingplatform);
    const [mine] = await client.sessions();
    const other = createBillfoldClient({ baseUrl: stack.billfold.url });
    await other.signIn('billingplatform', demo.billingplatform);
    await other.revokeSession(mine?.id ?? '');
    expect((await client.session()).authenticated).toBe(false);
    expect(events).toEqual(['upstream-expired billingplatform', 'session-expired true']);

    // Signing out is no expiry; and a listener that stopped hears nothing more.
    stop();
    await client.signIn('billingplatform', demo.billingplatform);
    await client.signOut();
    expect(events).toHaveLength(2);
  });

  it('on a relayed call, unauthenticated after a live session is the session expiring', async () => {
    const client = createBillfoldClient({ baseUrl: stack.billfold.url });
    const heard: BillfoldEvents['session-expired'][] = [];
    client.on('session-expired', (event) => heard.push(event));
    await client.signIn('billingplatform', demo.billingplatform);
    const [mine] = await client.sessions();
    const revoker = createBillfoldClient({ baseUrl: stack.billfold.url });
    await revoker.signIn('billingplatform', demo.billingplatform);
    await revoker.revokeSession(mine?.id ?? '');
    await expect(client.relay('billingplatform', 'ACCOUNT/1001')).rejects.toMatchObject({
      code: 'unauthenticated',
    });
    expect(heard).toHaveLength(1);
  });
});

describe('createBillfoldClient and Retry-After', () => {
  const clock = createTestClock(Date.now());
  const stack = useStack({
    store: 'embedded',
    clock,
    env: { RELAY_RATE_LIMIT: '2', RELAY_RATE_WINDOW_S: '5' },
  });

  it('waits out a 429’s Retry-After and retries, up to its limit', async () => {
    const waits: number[] = [];
    const client = createBillfoldClient({
      baseUrl: stack.billfold.url,
      // The wait passes on billfold's clock, so its window really has ended at the retry.
      sleep: (ms) => {
        waits.push(ms);
        clock.advance(ms);
        return Promise.resolve();
      },
    });
    await client.signIn('billingplatform', demo.billingplatform);
    for (let call = 0; call < 3; call++) {
      expect((await client.relay('billingplatform', 'ACCOUNT/1001')).status).toBe(200);
    }
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThanOrEqual(1000);
    expect(waits[0]).toBeLessThanOrEqual(5000);
    expect(
      stack.sandbox.billingplatform.requests.filter((request) => request.path.includes('ACCOUNT')),
    ).toHaveLength(3);
  });

  it('throws the 429 at once when Retry-After is longer than it waits, or retries are off', async () => {
    const waits: number[] = [];
    const sleep = (ms: number) => {
      waits.push(ms);
      return Promise.resolve();
    };
    const impatient = createBillfoldClient({ baseUrl: stack.billfold.url, maxRetryDelayMs: 500, sleep });
    await impatient.signIn('billingplatform', demo.billingplatform);
    await impatient.relay('billingplatform', 'ACCOUNT/1001');
    await impatient.relay('billingplatform', 'ACCOUNT/1001');
    const limited = await impatient.relay('billingplatform', 'ACCOUNT/1001').catch((error: unknown) => error);
    expect(isBillfoldError(limited, 'rate_limited')).toBe(true);
    expect((limited as BillfoldError).retryAfter).toBeGreaterThanOrEqual(1);
    const once = createBillfoldClient({ baseUrl: stack.billfold.url, maxRetries: 0, sleep });
    await once.signIn('billingplatform', demo.billingplatform);
    await once.relay('billingplatform', 'ACCOUNT/1001');
    await once.relay('billingplatform', 'ACCOUNT/1001');
    await expect(once.relay('billingplatform', 'ACCOUNT/1001')).rejects.toMatchObject({
      code: 'rate_limited',
    });
    expect(waits).toEqual([]);
  });
});
