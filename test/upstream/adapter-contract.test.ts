import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import type { CredentialOf } from '../../src/session/session-record.js';
import { createAdapters } from '../../src/upstream/adapter-registry.js';
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
    login: demo.billingplatform,
    wrongLogin: { ...demo.billingplatform, password: 'wrong' },
    call: { method: 'GET', path: 'ACCOUNT/1001' },
    authPaths: ['login', 'LOGOUT', 'Login/'],
    expire: (sandbox) => sandbox.billingplatform.expireAllSessions(),
    logoutEndsIt: true,
  },
  {
    id: 'bill',
    login: demo.bill,
    wrongLogin: { ...demo.bill, password: 'wrong' },
    call: { method: 'POST', path: 'List/Vendor.json', form: { data: '{"start":0,"max":5}' } },
    authPaths: ['Login.json', 'logout.JSON'],
    expire: (sandbox) => sandbox.bill.expireAllSessions(),
    logoutEndsIt: true,
  },
  {
    id: 'billogram',
    login: demo.billogram,
    wrongLogin: { ...demo.billogram, apiPassword: 'wrong' },
    call: { method: 'GET', path: 'customer/1' },
    authPaths: [],
    expire: (sandbox) => sandbox.billogram.expireAllSessions(),
    logoutEndsIt: false,
  },
  {
    id: 'billbora',
    login: demo.billbora,
    wrongLogin: { ...demo.billbora, password: 'wrong' },
    call: { method: 'GET', path: 'invoices/' },
    authPaths: ['users/auth/refresh/', 'USERS/AUTH/exchange/'],
    expire: (sandbox) => sandbox.billbora.expireAccessTokens(),
    logoutEndsIt: false,
  },
];

describe.each(FIXTURES)('the $id adapter keeps the adapter contract', (fixture) => {
  let sandbox: Sandbox;
  let client: UpstreamClient;
  let adapter: ProviderAdapter;

  beforeAll(async () => {
    sandbox = await startSandbox();
    client = createUpstreamClient({ timeoutMs: 5000 });
    adapter = adapterFor(createAdapters(testConfig(sandbox.env), client, systemClock), fixture.id)!;
  });
  afterAll(async () => {
    await client.close();
    await sandbox.close();
  });

  const callWith = async (credential: CredentialOf<ProviderId>) => {
    const config = testConfig(sandbox.env).providers[fixture.id]!;
    const body = fixture.call.form
      ? Buffer.from(new URLSearchParams(fixture.call.form).toString())
      : undefined;
    const call: RelayCall = {
      method: fixture.call.method,
      url: upstreamUrl(config.baseUrl, fixture.call.path),
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
    const password = fixture.login.password ?? fixture.login.apiPassword!;
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
