import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import {
  SANDBOX_MOUNTS,
  startSandbox,
  type Sandbox,
  type SandboxOptions,
} from '../../src/sandbox/sandbox.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import type { BillAdapter, BillCredential } from '../../src/upstream/bill/bill-adapter.js';
import { BILLBORA_RENEW_BEFORE_MS } from '../../src/upstream/billbora/billbora-adapter.js';
import {
  createAdapters,
  PROVIDER_MODULES,
  type CredentialOf,
  type ProviderModules,
} from '../../src/upstream/provider-modules.js';
import {
  adapterFor,
  upstreamUrl,
  type ProviderAdapter,
  type RelayCall,
  type RenewalContext,
} from '../../src/upstream/provider-adapter.js';
import { createUpstreamClient, type UpstreamClient } from '../../src/upstream/upstream-client.js';
import { emulatorsOf } from '../support/stack.js';
import { testConfig } from '../support/test-config.js';

/** The built-in providers: the fixtures below must name every one. */
type ProviderId = ProviderModules[number]['id'];
const PROVIDER_IDS: readonly ProviderId[] = PROVIDER_MODULES.map((module) => module.id);

type Credential = CredentialOf<string>;

/** How an upstream answers a credential it no longer takes, and what renewing it gives. */
type Expiry = { verdict: 'expired' } | { verdict: 'renew'; renewal: 'fresh' | 'refused' };

/** What the upstream keeps of a session once the adapter's `logout` has run. */
type Logout =
  /** The upstream session is over: a call with the credential is judged expired. */
  | 'ends-session'
  /** The Supabase session billfold held is revoked at the emulator (Billbora has no logout call). */
  | 'revokes-supabase'
  /** Nothing to end upstream (a stateless or organization credential): no request leaves billfold. */
  | 'nothing-upstream';

/** What the contract needs to know about one sign-in mode of one provider, with the answers it expects. */
interface Fixture {
  id: ProviderId;
  /** How the suite names it (a provider may have several: BILL's API versions, sign-in modes). */
  name: string;
  /** Configuration on top of the sandbox's (BILL API v3). */
  env?: (sandbox: Sandbox) => Record<string, string>;
  login: (sandbox: Sandbox) => Promise<Record<string, string>> | Record<string, string>;
  wrongLogin: Record<string, string>;
  /** The value in the login body that must never be kept. */
  secretInput: (login: Record<string, string>) => string;
  call: { method: string; path: string; form?: Record<string, string> };
  /** Paths and whether each is the upstream's own auth endpoint (never empty: a provider with none says no to others' names). */
  authPaths: Record<string, boolean>;
  expire: (sandbox: Sandbox) => void;
  expiry: Expiry;
  logout: Logout;
  buffersRequestBody: boolean;
  /** Statuses and whether `judge` needs the answer's body for each. */
  needsResponseBody: Record<number, boolean>;
  /** When `needsRenewal` turns true (the access token's expiry); undefined where a credential is never renewed ahead. */
  renewsAheadOf?: (credential: Credential) => number;
  /** Whether the adapter records the last use (BILL's idle timer) through `afterUse`. */
  tracksUse: boolean;
  /** Whether an `untrusted` answer makes the adapter store the credential as no longer trusted (BILL v3's MFA). */
  dropsTrust: boolean;
}

const billLogin = { password: demo.bill.password } as const;
const notAuth = { 'customer/1': false, 'invoices/': false, 'ACCOUNT/1001': false, vendors: false };

/** A Supabase access token for the demo user, as a client holding its own Supabase session would send it. */
async function supabaseAccessToken(sandbox: Sandbox): Promise<string> {
  const response = await fetch(`${sandbox.url}${SANDBOX_MOUNTS.supabase}/auth/v1/token?grant_type=password`, {
    method: 'POST',
    headers: { apikey: demo.supabaseAnonKey, 'content-type': 'application/json' },
    body: JSON.stringify(demo.billbora),
  });
  const { access_token: token } = (await response.json()) as { access_token: string };
  return token;
}

