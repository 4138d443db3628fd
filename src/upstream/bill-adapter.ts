import { z } from 'zod';
import type { Clock } from '../clock.js';
import type { ProviderConfig } from '../config.js';
import { AppError } from '../errors.js';
import type { BillCredential } from '../session/session-record.js';
import { canonicalEmail } from './identity-names.js';
import { loginFailure } from './login-failure.js';
import { firstSegment, upstreamUrl, type ProviderAdapter, type RelayCall } from './provider-adapter.js';
import type { UpstreamClient } from './upstream-client.js';

/** BILL ends a session after 35 minutes without a call. */
export const BILL_IDLE_TIMEOUT_MS = 35 * 60_000;
// How stale the recorded last use may get before it is written again (a write per call would cost a store round trip).
const LAST_USE_RESOLUTION_MS = 60_000;

const FORM = 'application/x-www-form-urlencoded';

const loginSchema = z.strictObject({
  userName: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
  orgId: z.string().min(1).max(64),
});

const envelopeSchema = z.object({
  response_status: z.union([z.literal(0), z.literal(1)]),
  response_data: z.unknown(),
});

/** The `error_code` of a failed BILL envelope, if the answer is one. */
function billErrorCode(body: unknown): string | undefined {
  const parsed = envelopeSchema.safeParse(body);
  if (!parsed.success || parsed.data.response_status !== 1) return undefined;
  const data = parsed.data.response_data as { error_code?: unknown } | null;
  return typeof data?.error_code === 'string' ? data.error_code : undefined;
}

/**
 * BILL API v2: every call is a form POST carrying `devKey` and `sessionId` fields. The devKey comes
 * from billfold's configuration, never from a client, and neither ever goes into a URL.
 */
export function createBillAdapter(deps: {
  config: ProviderConfig & { devKey: string };
  client: UpstreamClient;
  clock: Clock;
}): ProviderAdapter<'bill'> {
  const { config, client, clock } = deps;
  const provider = 'bill';
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  // A BILL user is an email address within one organization; the same address elsewhere is another user.
  const personalIdentity = ({ user, orgId }: { user: string; orgId?: string }) =>
    orgId === undefined || orgId.trim() === '' ? undefined : `${orgId.trim()}\n${canonicalEmail(user)}`;

  return {
    id: provider,
    loginSchema,

    async login(input) {
      const { userName, password, orgId } = loginSchema.parse(input);
      const response = await client.sendJson(provider, {
        method: 'POST',
        url: upstreamUrl(config.baseUrl, 'Login.json'),
        headers: { 'content-type': FORM, accept: 'application/json' },
        body: form({ userName, password, orgId, devKey: config.devKey }),
      });
      const parsed = envelopeSchema.safeParse(response.json);
      const data = parsed.success ? (parsed.data.response_data as { sessionId?: unknown } | null) : null;
      if (
        response.status === 200 &&
        parsed.data?.response_status === 0 &&
        typeof data?.sessionId === 'string' &&
        data.sessionId
      ) {
        const now = clock.now();
        const identity = personalIdentity({ user: userName, orgId });
        return {
          sessionId: data.sessionId,
          user: userName,
          orgId,
          ...(identity !== undefined && { identity }),
          connectedAt: now,
          lastUsedAt: now,
        };
      }
      switch (billErrorCode(response.json)) {
        case 'BDC_1144':
          throw new AppError('rate_limited', { provider, retryAfter: 60 });
        case 'BDC_1102':
          // A rejected devKey is the operator's configuration, not the user's password.
          throw new AppError('upstream_unavailable', {
            provider,
            message: 'The provider refused billfold’s developer key.',
          });
        case 'BDC_1101':
        case 'BDC_1123':
        case undefined:
        default:
          throw loginFailure(provider, response.status === 200 ? 401 : response.status, parsed.success);
      }
    },

    async logout(credential) {
      const response = await client.send(provider, {
        method: 'POST',
        url: upstreamUrl(config.baseUrl, 'Logout.json'),
        headers: { 'content-type': FORM },
        body: form({ devKey: config.devKey, sessionId: credential.sessionId }),
      });
      await response.body.dump();
    },

    isAuthEndpoint: (path) => ['login.json', 'logout.json'].includes(firstSegment(path)),
    buffersRequestBody: () => true,

    authorize(call: RelayCall, credential: BillCredential) {
      const type = call.headers['content-type'];
      if (
        call.method !== 'POST' ||
        (call.body && call.body.length > 0 && !type?.toLowerCase().startsWith(FORM))
      )
        return call;
      // Client-sent credentials are removed, whatever their case; billfold's are set.
      const fields = new URLSearchParams(call.body?.toString('utf8') ?? '');
      for (const name of [...fields.keys()]) {
        if (['devkey', 'sessionid'].includes(name.toLowerCase())) fields.delete(name);
      }
      fields.set('devKey', config.devKey);
      fields.set('sessionId', credential.sessionId);
      call.headers['content-type'] = FORM;
      call.body = Buffer.from(fields.toString());
      return call;
    },

    needsResponseBody: () => true,
    // BILL answers an expired session with BDC_1109 inside HTTP 200.
    judge: (_status, body) => (billErrorCode(body) === 'BDC_1109' ? 'expired' : 'ok'),

    afterUse: (credential, now) =>
      now - credential.lastUsedAt >= LAST_USE_RESOLUTION_MS ? { ...credential, lastUsedAt: now } : undefined,

    secretsOf: (credential) => [credential.sessionId, config.devKey],

    personalIdentity,

    view: (credential) => ({
      connected: true,
      user: credential.user,
      orgId: credential.orgId,
      connectedAt: new Date(credential.connectedAt).toISOString(),
      upstreamIdleExpiresAt: new Date(credential.lastUsedAt + BILL_IDLE_TIMEOUT_MS).toISOString(),
    }),
  };
}
