import { z } from 'zod';
import { list, optionalString } from '../../../src/env-fields.js';
import { loginFailure } from '../../../src/upstream/login-failure.js';
import { upstreamUrl, type ProviderAdapter } from '../../../src/upstream/provider-adapter.js';
import { defineProviderModule, type AdapterDeps } from '../../../src/upstream/provider-module.js';
import { readProviderSettings } from '../../../src/upstream/provider-settings.js';

/** What billfold stores for the fake bank: rotating tokens, and the person they belong to. */
export type FakeBankCredential = {
  access: string;
  refresh: string;
  user: string;
  identity: string;
  connectedAt: number;
};

const loginSchema = z.strictObject({ user: z.email(), password: z.string().min(1).max(256) });
const tokensSchema = z.object({ access: z.string().min(1), refresh: z.string().min(1) });
const identityOf = (user: string) => user.trim().toLowerCase();

function createFakeBankAdapter(deps: AdapterDeps): ProviderAdapter<FakeBankCredential> {
  const { config, client, clock } = deps;
  const provider = 'fakebank';
  const post = (path: string, body: unknown, signal?: AbortSignal) =>
    client.sendJson(provider, {
      method: 'POST',
      url: upstreamUrl(config.baseUrl, path),
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
  return {
    id: provider,
    loginSchema,
    async login(input) {
      const { user, password } = loginSchema.parse(input);
      const response = await post('login', { user, password });
      const tokens = tokensSchema.safeParse(response.json);
      if (response.status !== 200 || !tokens.success)
        throw loginFailure(provider, response.status, tokens.success);
      return { ...tokens.data, user, identity: identityOf(user), connectedAt: clock.now() };
    },
    async logout(credential) {
      const response = await client.send(provider, {
        method: 'POST',
        url: upstreamUrl(config.baseUrl, 'logout'),
        headers: { authorization: `Bearer ${credential.access}` },
      });
      await response.body.dump();
    },
    isAuthEndpoint: (path) =>
      ['login', 'logout', 'refresh'].includes(path.split('/')[0]?.toLowerCase() ?? ''),
    buffersRequestBody: () => false,
    authorize(call, credential) {
      call.headers.authorization = `Bearer ${credential.access}`;
      return call;
    },
    needsResponseBody: () => false,
    judge: (status) => (status === 401 ? 'renew' : 'ok'),
    async renew(credential, context) {
      await context.fence();
      const response = await post('refresh', { refresh: credential.refresh }, context.signal);
      const tokens = tokensSchema.safeParse(response.json);
      if (response.status !== 200 || !tokens.success) throw loginFailure(provider, 401, false);
      return { ...credential, ...tokens.data };
    },
    secretsOf: (credential) => [credential.access, credential.refresh],
    view: (credential) => ({ connected: true, user: credential.user }),
    personalIdentity: ({ user }) => identityOf(user),
  };
}

/**
 * A provider billfold does not ship, written the way an upstream is added: one module in its own
 * folder, one line in a provider list, one emulator.
 */
export const fakeBankModule = defineProviderModule({
  id: 'fakebank',
  config: {
    env: {
      FAKEBANK_BASE_URL: optionalString.describe('the fake bank base URL'),
      RELAY_ALLOW_FAKEBANK: list.describe('relay path patterns allowed for the fake bank'),
    },
    read: (env, context) =>
      readProviderSettings('FAKEBANK_BASE_URL', env.FAKEBANK_BASE_URL, env.RELAY_ALLOW_FAKEBANK, context),
  },
  createAdapter: createFakeBankAdapter,
  loginName: (input) => loginSchema.parse(input).user,
  sandbox: { mount: '/fakebank', env: (mountedAt) => ({ FAKEBANK_BASE_URL: mountedAt }) },
});