/** Every provider in the list, each with a fixture per sign-in mode (the type makes a new provider need one). */
const FIXTURES: Record<ProviderId, Fixture[]> = {
  billingplatform: [
    {
      id: 'billingplatform',
      name: 'billingplatform',
      login: () => demo.billingplatform,
      wrongLogin: { ...demo.billingplatform, password: 'wrong' },
      secretInput: (login) => login.password!,
      call: { method: 'GET', path: 'ACCOUNT/1001' },
      authPaths: { ...notAuth, login: true, LOGOUT: true, 'Login/': true, 'users/auth/refresh/': false },
      expire: (sandbox) => sandbox.billingplatform.expireAllSessions(),
      expiry: { verdict: 'expired' },
      logout: 'ends-session',
      buffersRequestBody: false,
      needsResponseBody: { 200: false, 401: false, 403: false },
      tracksUse: false,
      dropsTrust: false,
    },
  ],
  bill: [
    {
      id: 'bill',
      name: 'bill v2',
      login: () => demo.bill,
      wrongLogin: { ...demo.bill, password: 'wrong' },
      secretInput: (login) => login.password!,
      call: { method: 'POST', path: 'List/Vendor.json', form: { data: '{"start":0,"max":5}' } },
      authPaths: {
        ...notAuth,
        'Login.json': true,
        'logout.JSON': true,
        login: false,
        'List/Vendor.json': false,
      },
      expire: (sandbox) => sandbox.bill.expireAllSessions(),
      expiry: { verdict: 'expired' },
      logout: 'ends-session',
      buffersRequestBody: true,
      needsResponseBody: { 200: true, 401: true },
      tracksUse: true,
      dropsTrust: false,
    },
    {
      id: 'bill',
      name: 'bill v2 sync-token',
      login: () => demo.billSyncToken,
      wrongLogin: { ...demo.billSyncToken, tokenValue: 'wrong' },
      secretInput: (login) => login.tokenValue!,
      call: { method: 'POST', path: 'List/Vendor.json', form: { data: '{"start":0,"max":5}' } },
      authPaths: { ...notAuth, 'Login.json': true, 'logout.JSON': true, 'List/Vendor.json': false },
      expire: (sandbox) => sandbox.bill.expireAllSessions(),
      expiry: { verdict: 'expired' },
      logout: 'ends-session',
      buffersRequestBody: true,
      needsResponseBody: { 200: true, 401: true },
      tracksUse: true,
      dropsTrust: false,
    },
    {
      id: 'bill',
      name: 'bill v3',
      env: (sandbox) => ({ ...sandbox.billV3Env }),
      login: () => demo.bill,
      wrongLogin: { ...demo.bill, ...billLogin, password: 'wrong' },
      secretInput: (login) => login.password!,
      call: { method: 'GET', path: 'vendors?max=5' },
      authPaths: {
        ...notAuth,
        login: true,
        LOGOUT: true,
        'mfa/challenge': true,
        'MFA/step-up': true,
        'login/session': true,
        'Login.json': false,
      },
      expire: (sandbox) => sandbox.billV3.expireAllSessions(),
      expiry: { verdict: 'expired' },
      logout: 'ends-session',
      buffersRequestBody: false,
      needsResponseBody: { 200: false, 401: true, 403: true },
      tracksUse: true,
      dropsTrust: true,
    },
    {
      id: 'bill',
      name: 'bill v3 sync-token',
      env: (sandbox) => ({ ...sandbox.billV3Env }),
      login: () => demo.billSyncToken,
      wrongLogin: { ...demo.billSyncToken, tokenValue: 'wrong' },
      secretInput: (login) => login.tokenValue!,
      call: { method: 'GET', path: 'vendors' },
      authPaths: { ...notAuth, login: true, logout: true, 'Mfa/Challenge/Validate': true },
      expire: (sandbox) => sandbox.billV3.expireAllSessions(),
      expiry: { verdict: 'expired' },
      logout: 'ends-session',
      buffersRequestBody: false,
      needsResponseBody: { 200: false, 401: true, 403: true },
      tracksUse: true,
      dropsTrust: true,
    },
  ],
  billogram: [
    {
      id: 'billogram',
      name: 'billogram',
      login: () => demo.billogram,
      wrongLogin: { ...demo.billogram, apiPassword: 'wrong' },
      secretInput: (login) => login.apiPassword!,
      call: { method: 'GET', path: 'customer/1' },
      // Billogram has no auth endpoint: the other upstreams' names are resources to it.
      authPaths: {
        ...notAuth,
        login: false,
        logout: false,
        'Login.json': false,
        'users/auth/refresh/': false,
      },
      expire: (sandbox) => sandbox.billogram.expireAllSessions(),
      expiry: { verdict: 'expired' },
      logout: 'nothing-upstream',
      buffersRequestBody: false,
      needsResponseBody: { 200: false, 401: false, 403: true },
      tracksUse: false,
      dropsTrust: false,
    },
    {
      id: 'billogram',
      name: 'billogram answering 403 INVALID_AUTH',
      login: () => demo.billogram,
      wrongLogin: { ...demo.billogram, apiPassword: 'wrong' },
      secretInput: (login) => login.apiPassword!,
      call: { method: 'GET', path: 'customer/1' },
      authPaths: { ...notAuth, login: false, logout: false },
      expire: (sandbox) => {
        sandbox.billogram.setInvalidAuthStatus(403);
        sandbox.billogram.expireAllSessions();
      },
      expiry: { verdict: 'expired' },
      logout: 'nothing-upstream',
      buffersRequestBody: false,
      needsResponseBody: { 200: false, 401: false, 403: true },
      tracksUse: false,
      dropsTrust: false,
    },
  ],
  billbora: [
    {
      id: 'billbora',
      name: 'billbora email',
      login: () => demo.billbora,
      wrongLogin: { ...demo.billbora, password: 'wrong' },
      secretInput: (login) => login.password!,
      call: { method: 'GET', path: 'invoices/' },
      authPaths: {
        ...notAuth,
        'users/auth/refresh/': true,
        'USERS/AUTH/exchange/': true,
        'users/authors': false,
      },
      expire: (sandbox) => sandbox.billbora.expireAccessTokens(),
      expiry: { verdict: 'renew', renewal: 'fresh' },
      logout: 'revokes-supabase',
      buffersRequestBody: true,
      needsResponseBody: { 200: false, 401: false, 403: false },
      renewsAheadOf: (credential) => (credential as unknown as { accessExpiresAt: number }).accessExpiresAt,
      tracksUse: false,
      dropsTrust: false,
    },
    {
      id: 'billbora',
      name: 'billbora supabase token',
      login: async (sandbox) => ({ supabaseToken: await supabaseAccessToken(sandbox) }),
      wrongLogin: { supabaseToken: 'not-a-jwt' },
      secretInput: (login) => login.supabaseToken!,
      call: { method: 'GET', path: 'invoices/' },
      authPaths: { ...notAuth, 'users/auth/refresh/': true, 'Users/Auth/Exchange/': true },
      expire: (sandbox) => sandbox.billbora.expireAccessTokens(),
      expiry: { verdict: 'renew', renewal: 'fresh' },
      // The client's Supabase session is its own: billfold holds no Supabase token to revoke.
      logout: 'nothing-upstream',
      buffersRequestBody: true,
      needsResponseBody: { 200: false, 401: false, 403: false },
      renewsAheadOf: (credential) => (credential as unknown as { accessExpiresAt: number }).accessExpiresAt,
      tracksUse: false,
      dropsTrust: false,
    },
    {
      id: 'billbora',
      name: 'billbora api key',
      login: () => ({ apiKey: demo.billboraApiKey }),
      wrongLogin: { apiKey: 'bb_wrong_key' },
      secretInput: () => '',
      call: { method: 'GET', path: 'invoices/' },
      authPaths: { ...notAuth, 'users/auth/refresh/': true },
      expire: (sandbox) => sandbox.billbora.setApiKeyRevoked(true),
      // Billbora's 401 reads the same whatever the credential; an API key has nothing to renew with.
      expiry: { verdict: 'renew', renewal: 'refused' },
      logout: 'nothing-upstream',
      buffersRequestBody: false,
      needsResponseBody: { 200: false, 401: false, 403: false },
      tracksUse: false,
      dropsTrust: false,
    },
  ],
};

