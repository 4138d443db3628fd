import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import type { BillAdapter, BillCredential } from '../../src/upstream/bill/bill-adapter.js';
import { createAdapters, type CredentialOf } from '../../src/upstream/provider-modules.js';
import {
  adapterFor,
  upstreamUrl,
  type ProviderAdapter,
  type RelayCall,
} from '../../src/upstream/provider-adapter.js';
import type { ProviderId } from '../../src/upstream/provider-id.js';
import { createUpstreamClient, type UpstreamClient } from '../../src/upstream/upstream-client.js';
import { testConfig } from '../support/test-config.js';

/** What the contract needs to know about each provider to exercise its adapter against its emulator. */
interface Fixture {
  id: ProviderId;
  /** How the suite names it (a provider may have several: BILL's API versions and sign-in modes). */
  name: string;
  /** Configuration on top of the sandbox's (BILL API v3). */
  env?: (sandbox: Sandbox) => Record<string, string>;
  login: Record<string, string>;
  wrongLogin: Record<string, string>;
  call: { method: string; path: string; form?: Record<string, string> };
  authPaths: string[];
  expire: (sandbox: Sandbox) => void;
  /** Whether the upstream ends the credential at logout (Billogram is stateless). */
  logoutEndsIt: boolean;
}

const FIXTURES: Fixture[] = [
  {
    id: 'billingplatform',
    name: 'billingplatform',
    login: demo.billingplatform,
    wrongLogin: { ...demo.billingplatform, password: 'wrong' },
    call: { method: 'GET', path: 'ACCOUNT/1001' },
    authPaths: ['login', 'LOGOUT', 'Login/'],
    expire: (sandbox) => sandbox.billingplatform.expireAllSessions(),
    logoutEndsIt: true,
  },
  {
    id: 'bill',
    name: 'bill v2',
    login: demo.bill,
    wrongLogin: { ...demo.bill, password: 'wrong' },
    call: { method: 'POST', path: 'List/Vendor.json', form: { data: '{"start":0,"max":5}' } },
    authPaths: ['Login.json', 'logout.JSON'],
    expire: (sandbox) => sandbox.bill.expireAllSessions(),
    logoutEndsIt: true,
  },
  {
    id: 'bill',
    name: 'bill v2 sync-token',
    login: demo.billSyncToken,
    wrongLogin: { ...demo.billSyncToken, tokenValue: 'wrong' },
    call: { method: 'POST', path: 'List/Vendor.json', form: { data: '{"start":0,"max":5}' } },
    authPaths: ['Login.json', 'logout.JSON'],
    expire: (sandbox) => sandbox.bill.expireAllSessions(),
    logoutEndsIt: true,
  },
  {
    id: 'bill',
    name: 'bill v3',
    env: (sandbox) => ({ ...sandbox.billV3Env }),
    login: demo.bill,
    wrongLogin: { ...demo.bill, password: 'wrong' },
    call: { method: 'GET', path: 'vendors?max=5' },
    authPaths: ['login', 'LOGOUT', 'mfa/challenge', 'MFA/step-up', 'login/session'],
    expire: (sandbox) => sandbox.billV3.expireAllSessions(),
    logoutEndsIt: true,
  },
  {
    id: 'bill',
    name: 'bill v3 sync-token',
    env: (sandbox) => ({ ...sandbox.billV3Env }),
    login: demo.billSyncToken,
    wrongLogin: { ...demo.billSyncToken, tokenValue: 'wrong' },
    call: { method: 'GET', path: 'vendors' },
    authPaths: ['login', 'logout', 'Mfa/Challenge/Validate'],
    expire: (sandbox) => sandbox.billV3.expireAllSessions(),
    logoutEndsIt: true,
  },
  {
    id: 'billogram',
    name: 'billogram',
    login: demo.billogram,
    wrongLogin: { ...demo.billogram, apiPassword: 'wrong' },
    call: { method: 'GET', path: 'customer/1' },
    authPaths: [],
    expire: (sandbox) => sandbox.billogram.expireAllSessions(),
    logoutEndsIt: false,
  },
  {
    id: 'billbora',
    name: 'billbora',
    login: demo.billbora,
    wrongLogin: { ...demo.billbora, password: 'wrong' },
    call: { method: 'GET', path: 'invoices/' },
    authPaths: ['users/auth/refresh/', 'USERS/AUTH/exchange/'],
    expire: (sandbox) => sandbox.billbora.expireAccessTokens(),
    logoutEndsIt: false,
  },
];

