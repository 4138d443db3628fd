import { afterAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { SANDBOX_MOUNTS } from '../../src/sandbox/sandbox.js';
import type { BillCredential } from '../../src/upstream/bill/bill-adapter.js';
import { startGatedProxy, type GatedProxy } from '../support/gated-proxy.js';
import { expectDocumentedError, sessionIdOf, waitUntil } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';
import { createTestClock } from '../support/test-clock.js';

const IDLE_S = 600;
const ABSOLUTE_S = 3600;
const MINUTE = 60_000;

/** A stack whose provider at `mount` is reached through a gate the test holds (`gate()`). */
function useGatedStack(variable: string, mount: keyof typeof SANDBOX_MOUNTS) {
  let proxy: GatedProxy | undefined;
  const stack = useStack({
    env: async (sandbox) => {
      proxy = await startGatedProxy(sandbox.url);
      return { [variable]: `${proxy.url}${SANDBOX_MOUNTS[mount]}` };
    },
  });
  // After the stack's own teardown: billfold stops before its upstreams do.
  afterAll(async () => {
    proxy?.open();
    await proxy?.stop();
  });
  const gate = () => {
    if (!proxy) throw new Error('the stack has not started');
    return proxy;
  };
  return { stack, gate };
}

describe('what a session remembers across sign-ins and relayed calls', () => {
  const clock = createTestClock(Date.now());
  const stack = useStack({
    clock,
    env: { SESSION_IDLE_TIMEOUT_S: String(IDLE_S), SESSION_ABSOLUTE_TIMEOUT_S: String(ABSOLUTE_S) },
  });
  const stored = async (cookie: string | undefined) =>
    (await stack.billfold.billfold.repository.load(sessionIdOf(cookie)))?.record;

  it('keeps the absolute timeout of the first sign-in when a second provider signs in later', async () => {
    const client = await stack.signIn(['billingplatform']);
    const first = await client.get('/auth/session');
    for (let minutes = 0; minutes < 45; minutes += 9) {
      clock.advance(9 * MINUTE);
      expect((await client.get('/auth/session?touch=true')).body.authenticated).toBe(true);
    }
    const second = await client.post('/auth/billogram/login', demo.billogram);
    expect(second.status).toBe(200);
    expect(second.body.expiresAt).toBe(first.body.expiresAt);
    for (let minutes = 45; minutes < 63; minutes += 9) {
      clock.advance(9 * MINUTE);
      expect((await client.get('/auth/session?touch=true')).body.authenticated).toBe(minutes + 9 < 60);
    }
  });

  it('slides the idle timer on relayed calls alone', async () => {
    const client = await stack.signIn(['billogram']);
    for (let minutes = 0; minutes < 30; minutes += 5) {
      clock.advance(5 * MINUTE);
      expect((await client.get('/api/billogram/customer')).status).toBe(200);
      // The use is written in the background, after the answer.
      const now = clock.now();
      await waitUntil(async () => (await stored(client.cookie))?.lastSeenAt === now);
    }
    // Thirty minutes after sign-in, three times the idle timeout, on relayed traffic only.
    const view = await client.get('/auth/session');
    expect(view.body.authenticated).toBe(true);
    expect(Date.parse(view.body.idleExpiresAt)).toBe(clock.now() + IDLE_S * 1000);
  });

  it('moves BILL’s last use, and the upstream idle deadline shown, on a relayed call', async () => {
    const client = await stack.signIn(['bill']);
    const before = (await client.get('/auth/session')).body.providers.bill.upstreamIdleExpiresAt as string;
    clock.advance(2 * MINUTE);
    const relayed = await client.request('POST', '/api/bill/List/Vendor.json', {
      body: new URLSearchParams({ data: '{"start":0,"max":5}' }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(relayed.status).toBe(200);
    const now = clock.now();
    await waitUntil(
      async () => ((await stored(client.cookie))?.providers.bill as BillCredential).lastUsedAt === now,
    );
    const after = (await client.get('/auth/session')).body.providers.bill.upstreamIdleExpiresAt as string;
    expect(Date.parse(after) - Date.parse(before)).toBe(2 * MINUTE);
  });

  it('signs the replaced credential out upstream when a provider is signed in to again', async () => {
    const client = await stack.signIn(['bill']);
    const replaced = ((await stored(client.cookie))?.providers.bill as BillCredential).sessionId;
    stack.sandbox.bill.clearRequests();
    expect((await client.post('/auth/bill/login', demo.bill)).status).toBe(200);
    const current = ((await stored(client.cookie))?.providers.bill as BillCredential).sessionId;
    expect(current).not.toBe(replaced);
    const logoutOf = (sessionId: string) =>
      stack.sandbox.bill.requests.some(
        (request) =>
          /logout\.json$/i.test(request.path) &&
          new URLSearchParams(request.body).get('sessionId') === sessionId,
      );
    // The upstream logout runs after the answer.
    await waitUntil(() => logoutOf(replaced));
    expect(logoutOf(current)).toBe(false);
  });
});

describe('POST /auth/billbora/organization racing the session’s other requests', () => {
  // Billbora's exchange is reached through the gate, so a sign-out or a sign-in lands mid-switch.
  const { stack, gate } = useGatedStack('BILLBORA_BASE_URL', 'billbora');

  it('does not sign Billbora back in, and leaves the rest of the session as it is', async () => {
    const client = await stack.signIn(['billogram', 'billbora']);
    gate().close();
    const switching = client.post('/auth/billbora/organization', { organizationId: 'org_other' });
    await gate().arrived();
    const tab = stack.client();
    tab.cookie = client.cookie;
    expect((await tab.post('/auth/billbora/logout')).status).toBe(200);
    gate().open();
    expectDocumentedError(await switching, 401, 'provider_not_connected');
    const view = await client.get('/auth/session');
    expect(view.body.authenticated).toBe(true);
    expect(view.body.providers.billbora).toEqual({ connected: false });
    expect(view.body.providers.billogram.connected).toBe(true);
    const record = await stack.billfold.billfold.repository.load(sessionIdOf(client.cookie));
    expect(record?.record.providers.billbora).toBeUndefined();
  });

  it('moves the switched credential to the new id, never the one the switch replaced', async () => {
    const client = await stack.signIn(['billbora']);
    gate().close();
    const switching = client.post('/auth/billbora/organization', { organizationId: 'org_other' });
    await gate().arrived();
    const tab = stack.client();
    tab.cookie = client.cookie;
    const signingIn = tab.post('/auth/billogram/login', demo.billogram);
    // Until the switch lands, the sign-in waits; its own upstream call is made meanwhile.
    await waitUntil(() => stack.sandbox.billogram.requests.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    gate().open();
    expect((await switching).status).toBe(200);
    const signedIn = await signingIn;
    expect(signedIn.status).toBe(200);
    // The Supabase refresh token the switch rotated moved too: the next switch spends that one.
    expect(signedIn.body.providers.billbora.organization.id).toBe('org_other');
    const back = await tab.post('/auth/billbora/organization', { organizationId: 'org_demo' });
    expect(back.body.providers.billbora.organization.id).toBe('org_demo');
  });
});

describe('a sign-in while the session it joins ends', () => {
  // BILL's login is reached through the gate, so another tab acts mid-sign-in.
  const { stack, gate } = useGatedStack('BILL_BASE_URL', 'bill');
  const billLogouts = () =>
    stack.sandbox.bill.requests.filter((request) => /logout\.json$/i.test(request.path)).length;

  /** Starts a BILL sign-in on the session, runs `meanwhile` in another tab with the same cookie, then lets it finish. */
  const signInWhile = async (meanwhile: (tab: ReturnType<typeof stack.client>) => Promise<void>) => {
    const client = await stack.signIn(['billingplatform']);
    stack.sandbox.bill.clearRequests();
    gate().close();
    const signingIn = client.post('/auth/bill/login', demo.bill);
    await gate().arrived();
    const tab = stack.client();
    tab.cookie = client.cookie;
    await meanwhile(tab);
    gate().open();
    return { answer: await signingIn, tab };
  };

  it('refuses it when a sign-in beside it moved the session: no second session, no cookie, the credential signed out', async () => {
    const { answer, tab } = await signInWhile(async (tab) => {
      expect((await tab.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
    });
    expectDocumentedError(answer, 401, 'unauthenticated');
    expect(answer.headers.getSetCookie()).toEqual([]);
    // The upstream sign-in it made is kept nowhere, so it is ended upstream.
    await waitUntil(() => billLogouts() === 1);
    // The browser holds the moved session, with both earlier sign-ins; signing in again joins it.
    const again = await tab.post('/auth/bill/login', demo.bill);
    expect(again.status).toBe(200);
    expect(
      Object.entries(again.body.providers as Record<string, { connected: boolean }>)
        .filter(([, provider]) => provider.connected)
        .map(([id]) => id)
        .sort(),
    ).toEqual(['bill', 'billingplatform', 'billogram']);
  });

  it('refuses it when a sign-out ended the session meanwhile: nothing in flight signs the browser back in', async () => {
    const { answer, tab } = await signInWhile(async (tab) => {
      expect((await tab.post('/auth/logout')).status).toBe(204);
    });
    expectDocumentedError(answer, 401, 'unauthenticated');
    expect(answer.headers.getSetCookie()).toEqual([]);
    await waitUntil(() => billLogouts() === 1);
    expect((await tab.get('/auth/session')).body.authenticated).toBe(false);
  });
});

type Stack = ReturnType<typeof useStack>;
const connectedTo = (view: { providers: Record<string, { connected: boolean }> }) =>
  Object.entries(view.providers)
    .filter(([, provider]) => provider.connected)
    .map(([id]) => id)
    .sort();

/** A session on BillingPlatform, and a tab still holding its id after a sign-in to BILL moved it. */
async function movedAway(stack: Stack) {
  const client = await stack.signIn(['billingplatform']);
  const tab = stack.client();
  tab.cookie = client.cookie;
  expect((await client.post('/auth/bill/login', demo.bill)).status).toBe(200);
  expect(client.cookie).not.toBe(tab.cookie);
  return { client, tab };
}

describe.each(['embedded', 'redis'] as const)(
  'requests still on their way with an id a sign-in has moved (%s store)',
  (store) => {
    const stack = useStack({ store });

    it('refuses a sign-in sent with the old id: no second session beside the one the browser holds', async () => {
      const { client, tab } = await movedAway(stack);
      const refused = await tab.post('/auth/billogram/login', demo.billogram);
      expectDocumentedError(refused, 401, 'unauthenticated');
      expect(refused.headers.getSetCookie()).toEqual([]);
      expect(connectedTo((await client.get('/auth/session')).body)).toEqual(['bill', 'billingplatform']);
    });

    it('ends the session where it went at a sign-out sent with the old id, upstream too', async () => {
      const { client, tab } = await movedAway(stack);
      stack.sandbox.bill.clearRequests();
      expect((await tab.post('/auth/logout')).status).toBe(204);
      expect((await client.get('/auth/session')).body.authenticated).toBe(false);
      await waitUntil(() =>
        stack.sandbox.bill.requests.some((request) => /logout\.json$/i.test(request.path)),
      );
    });

    it('writes no logout line for a sign-out whose move leads only to a session already ended', async () => {
      const { client, tab } = await movedAway(stack);
      expect((await client.post('/auth/logout')).status).toBe(204);
      const logouts = () =>
        stack.billfold.logs
          .map((line) => JSON.parse(line) as { audit?: boolean; event?: string })
          .filter((entry) => entry.audit === true && entry.event === 'logout').length;
      const before = logouts();
      expect((await tab.post('/auth/logout')).status).toBe(204);
      expect(logouts()).toBe(before);
    });

    it('follows a chain of moves to its end: ten sign-ins after the old id, one sign-out ends the last', async () => {
      const { client, tab } = await movedAway(stack);
      for (let i = 0; i < 10; i++)
        expect((await client.post('/auth/billogram/login', demo.billogram)).status).toBe(200);
      expect((await tab.post('/auth/logout')).status).toBe(204);
      expect((await client.get('/auth/session')).body.authenticated).toBe(false);
    });
  },
);

describe('a moved id, two minutes on', () => {
  // The embedded store keeps billfold's clock, which the test moves.
  const clock = createTestClock(Date.now());
  const stack = useStack({ clock, store: 'embedded' });

  it('is an ended session like any other: a sign-out ends nothing, a sign-in starts afresh', async () => {
    const { client, tab } = await movedAway(stack);
    clock.advance(120_001);
    expect((await tab.post('/auth/logout')).status).toBe(204);
    expect((await client.get('/auth/session?touch=true')).body.authenticated).toBe(true);
    const fresh = await tab.post('/auth/billogram/login', demo.billogram);
    expect(connectedTo(fresh.body)).toEqual(['billogram']);
  });
});