/** One fixture's adapter against a running sandbox. */
interface Subject {
  fixture: Fixture;
  sandbox: Sandbox;
  client: UpstreamClient;
  adapter: ProviderAdapter;
}

function adapterOf(fixture: Fixture, sandbox: Sandbox, client: UpstreamClient): ProviderAdapter {
  const config = testConfig({ ...sandbox.env, ...fixture.env?.(sandbox) });
  return adapterFor(createAdapters(config, client, systemClock), fixture.id)!;
}

/** Every request any emulator received since the last reset. */
const upstreamRequests = (sandbox: Sandbox) =>
  emulatorsOf(sandbox)
    .flatMap((control) => control.requests)
    .map((request) => `${request.method} ${request.path}`);

const signIn = async ({ fixture, sandbox, adapter }: Subject) => adapter.login(await fixture.login(sandbox));

/** The fixture's call, as the relay makes it: authorized by the adapter, its answer judged (with the body only when asked for). */
async function callWith({ fixture, sandbox, client, adapter }: Subject, credential: Credential) {
  const config = testConfig({ ...sandbox.env, ...fixture.env?.(sandbox) }).providers[fixture.id]!;
  const [path = '', query = ''] = fixture.call.path.split('?');
  const call: RelayCall = {
    method: fixture.call.method,
    url: upstreamUrl(config.baseUrl, path, query && `?${query}`),
    headers: fixture.call.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {},
    body: fixture.call.form ? Buffer.from(new URLSearchParams(fixture.call.form).toString()) : undefined,
  };
  const authorized = adapter.authorize(call, credential);
  const response = await client.send(fixture.id, { ...authorized, body: authorized.body });
  const text = await response.body.text();
  let json: unknown;
  if (adapter.needsResponseBody(response.status)) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: response.status, verdict: adapter.judge(response.status, json) };
}