describe.each(FIXTURES)('the $name adapter keeps the adapter contract', (fixture) => {
  let sandbox: Sandbox;
  let client: UpstreamClient;
  let adapter: ProviderAdapter;

  beforeAll(async () => {
    sandbox = await startSandbox();
    client = createUpstreamClient({ timeoutMs: 5000 });
    adapter = adapterFor(createAdapters(configOf(), client, systemClock), fixture.id)!;
  });
  afterAll(async () => {
    await client.close();
    await sandbox.close();
  });

  const configOf = () => testConfig({ ...sandbox.env, ...fixture.env?.(sandbox) });

  const callWith = async (credential: CredentialOf<ProviderId>) => {
    const config = configOf().providers[fixture.id]!;
    const [path = '', query = ''] = fixture.call.path.split('?');
    const body = fixture.call.form
      ? Buffer.from(new URLSearchParams(fixture.call.form).toString())
      : undefined;
    const call: RelayCall = {
      method: fixture.call.method,
      url: upstreamUrl(config.baseUrl, path, query && `?${query}`),
      headers: fixture.call.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {},
      body,
    };
    const authorized = adapter.authorize(call, credential);
    const response = await client.send(fixture.id, { ...authorized, body: authorized.body });
    const text = await response.body.text();
    const json: unknown = response.headers['content-type']?.includes('json') ? JSON.parse(text) : undefined;
    return { status: response.status, verdict: adapter.judge(response.status, json) };
  };

  it('signs in with valid credentials and returns a credential that survives storage as JSON', async () => {
    const credential = await adapter.login(fixture.login);
    expect(JSON.parse(JSON.stringify(credential))).toEqual(credential);
    expect(adapter.secretsOf(credential).length).toBeGreaterThan(0);
    expect(adapter.secretsOf(credential)[0]).toBeTruthy();
  });

  it('never keeps the password in what it returns', async () => {
    const credential = await adapter.login(fixture.login);
    const password = fixture.login.password ?? fixture.login.apiPassword ?? fixture.login.tokenValue!;
    expect(JSON.stringify(credential)).not.toContain(password);
  });

  it('refuses wrong credentials with invalid_credentials', async () => {
    await expect(adapter.login(fixture.wrongLogin)).rejects.toMatchObject({
      code: 'invalid_credentials',
      provider: fixture.id,
    });
  });

  it('validates its login body strictly: unknown and missing fields are refused', () => {
    expect(adapter.loginSchema.safeParse({ ...fixture.login, extra: 'x' }).success).toBe(false);
    expect(adapter.loginSchema.safeParse({}).success).toBe(false);
    expect(adapter.loginSchema.safeParse(fixture.login).success).toBe(true);
  });

  it('attaches its credential so an upstream call succeeds and is judged ok', async () => {
    const credential = await adapter.login(fixture.login);
    const answer = await callWith(credential);
    expect(answer.status).toBe(200);
    expect(answer.verdict).toBe('ok');
  });

  it('judges an answer to an expired credential as expired, or renews it when the upstream allows', async () => {
    const credential = await adapter.login(fixture.login);
    fixture.expire(sandbox);
    const answer = await callWith(credential);
    if (adapter.renew && answer.verdict === 'renew') {
      const renewed = await adapter.renew(credential, {
        signal: new AbortController().signal,
        fence: () => Promise.resolve(),
        keep: () => undefined,
      });
      expect(adapter.secretsOf(renewed)[0]).not.toBe(adapter.secretsOf(credential)[0]);
      expect((await callWith(renewed)).verdict).toBe('ok');
    } else {
      expect(answer.verdict).toBe('expired');
    }
    sandbox.reset();
  });

  it('names its own auth endpoints, whatever their case, and no resource path', () => {
    for (const path of fixture.authPaths) expect(adapter.isAuthEndpoint(path)).toBe(true);
    expect(adapter.isAuthEndpoint(fixture.call.path)).toBe(false);
  });

  it('shows a session view entry with no secret in it', async () => {
    const credential = await adapter.login(fixture.login);
    const view = JSON.stringify(adapter.view(credential));
    expect(JSON.parse(view)).toMatchObject({ connected: true });
    for (const secret of adapter.secretsOf(credential)) expect(view).not.toContain(secret);
  });

  it(fixture.logoutEndsIt ? 'ends the upstream session at logout' : 'logs out without error', async () => {
    const credential = await adapter.login(fixture.login);
    await adapter.logout(credential);
    if (fixture.logoutEndsIt) expect((await callWith(credential)).verdict).toBe('expired');
  });
});

describe.each(FIXTURES.filter((fixture) => fixture.id === 'bill'))(
  'the $name adapter names the person signed in',
  (fixture) => {
    let sandbox: Sandbox;
    let client: UpstreamClient;

    beforeAll(async () => {
      sandbox = await startSandbox();
      client = createUpstreamClient({ timeoutMs: 5000 });
    });
    afterAll(async () => {
      await client.close();
      await sandbox.close();
    });

    it('sets the identity personalIdentity gives any spelling of the user, and none for a sync token', async () => {
      const config = testConfig({ ...sandbox.env, ...fixture.env?.(sandbox) });
      const adapter = adapterFor(createAdapters(config, client, systemClock), 'bill')!;
      const credential = (await adapter.login(fixture.login)) as BillCredential;
      if ('tokenName' in fixture.login) {
        expect(credential.identity).toBeUndefined();
        return;
      }
      const { userName = '', orgId = '' } = fixture.login;
      expect(credential.identity).toBeTruthy();
      expect(adapter.personalIdentity({ user: ` ${userName.toUpperCase()} `, orgId })).toBe(
        credential.identity,
      );
      expect(adapter.personalIdentity({ user: userName, orgId: `${orgId}-other` })).not.toBe(
        credential.identity,
      );
      expect(adapter.personalIdentity({ user: userName })).toBeUndefined();
    });
  },
);

describe('the bill v3 adapter’s MFA step-up keeps its contract', () => {
  let sandbox: Sandbox;
  let client: UpstreamClient;
  let adapter: BillAdapter;
  let baseUrl: URL;

  beforeAll(async () => {
    sandbox = await startSandbox({ billApiVersion: 'v3' });
    client = createUpstreamClient({ timeoutMs: 5000 });
    const config = testConfig(sandbox.env);
    adapter = createAdapters(config, client, systemClock).bill!;
    baseUrl = config.providers.bill!.baseUrl;
  });
  afterAll(async () => {
    await client.close();
    await sandbox.close();
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
    const response = await client.send('bill', { ...authorized, body: authorized.body });
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
        ...sandbox.env,
        ...{ BILL_API_VERSION: 'v2', BILL_BASE_URL: `${sandbox.url}/bill/api/v2` },
      }),
      client,
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
    sandbox.billV3.expireAllSessions();
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
