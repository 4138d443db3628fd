import { z } from 'zod';
import type { Clock } from '../clock.js';
import type { ProviderConfig } from '../config.js';
import { firstSegment, upstreamUrl, type ProviderAdapter } from './provider-adapter.js';
import { loginFailure } from './login-failure.js';
import type { UpstreamClient } from './upstream-client.js';

/** The body of `POST /auth/billingplatform/login`. */
export const billingplatformLoginSchema = z.strictObject({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
});

const loginResponseSchema = z.object({
  loginResponse: z.array(z.object({ SessionID: z.string(), ErrorCode: z.string() })).min(1),
});

/** BillingPlatform REST 2.0: a SessionID from `POST /login`, sent as the `sessionid` header. */
export function createBillingPlatformAdapter(deps: {
  config: ProviderConfig;
  client: UpstreamClient;
  clock: Clock;
}): ProviderAdapter<'billingplatform'> {
  const { config, client, clock } = deps;
  const provider = 'billingplatform';
  // BillingPlatform compares usernames as typed: only the Unicode spelling is made one.
  const personalIdentity = ({ user }: { user: string }) => user.normalize('NFC');

  return {
    id: provider,
    loginSchema: billingplatformLoginSchema,

    async login(input) {
      const { username, password } = billingplatformLoginSchema.parse(input);
      const response = await client.sendJson(provider, {
        method: 'POST',
        url: upstreamUrl(config.baseUrl, 'login'),
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      // A login counts only with a 2xx, ErrorCode "0" and a SessionID: some tenants answer failures with 200.
      const parsed = loginResponseSchema.safeParse(response.json);
      const result = parsed.success ? parsed.data.loginResponse[0] : undefined;
      if (
        response.status >= 200 &&
        response.status < 300 &&
        result?.ErrorCode === '0' &&
        result.SessionID !== ''
      ) {
        return {
          sessionId: result.SessionID,
          user: username,
          identity: personalIdentity({ user: username }),
          connectedAt: clock.now(),
        };
      }
      throw loginFailure(provider, response.status, parsed.success);
    },

    async logout(credential) {
      // The API documents the `sessionid` header for every call, its own logout example shows
      // `Authorization: Session <SessionID>`: a server that refuses one form gets the other.
      for (const headers of [
        { sessionid: credential.sessionId },
        { authorization: `Session ${credential.sessionId}` },
      ]) {
        const response = await client.send(provider, {
          method: 'POST',
          url: upstreamUrl(config.baseUrl, 'logout'),
          headers,
        });
        await response.body.dump();
        if (response.status !== 401) return;
      }
    },

    isAuthEndpoint: (path) => ['login', 'logout'].includes(firstSegment(path)),
    buffersRequestBody: () => false,

    authorize(call, credential) {
      call.headers.sessionid = credential.sessionId;
      return call;
    },

    needsResponseBody: () => false,
    judge: (status) => (status === 401 ? 'expired' : 'ok'),

    secretsOf: (credential) => [credential.sessionId],

    personalIdentity,

    view: (credential) => ({
      connected: true,
      user: credential.user,
      connectedAt: new Date(credential.connectedAt).toISOString(),
    }),
  };
}