/** A renewal context that records how often the lock was confirmed and what was kept. */
function renewalContext() {
  const seen = { fences: 0, kept: [] as Credential[] };
  const context: RenewalContext = {
    signal: new AbortController().signal,
    fence: () => {
      seen.fences += 1;
      return Promise.resolve();
    },
    keep: (credential) => void seen.kept.push(credential),
  };
  return { context, seen };
}

// The contract, one check per method. Each is also run against deliberately broken adapters below.

async function checksExpiry(subject: Subject): Promise<void> {
  const { fixture, sandbox, adapter } = subject;
  const credential = await signIn(subject);
  fixture.expire(sandbox);
  const answer = await callWith(subject, credential);
  expect(answer.verdict).toBe(fixture.expiry.verdict);
  if (fixture.expiry.verdict === 'expired') {
    // Nothing to renew with: the relay disconnects the provider instead.
    expect('renew' in adapter).toBe(false);
    return;
  }
  const { context, seen } = renewalContext();
  if (fixture.expiry.renewal === 'refused') {
    await expect(adapter.renew!(credential, context)).rejects.toMatchObject({
      code: 'invalid_credentials',
      provider: fixture.id,
    });
    return;
  }
  const renewed = await adapter.renew!(credential, context);
  expect(seen.fences).toBeGreaterThan(0);
  expect(adapter.secretsOf(renewed)[0]).not.toBe(adapter.secretsOf(credential)[0]);
  expect((await callWith(subject, renewed)).verdict).toBe('ok');
}

async function checksLogout(subject: Subject): Promise<void> {
  const { fixture, sandbox, adapter } = subject;
  const supabaseBefore = new Set(sandbox.supabase.sessions());
  const credential = await signIn(subject);
  const supabaseOpened = sandbox.supabase.sessions().filter((id) => !supabaseBefore.has(id));
  sandbox.reset();
  await adapter.logout(credential);
  switch (fixture.logout) {
    case 'ends-session':
      expect(upstreamRequests(sandbox)).not.toEqual([]);
      expect((await callWith(subject, credential)).verdict).toBe('expired');
      return;
    case 'revokes-supabase':
      expect(supabaseOpened).toHaveLength(1);
      expect(sandbox.supabase.sessions()).not.toContain(supabaseOpened[0]);
      expect(upstreamRequests(sandbox)).toContain('POST /auth/v1/logout');
      return;
    case 'nothing-upstream':
      expect(upstreamRequests(sandbox)).toEqual([]);
      // Forgetting the credential is the whole logout: the upstream still takes it.
      expect((await callWith(subject, credential)).verdict).toBe('ok');
      return;
  }
}

function checksAuthPaths({ fixture, adapter }: Subject): void {
  expect(Object.keys(fixture.authPaths).length).toBeGreaterThan(1);
  for (const [path, expected] of Object.entries(fixture.authPaths))
    expect({ path, auth: adapter.isAuthEndpoint(path) }).toEqual({ path, auth: expected });
  expect(adapter.isAuthEndpoint(fixture.call.path)).toBe(false);
}

async function checksBuffering(subject: Subject): Promise<void> {
  const { fixture, adapter } = subject;
  const credential = await signIn(subject);
  const call: RelayCall = {
    method: fixture.call.method,
    url: new URL('http://upstream.invalid/'),
    headers: {},
    body: undefined,
  };
  expect(adapter.buffersRequestBody(credential, call)).toBe(fixture.buffersRequestBody);
}

function checksResponseBodies({ fixture, adapter }: Subject): void {
  for (const [status, expected] of Object.entries(fixture.needsResponseBody))
    expect({ status, needed: adapter.needsResponseBody(Number(status)) }).toEqual({
      status,
      needed: expected,
    });
}

