import { z } from 'zod';
import { AppError } from '../../errors.js';
import type { SessionRecord } from '../../session/session-record.js';
import { firstSegment, upstreamUrl } from '../provider-adapter.js';
import type { UpstreamJsonResponse } from '../upstream-client.js';
import {
  billCommon,
  billTrustedDevice,
  billIdleExpiresAt,
  billLoginRefusal,
  billLoginSchema,
  newBillCredential,
  toBillLogin,
  type BillAdapter,
  type BillAdapterDeps,
  type BillCredential,
} from './bill-adapter.js';

/** How long BILL honours a rememberMeId: 30 days. */
export const BILL_REMEMBER_ME_MS = 30 * 86_400_000;

const JSON_TYPE = 'application/json';

const loginAnswerSchema = z.object({
  sessionId: z.string().min(1),
  trusted: z.boolean().optional(),
});
const challengeAnswerSchema = z.object({ challengeId: z.string().min(1).max(1024) });
const validateAnswerSchema = z.object({ rememberMeId: z.string().min(1).max(4096).optional() });
const errorListSchema = z.array(z.object({ code: z.string() }).loose());

/** The machine codes of a v3 error answer (a JSON array of `{code, message}`). */
function errorCodes(body: unknown): string[] {
  const parsed = errorListSchema.safeParse(body);
  return parsed.success ? parsed.data.map((error) => error.code) : [];
}

/**
 * BILL API v3: JSON with real HTTP statuses; every call carries `devKey` and `sessionId` headers set
 * by billfold. Sessions can be stepped up by MFA; a rememberMeId kept in the billfold session makes
 * later sign-ins trusted without a new code. Calls BILL refuses for an untrusted session (403
 * `BDC_1361`) become `mfa_required`.
 */
export function createBillV3Adapter(deps: BillAdapterDeps): BillAdapter {
  const { config, client, clock } = deps;
  const provider = 'bill';
  const common = billCommon('v3');
  const authHeaders = (credential: BillCredential) => ({
    devkey: config.devKey,
    sessionid: credential.sessionId,
  });

  /** One of billfold's own calls on the user's BILL session (logout, MFA). */
  const call = (path: string, credential: BillCredential, body: unknown) =>
    client.sendJson(provider, {
      method: 'POST',
      url: upstreamUrl(config.baseUrl, path),
      headers: { ...authHeaders(credential), 'content-type': JSON_TYPE, accept: JSON_TYPE },
      body: JSON.stringify(body),
    });

  /** What an MFA call's refusal means: the session ended, throttling, or (`refused`) BILL said no. */
  const mfaFailure = (response: UpstreamJsonResponse, refused: AppError) => {
    if (response.status === 401 && errorCodes(response.json).includes('BDC_1109'))
      return new AppError('upstream_session_expired', { provider });
    if (response.status === 429) return new AppError('rate_limited', { provider, retryAfter: 60 });
    if (response.status >= 400 && response.status < 500) return refused;
    return new AppError('upstream_unavailable', { provider });
  };

  return {
    id: provider,
    apiVersion: 'v3',
    loginSchema: billLoginSchema,

    async login(input, session?: SessionRecord) {
      const login = toBillLogin(input);
      // A device this session's step-up made trusted is offered again, for the same user only.
      const kept = billTrustedDevice(session);
      const device =
        login.mode === 'password' &&
        kept !== undefined &&
        kept.user === login.userName &&
        kept.orgId === login.orgId &&
        kept.until > clock.now()
          ? kept
          : undefined;
      const response = await client.sendJson(provider, {
        method: 'POST',
        url: upstreamUrl(config.baseUrl, 'login'),
        headers: { 'content-type': JSON_TYPE, accept: JSON_TYPE },
        body: JSON.stringify({
          username: login.userName,
          password: login.password,
          organizationId: login.orgId,
          devKey: config.devKey,
          ...(device && { rememberMeId: device.rememberMeId, device: device.device }),
        }),
      });
      const parsed = loginAnswerSchema.safeParse(response.json);
      if (response.status === 200 && parsed.success) {
        const credential = newBillCredential(parsed.data.sessionId, login, clock.now());
        if (login.mode === 'password') credential.trusted = parsed.data.trusted === true;
        if (credential.trusted && device) credential.trustedUntil = device.until;
        return credential;
      }
      const understood = parsed.success || errorListSchema.safeParse(response.json).success;
      throw billLoginRefusal(errorCodes(response.json)[0], response.status, understood);
    },

    async logout(credential) {
      await call('logout', credential, {});
    },

    // `login` covers `login/session`, which answers nothing a client needs and is billfold's to read.
    isAuthEndpoint: (path) => ['login', 'logout', 'mfa'].includes(firstSegment(path)),
    buffersRequestBody: () => false,

    authorize(relayed, credential) {
      // The relay forwards only allow-listed client headers, so no client devKey or sessionId (in
      // any case) is left to remove; billfold's are set.
      Object.assign(relayed.headers, authHeaders(credential));
      return relayed;
    },

    needsResponseBody: (status) => status === 401 || status === 403,
    judge(status, body) {
      if (status === 401 && errorCodes(body).includes('BDC_1109')) return 'expired';
      if (status === 403 && errorCodes(body).includes('BDC_1361')) return 'untrusted';
      return 'ok';
    },

    afterUse: common.afterUse,
    afterUntrusted(credential) {
      if (!credential.trusted) return undefined;
      const { trustedUntil: _until, ...rest } = credential;
      return { ...rest, trusted: false };
    },
    secretsOf: (credential) => [credential.sessionId, config.devKey],
    personalIdentity: common.personalIdentity,
    identityInOrganization: common.identityInOrganization,

    view(credential) {
      const trusted = credential.trusted === true;
      return {
        ...common.view(credential),
        trusted,
        ...(trusted && {
          trustedUntil: new Date(credential.trustedUntil ?? billIdleExpiresAt(credential)).toISOString(),
        }),
      };
    },

    mfa: {
      async challenge(credential) {
        const response = await call('mfa/challenge', credential, {});
        const parsed = challengeAnswerSchema.safeParse(response.json);
        if (response.status === 200 && parsed.success) return parsed.data.challengeId;
        if (response.status === 200) throw new AppError('upstream_unavailable', { provider });
        throw mfaFailure(
          response,
          new AppError('invalid_request', {
            provider,
            message: 'BILL refused to send an MFA code for this user (is a phone set up?).',
          }),
        );
      },

      async validate(credential, input) {
        const response = await call('mfa/challenge/validate', credential, {
          challengeId: input.challengeId,
          token: input.token,
          device: input.device,
          machineName: input.machineName,
          rememberMe: input.rememberMe,
        });
        const parsed = validateAnswerSchema.safeParse(response.json);
        if (response.status === 200 && parsed.success)
          return { rememberMeId: input.rememberMe ? parsed.data.rememberMeId : undefined };
        if (response.status === 200) throw new AppError('upstream_unavailable', { provider });
        throw mfaFailure(
          response,
          new AppError('invalid_credentials', {
            provider,
            message: 'BILL did not accept the MFA code; request a new one if it has expired.',
          }),
        );
      },
    },
  };
}
