import { z } from 'zod';
import { memoize } from '../../bounded-cache.js';
import { loginFailure } from '../login-failure.js';
import { upstreamUrl, type ProviderAdapter } from '../provider-adapter.js';
import type { AdapterDeps } from '../provider-module.js';

/** Billogram: the HTTP Basic credential, already encoded. An API user is shared, never a person. */
export type BillogramCredential = {
  basic: string;
  user: string;
  connectedAt: number;
};

/** The client's Billogram login body. */
export const billogramLoginSchema = z.strictObject({
  apiUserId: z.string().min(1).max(256),
  apiPassword: z.string().min(1).max(1024),
});

const AUTH_FAILURES = new Set(['INVALID_AUTH', 'MISSING_AUTH']);

/** The encoded credential first (it names the credential), then what it encodes, and the password. */
const secretsOfBasic = memoize((basic: string) => {
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  return [basic, decoded, decoded.slice(decoded.indexOf(':') + 1)];
});

/**
 * Billogram API v2: stateless HTTP Basic on every call. The credential is checked with one cheap call
 * before it is stored, so a typo fails at sign-in rather than on the first relayed request.
 */
export function createBillogramAdapter(deps: AdapterDeps): ProviderAdapter<BillogramCredential> {
  const { config, client, clock } = deps;
  const provider = 'billogram';

  return {
    id: provider,
    loginSchema: billogramLoginSchema,

    async login(input) {
      const { apiUserId, apiPassword } = billogramLoginSchema.parse(input);
      const basic = Buffer.from(`${apiUserId}:${apiPassword}`).toString('base64');
      const response = await client.sendJson(provider, {
        method: 'GET',
        url: upstreamUrl(config.baseUrl, 'customer', '?page=1&page_size=1'),
        headers: { authorization: `Basic ${basic}`, accept: 'application/json' },
      });
      const ok = (response.json as { status?: unknown } | null)?.status === 'OK';
      if (response.status === 200 && ok) return { basic, user: apiUserId, connectedAt: clock.now() };
      throw loginFailure(provider, response.status, ok);
    },

    // Billogram has no sessions to end: forgetting the credential is the whole logout.
    logout: () => Promise.resolve(),
    isAuthEndpoint: () => false,
    buffersRequestBody: () => false,

    authorize(call, credential) {
      call.headers.authorization = `Basic ${credential.basic}`;
      return call;
    },

    needsResponseBody: (status) => status === 403,
    // Client libraries disagree on 401 or 403 for bad credentials; a 403 that is PERMISSION_DENIED passes through.
    judge(status, body) {
      if (status === 401) return 'expired';
      const code = (body as { status?: unknown } | undefined)?.status;
      return status === 403 && typeof code === 'string' && AUTH_FAILURES.has(code) ? 'expired' : 'ok';
    },

    secretsOf: (credential) => secretsOfBasic(credential.basic),
    // An API user is the organization's credential, shared by whoever holds it: no person.
    personalIdentity: () => undefined,

    view: (credential) => ({
      connected: true,
      user: credential.user,
      connectedAt: new Date(credential.connectedAt).toISOString(),
    }),
  };
}