async function checksRenewalAhead(subject: Subject): Promise<void> {
  const { fixture, adapter } = subject;
  const credential = await signIn(subject);
  const now = systemClock.now();
  if (!fixture.renewsAheadOf) {
    expect(adapter.needsRenewal?.(credential, now + 365 * 86_400_000) ?? false).toBe(false);
    return;
  }
  const expiresAt = fixture.renewsAheadOf(credential);
  expect(expiresAt).toBeGreaterThan(now + BILLBORA_RENEW_BEFORE_MS);
  expect(adapter.needsRenewal!(credential, now)).toBe(false);
  expect(adapter.needsRenewal!(credential, expiresAt - BILLBORA_RENEW_BEFORE_MS - 1)).toBe(false);
  expect(adapter.needsRenewal!(credential, expiresAt - BILLBORA_RENEW_BEFORE_MS)).toBe(true);
  expect(adapter.needsRenewal!(credential, expiresAt + 1)).toBe(true);
}

async function checksUse(subject: Subject): Promise<void> {
  const { fixture, adapter } = subject;
  const credential = await signIn(subject);
  if (!fixture.tracksUse) {
    expect('afterUse' in adapter).toBe(false);
    return;
  }
  const { lastUsedAt } = credential as BillCredential;
  // Use within a minute is not worth a store write; a later one moves the idle timer BILL runs.
  expect(adapter.afterUse!(credential, lastUsedAt + 1_000)).toBeUndefined();
  const later = adapter.afterUse!(credential, lastUsedAt + 60_000);
  expect(later).toMatchObject({ lastUsedAt: lastUsedAt + 60_000 });
  expect(adapter.view(later!).upstreamIdleExpiresAt).not.toBe(adapter.view(credential).upstreamIdleExpiresAt);
  expect(adapter.secretsOf(later!)).toEqual(adapter.secretsOf(credential));
}

async function checksTrust(subject: Subject): Promise<void> {
  const { fixture, adapter } = subject;
  const credential = await signIn(subject);
  const trusted = { ...credential, trusted: true, trustedUntil: systemClock.now() + 60_000 } as Credential;
  if (!fixture.dropsTrust) {
    expect(adapter.afterUntrusted?.(trusted)).toBeUndefined();
    return;
  }
  const dropped = adapter.afterUntrusted!(trusted);
  expect(dropped).toMatchObject({ trusted: false });
  expect(dropped).not.toHaveProperty('trustedUntil');
  // Nothing to store for a credential already untrusted.
  expect(adapter.afterUntrusted!({ ...credential, trusted: false })).toBeUndefined();
}

const ALL_FIXTURES = PROVIDER_IDS.flatMap((id) => FIXTURES[id]);

describe('the adapter contract suite', () => {
  it('covers every provider in the provider list, each with at least one sign-in mode', () => {
    for (const id of PROVIDER_IDS)
      expect({ id, fixtures: FIXTURES[id].length > 0 }).toEqual({ id, fixtures: true });
    for (const id of PROVIDER_IDS) for (const fixture of FIXTURES[id]) expect(fixture.id).toBe(id);
  });
});

