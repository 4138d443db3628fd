import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROVIDER_MODULES } from '../../src/upstream/provider-modules.js';
import { startFakeBankEmulator, type FakeBankEmulator } from '../support/fake-provider/fake-bank-emulator.js';
import { fakeBankModule } from '../support/fake-provider/fake-bank-module.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

// The provider list of this spec: billfold's own, and one line for the upstream it adds.
const MODULES = [...PROVIDER_MODULES, fakeBankModule];

describe('a fifth provider, added as one module folder, one line in the list and one emulator', () => {
  let bank: FakeBankEmulator;
  let app: TestApp;

  beforeAll(async () => {
    bank = await startFakeBankEmulator();
    app = createTestApp({
      modules: MODULES,
      env: { ...fakeBankModule.sandbox.env(bank.url), ALLOW_INSECURE_UPSTREAMS: 'true' },
    });
  });
  afterAll(async () => {
    await app.close();
    await bank.close();
  });

  it('signs in, relays, renews on a 401 and logs out through the real app', async () => {
    const client = app.client();
    const login = await client
      .post('/auth/fakebank/login')
      .send({ user: 'ada@example.com', password: 'ada-password' });
    expect(login.status).toBe(200);
    expect(login.body.providers.fakebank).toEqual({ connected: true, user: 'ada@example.com' });
    // The built-in providers are listed beside it, off here.
    expect(login.body.providers.billbora).toBeUndefined();
    const firstToken = bank.control.requests.length;

    const relayed = await client.get('/api/fakebank/accounts');
    expect(relayed.status).toBe(200);
    expect(relayed.body).toEqual({ owner: 'ada@example.com', accounts: [{ id: 'acc_1', balance: 42 }] });
    const sent = bank.control.requests.slice(firstToken);
    expect(sent.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /accounts']);
    expect(sent[0]?.authorization).toMatch(/^Bearer fa_/);
    const used = sent[0]?.authorization;

    bank.control.expireAccessTokens();
    const before = bank.control.requests.length;
    const renewed = await client.get('/api/fakebank/accounts');
    expect(renewed.status).toBe(200);
    const calls = bank.control.requests.slice(before);
    expect(calls.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /accounts',
      'POST /refresh',
      'GET /accounts',
    ]);
    const fresh = calls[2]?.authorization;
    expect(fresh).toMatch(/^Bearer fa_/);
    expect(fresh).not.toBe(used);

    const beforeLogout = bank.control.requests.length;
    const logout = await client.post('/auth/fakebank/logout');
    expect(logout.status).toBe(200);
    expect(logout.body).toEqual({ authenticated: false, providers: { fakebank: { connected: false } } });
    expect(bank.control.requests.slice(beforeLogout)).toEqual([
      { method: 'POST', path: '/logout', authorization: fresh },
    ]);
    expect((await client.get('/api/fakebank/accounts')).body.error.code).toBe('unauthenticated');
  });

  it('refuses a wrong password with invalid_credentials, in the documented error shape', async () => {
    const answer = await app
      .client()
      .post('/auth/fakebank/login')
      .send({ user: 'ada@example.com', password: 'wrong' });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 'invalid_credentials', provider: 'fakebank' });
  });

  it('reads its own configuration slice, problems reported with every other', () => {
    expect(app.config.providers.fakebank?.baseUrl.href).toBe(`${bank.url}/`);
    expect(() =>
      createTestApp({ modules: MODULES, env: { FAKEBANK_BASE_URL: 'ftp://bank.example', PORT: 'x' } }),
    ).toThrow(/PORT: must be a whole number[\s\S]*FAKEBANK_BASE_URL: must be https:\/\//);
  });

  it('is no provider at all to an app built without its line in the list', async () => {
    const without = createTestApp({ env: { FAKEBANK_BASE_URL: bank.url, ALLOW_INSECURE_UPSTREAMS: 'true' } });
    const answer = await without.client().post('/auth/fakebank/login').send({});
    expect(answer.status).toBe(404);
    expect(answer.body.error.code).toBe('not_found');
    await without.close();
  });
});