describe.each(ALL_FIXTURES)('the $name adapter keeps the adapter contract', (fixture) => {
  const subject = { fixture } as Subject;

  beforeAll(async () => {
    subject.sandbox = await startSandbox();
    subject.client = createUpstreamClient({ timeoutMs: 5000 });
    subject.adapter = adapterOf(fixture, subject.sandbox, subject.client);
  });
  afterEach(() => subject.sandbox.reset());
  afterAll(async () => {
    await subject.client.close();
    await subject.sandbox.close();
  });

  it('signs in with valid credentials and returns a credential that survives storage as JSON', async () => {
    const credential = await signIn(subject);
    expect(credential).toMatchObject({ connectedAt: expect.any(Number) });
    expect(JSON.parse(JSON.stringify(credential))).toEqual(credential);
    expect(subject.adapter.secretsOf(credential).length).toBeGreaterThan(0);
    for (const secret of subject.adapter.secretsOf(credential)) expect(secret).toBeTruthy();
  });

  it('never keeps what the user signed in with in what it returns, unless it is the credential', async () => {
    const login = await fixture.login(subject.sandbox);
    const credential = await subject.adapter.login(login);
    const secret = fixture.secretInput(login);
    if (secret !== '') expect(JSON.stringify(credential)).not.toContain(secret);
    else expect(subject.adapter.secretsOf(credential)).toContain(login.apiKey);
  });

  it('refuses wrong credentials with invalid_credentials', async () => {
    await expect(subject.adapter.login(fixture.wrongLogin)).rejects.toMatchObject({
      code: 'invalid_credentials',
      provider: fixture.id,
    });
  });

  it('validates its login body strictly: unknown and missing fields are refused', async () => {
    const login = await fixture.login(subject.sandbox);
    expect(subject.adapter.loginSchema.safeParse({ ...login, extra: 'x' }).success).toBe(false);
    expect(subject.adapter.loginSchema.safeParse({}).success).toBe(false);
    expect(subject.adapter.loginSchema.safeParse(login).success).toBe(true);
  });

  it('attaches its credential so an upstream call succeeds and is judged ok', async () => {
    const answer = await callWith(subject, await signIn(subject));
    expect(answer).toEqual({ status: 200, verdict: 'ok' });
  });

  it(`judges an answer to a credential the upstream no longer takes as ${fixture.expiry.verdict}${
    fixture.expiry.verdict === 'renew' ? `, and renewing it is ${fixture.expiry.renewal}` : ''
  }`, () => checksExpiry(subject));

  it('names its own auth endpoints, whatever their case, and no other path', () => checksAuthPaths(subject));

  it(`asks for the request body buffered: ${fixture.buffersRequestBody}`, () => checksBuffering(subject));

  it('asks for an answer’s body only for the statuses it judges by their body', () =>
    checksResponseBodies(subject));

  it(
    fixture.renewsAheadOf
      ? 'asks for renewal from shortly before the access token expires, not earlier'
      : 'never asks for renewal ahead of use',
    () => checksRenewalAhead(subject),
  );

  it(
    fixture.tracksUse
      ? 'records a use at most once a minute, moving the upstream idle timer'
      : 'tracks no use',
    () => checksUse(subject),
  );

  it(
    fixture.dropsTrust
      ? 'stores a trusted credential as untrusted once the upstream says so'
      : 'has no trust to drop',
    () => checksTrust(subject),
  );

  it('shows a session view entry with no secret in it', async () => {
    const credential = await signIn(subject);
    const view = JSON.stringify(subject.adapter.view(credential));
    expect(JSON.parse(view)).toMatchObject({ connected: true });
    for (const secret of subject.adapter.secretsOf(credential)) expect(view).not.toContain(secret);
  });

  it(
    {
      'ends-session': 'ends the upstream session at logout',
      'revokes-supabase': 'revokes the Supabase session it holds at logout',
      'nothing-upstream': 'sends nothing upstream at logout',
    }[fixture.logout],
    () => checksLogout(subject),
  );
});

/** One deliberate bug in one adapter, and the check that must catch it. */
interface Mutant {
  fixture: string;
  bug: string;
  change: (adapter: ProviderAdapter) => Partial<ProviderAdapter>;
  check: (subject: Subject) => Promise<void> | void;
}

const MUTANTS: Mutant[] = [
  {
    fixture: 'billogram',
    bug: 'a logout that calls the upstream',
    change: (adapter) => ({
      async logout() {
        await adapter.login(demo.billogram);
      },
    }),
    check: checksLogout,
  },
  {
    fixture: 'billbora email',
    bug: 'a 401 judged expired instead of renewed',
    change: () => ({ judge: (status) => (status === 401 ? 'expired' : 'ok') }),
    check: checksExpiry,
  },
  {
    fixture: 'billbora email',
    bug: 'a renewal handing back the same tokens',
    change: () => ({ renew: (credential) => Promise.resolve(credential) }),
    check: checksExpiry,
  },
  {
    fixture: 'billogram',
    bug: 'a Billogram path taken for an auth endpoint',
    change: () => ({ isAuthEndpoint: (path) => /^log/i.test(path) }),
    check: checksAuthPaths,
  },
  {
    fixture: 'billbora email',
    bug: 'a logout that leaves the Supabase session alive',
    change: () => ({ logout: () => Promise.resolve() }),
    check: checksLogout,
  },
  {
    fixture: 'bill v2',
    bug: 'a logout that does not end the BILL session',
    change: () => ({ logout: () => Promise.resolve() }),
    check: checksLogout,
  },
  {
    fixture: 'billbora email',
    bug: 'renewal never asked for ahead of expiry',
    change: () => ({ needsRenewal: () => false }),
    check: checksRenewalAhead,
  },
  {
    fixture: 'billbora email',
    bug: 'renewal asked for on every call',
    change: () => ({ needsRenewal: () => true }),
    check: checksRenewalAhead,
  },
  {
    fixture: 'bill v3',
    bug: 'use never recorded',
    change: () => ({ afterUse: () => undefined }),
    check: checksUse,
  },
  {
    fixture: 'billbora email',
    bug: 'a JWT call’s body not kept for the replay',
    change: () => ({ buffersRequestBody: () => false }),
    check: checksBuffering,
  },
  {
    fixture: 'billogram answering 403 INVALID_AUTH',
    bug: 'a 403 judged without its body',
    change: () => ({ needsResponseBody: () => false }),
    check: checksExpiry,
  },
  {
    fixture: 'billogram answering 403 INVALID_AUTH',
    bug: 'needsResponseBody false for 403',
    change: () => ({ needsResponseBody: () => false }),
    check: checksResponseBodies,
  },
  {
    fixture: 'billbora api key',
    bug: 'an API key sent as the JWT access token',
    change: (adapter) => ({
      authorize: (call, credential) =>
        adapter.authorize(call, {
          ...(credential as object),
          mode: 'jwt',
          access: 'none',
        } as unknown as Credential),
    }),
    check: (subject) =>
      callWith(subject, { mode: 'apiKey', apiKey: demo.billboraApiKey, connectedAt: 0 }).then((answer) => {
        expect(answer.verdict).toBe('ok');
      }),
  },
  {
    fixture: 'billbora api key',
    bug: 'an API key “renewed” into itself',
    change: () => ({ renew: (credential) => Promise.resolve(credential) }),
    check: checksExpiry,
  },
  {
    fixture: 'bill v3',
    bug: 'trust kept after BILL said untrusted',
    change: () => ({ afterUntrusted: () => undefined }),
    check: checksTrust,
  },
];

/** The emulators and an upstream client for a describe's tests, started before and stopped after them. */
function useEmulators(options?: SandboxOptions): { sandbox: Sandbox; client: UpstreamClient } {
  const held = {} as { sandbox: Sandbox; client: UpstreamClient };
  beforeAll(async () => {
    held.sandbox = await startSandbox(options);
    held.client = createUpstreamClient({ timeoutMs: 5000 });
  });
  afterAll(async () => {
    await held.client.close();
    await held.sandbox.close();
  });
  return held;
}

describe('the contract checks catch a deliberately broken adapter', () => {
  const emulators = useEmulators();
  afterEach(() => emulators.sandbox.reset());

  it.each(MUTANTS)('the $fixture adapter with $bug fails its check', async (mutant) => {
    const fixture = ALL_FIXTURES.find((candidate) => candidate.name === mutant.fixture)!;
    const sound = adapterOf(fixture, emulators.sandbox, emulators.client);
    const subject: Subject = { fixture, ...emulators, adapter: { ...sound, ...mutant.change(sound) } };
    // The sound adapter passes the same check, so the failure is the bug's.
    await (async () => mutant.check({ ...subject, adapter: sound }))();
    emulators.sandbox.reset();
    await expect((async () => mutant.check(subject))()).rejects.toMatchObject({ name: 'AssertionError' });
  });
});

describe.each(FIXTURES.bill)('the $name adapter names the person signed in', (fixture) => {
  const emulators = useEmulators();

  it('sets the identity personalIdentity gives any spelling of the user, and none for a sync token', async () => {
    const config = testConfig({ ...emulators.sandbox.env, ...fixture.env?.(emulators.sandbox) });
    const adapter = adapterFor(createAdapters(config, emulators.client, systemClock), 'bill')!;
    const login = await fixture.login(emulators.sandbox);
    const credential = (await adapter.login(login)) as BillCredential;
    if ('tokenName' in login) {
      expect(credential.identity).toBeUndefined();
      return;
    }
    const { userName = '', orgId = '' } = login;
    expect(credential.identity).toBeTruthy();
    expect(adapter.personalIdentity({ user: ` ${userName.toUpperCase()} `, orgId })).toBe(
      credential.identity,
    );
    expect(adapter.personalIdentity({ user: userName, orgId: `${orgId}-other` })).not.toBe(
      credential.identity,
    );
    expect(adapter.personalIdentity({ user: userName })).toBeUndefined();
  });
});

// Billogram's credential is what the user signed in with: an upstream echoing any form of it
// (encoded, decoded, the password alone) must not get it past the relay's header filter.
describe.each(FIXTURES.billogram)('the $name adapter names every form of its credential', (fixture) => {
  const emulators = useEmulators();

  it('names the Basic credential, what it encodes and the password among its secrets', async () => {
    const adapter = adapterOf(fixture, emulators.sandbox, emulators.client);
    const login = await fixture.login(emulators.sandbox);
    const pair = `${login.apiUserId ?? ''}:${login.apiPassword ?? ''}`;
    expect(adapter.secretsOf(await adapter.login(login))).toEqual(
      expect.arrayContaining([Buffer.from(pair).toString('base64'), pair, login.apiPassword]),
    );
  });
});

describe('the bill v3 adapter’s MFA step-up keeps its contract', () => {
  const emulators = useEmulators({ billApiVersion: 'v3' });
  let adapter: BillAdapter;
  let baseUrl: URL;

  beforeAll(() => {
    const config = testConfig(emulators.sandbox.env);
    adapter = createAdapters(config, emulators.client, systemClock).bill!;
    baseUrl = config.providers.bill!.baseUrl;
  });

  /** A payment, BILL's MFA-protected operation, as the relay would send it, judged. */
  const pay = async (credential: BillCredential) => {
    const call: RelayCall = {
      method: 'POST',
      url: upstreamUrl(baseUrl, 'payments'),
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ vendorId: '00901DEMOVEND01', amount: 10 })),
    };
    const authorized = adapter.authorize(call, credential);
    const response = await emulators.client.send('bill', { ...authorized, body: authorized.body });
    const text = await response.body.text();
    return adapter.judge(
      response.status,
      adapter.needsResponseBody(response.status) ? JSON.parse(text) : undefined,
    );
  };
  const step = { device: 'billfold-contract', machineName: 'contract' };

  it('is the v3 adapter with an MFA step-up; v2 has none', () => {
    expect(adapter.apiVersion).toBe('v3');
    expect(adapter.mfa).toBeDefined();
    const v2 = createAdapters(
      testConfig({
        ...emulators.sandbox.env,
        ...{ BILL_API_VERSION: 'v2', BILL_BASE_URL: `${emulators.sandbox.url}/bill/api/v2` },
      }),
      emulators.client,
      systemClock,
    ).bill!;
    expect(v2.apiVersion).toBe('v2');
    expect(v2.mfa).toBeUndefined();
  });

  it('judges a payment on an untrusted session untrusted, and ok once the code is validated', async () => {
    const credential = await adapter.login(demo.bill);
    expect(credential.trusted).toBe(false);
    expect(await pay(credential)).toBe('untrusted');
    const challengeId = await adapter.mfa!.challenge(credential);
    const { rememberMeId } = await adapter.mfa!.validate(credential, {
      challengeId,
      token: demo.billMfaCode,
      rememberMe: false,
      ...step,
    });
    expect(rememberMeId).toBeUndefined();
    expect(await pay(credential)).toBe('ok');
  });

  it('signs in trusted when the session keeps a rememberMeId for that user, device and organization only', async () => {
    const first = await adapter.login(demo.bill);
    const challengeId = await adapter.mfa!.challenge(first);
    const { rememberMeId } = await adapter.mfa!.validate(first, {
      challengeId,
      token: demo.billMfaCode,
      rememberMe: true,
      ...step,
    });
    expect(rememberMeId).toEqual(expect.any(String));
    const until = Date.now() + 60_000;
    const device = {
      rememberMeId: rememberMeId!,
      device: step.device,
      user: demo.bill.userName,
      orgId: demo.bill.orgId,
      until,
    };
    const session = (trustedDevices: NonNullable<SessionRecord['trustedDevices']>): SessionRecord => ({
      createdAt: 0,
      lastSeenAt: 0,
      providers: {},
      trustedDevices,
    });
    const trusted = await adapter.login(demo.bill, session({ bill: device }));
    expect(trusted).toMatchObject({ trusted: true, trustedUntil: until });
    expect(JSON.stringify(trusted)).not.toContain(rememberMeId);
    expect(await pay(trusted)).toBe('ok');
    // Not offered to another user, once expired, or for a sync-token sign-in.
    for (const kept of [
      { ...device, user: 'someone@example.com' },
      { ...device, until: Date.now() - 1 },
    ]) {
      expect((await adapter.login(demo.bill, session({ bill: kept }))).trusted).toBe(false);
    }
    const synced = await adapter.login(demo.billSyncToken, session({ bill: device }));
    expect(synced.trusted).toBeUndefined();
    expect(synced.mode).toBe('sync-token');
  });

  it('refuses a wrong code with invalid_credentials, and a dead session with upstream_session_expired', async () => {
    const credential = await adapter.login(demo.bill);
    const challengeId = await adapter.mfa!.challenge(credential);
    await expect(
      adapter.mfa!.validate(credential, { challengeId, token: '000000', rememberMe: true, ...step }),
    ).rejects.toMatchObject({ code: 'invalid_credentials', provider: 'bill' });
    emulators.sandbox.billV3.expireAllSessions();
    await expect(adapter.mfa!.challenge(credential)).rejects.toMatchObject({
      code: 'upstream_session_expired',
      provider: 'bill',
    });
  });

  it('gets BILL’s refusal of a sync-token session as a clear error, never a trusted session', async () => {
    const credential = await adapter.login(demo.billSyncToken);
    await expect(adapter.mfa!.challenge(credential)).rejects.toMatchObject({ code: 'invalid_request' });
    expect(await pay(credential)).toBe('ok');
  });
});
