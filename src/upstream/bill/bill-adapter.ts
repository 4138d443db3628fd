import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import type { SessionRecord } from '../../session/session-record.js';
import { canonicalEmail } from '../identity-names.js';
import { loginFailure } from '../login-failure.js';
import { firstSegment, upstreamUrl, type ProviderAdapter, type RelayCall } from '../provider-adapter.js';
import { readNameAsUpstream } from '../relay-policy.js';
import type { AdapterDeps } from '../provider-module.js';
import type { ProviderSettings } from '../provider-settings.js';

/** Which of BILL's APIs billfold speaks: v2 (form posts, long-term support) or v3 (JSON, MFA step-up). */
export type BillApiVersion = 'v2' | 'v3';

/** BILL's slice of the configuration. */
export interface BillSettings extends ProviderSettings {
  /** `BILL_DEV_KEY`: sent by billfold on every call, never by a client. */
  readonly devKey: string;
  readonly apiVersion: BillApiVersion;
  /** BILL logins per hour billfold makes with its developer key (BILL refuses past 200). */
  readonly loginsPerHour: number;
  /** The share of that budget one client address may spend per hour. */
  readonly loginsPerHourPerIp: number;
}

/**
 * BILL: its sessionId, and when billfold last used it (BILL ends sessions after 35 idle minutes, a
 * sync-token session after 48 hours).
 */
export type BillCredential = {
  sessionId: string;
  /** The userName, or the sync token's name. */
  user: string;
  orgId: string;
  /** The personal upstream identity: the email within its organization (none for a sync token). */
  identity?: string;
  connectedAt: number;
  lastUsedAt: number;
  /** How it signed in; absent means a password. */
  mode?: 'password' | 'sync-token';
  /** v3: BILL trusts the session for MFA-protected operations, until `trustedUntil` at the latest. */
  trusted?: boolean;
  trustedUntil?: number;
};

/**
 * A device BILL's MFA step-up trusts: the `rememberMeId` BILL issued for it (a secret) and the device
 * name it was issued to. Kept in the session across BILL sign-ins, so a later one is trusted at once.
 */
export type BillTrustedDevice = {
  rememberMeId: string;
  device: string;
  /** The BILL user and organization it was issued for; it is offered to their sign-ins only. */
  user: string;
  orgId: string;
  /** When BILL stops honouring the rememberMeId. */
  until: number;
};

/** The trusted device a session keeps for BILL. Only the MFA step-up writes it, in this shape. */
export function billTrustedDevice(record: SessionRecord | undefined): BillTrustedDevice | undefined {
  return record?.trustedDevices?.bill as BillTrustedDevice | undefined;
}

/** BILL ends a session after 35 minutes without a call. */
export const BILL_IDLE_TIMEOUT_MS = 35 * 60_000;
/** A session from a sync token lasts 48 hours without a call. */
export const BILL_SYNC_TOKEN_IDLE_TIMEOUT_MS = 48 * 3_600_000;
// How stale the recorded last use may get before it is written again (a write per call would cost a store round trip).
const LAST_USE_RESOLUTION_MS = 60_000;

const FORM = 'application/x-www-form-urlencoded';

/**
 * The client-facing BILL login, the same on both API versions: `{userName, password, orgId}`, or a
 * sync token's `{tokenName, tokenValue, orgId}`. One object schema (not a union), so a refusal names
 * the fields that are wrong or missing.
 */
export const billLoginSchema = z
  .strictObject({
    userName: z.string().min(1).max(256).optional(),
    password: z.string().min(1).max(1024).optional(),
    tokenName: z.string().min(1).max(256).optional(),
    tokenValue: z.string().min(1).max(1024).optional(),
    orgId: z.string().min(1).max(64),
  })
  .superRefine((body, context) => {
    const byToken = body.tokenName !== undefined || body.tokenValue !== undefined;
    const byPassword = body.userName !== undefined || body.password !== undefined;
    const fields =
      byToken && !byPassword ? (['tokenName', 'tokenValue'] as const) : (['userName', 'password'] as const);
    for (const name of fields) {
      if (body[name] === undefined) context.addIssue({ code: 'custom', path: [name], message: 'required' });
    }
    if (byToken && byPassword)
      context.addIssue({
        code: 'custom',
        path: ['tokenName'],
        message: 'a password or a sync token, not both',
      });
  })
  .meta({ description: 'userName and password, or a sync token’s tokenName and tokenValue; orgId always.' });

/** A login as BILL takes it: a sync token signs in with its name as the user name and its value as the password. */
export interface BillLogin {
  userName: string;
  password: string;
  orgId: string;
  mode: 'password' | 'sync-token';
}

/** Reads a login body (already validated by the route) into BILL's fields. */
export function toBillLogin(input: unknown): BillLogin {
  const { userName, password, tokenName, tokenValue, orgId } = billLoginSchema.parse(input);
  return tokenName !== undefined && tokenValue !== undefined
    ? { userName: tokenName, password: tokenValue, orgId, mode: 'sync-token' }
    : { userName: userName ?? '', password: password ?? '', orgId, mode: 'password' };
}

/**
 * A BILL user as one person: an email address (trimmed, NFC, lower-cased) within one organization;
 * the same address elsewhere is another user.
 */
export function billPersonalIdentity({ user, orgId }: { user: string; orgId?: string }): string | undefined {
  return orgId === undefined || orgId.trim() === '' ? undefined : `${orgId.trim()}\n${canonicalEmail(user)}`;
}

/** What billfold stores for a new BILL session. A sync token is an integration's, not a person's: it has no identity. */
export function newBillCredential(sessionId: string, login: BillLogin, now: number): BillCredential {
  const identity =
    login.mode === 'password'
      ? billPersonalIdentity({ user: login.userName, orgId: login.orgId })
      : undefined;
  return {
    sessionId,
    user: login.userName,
    orgId: login.orgId,
    ...(identity !== undefined && { identity }),
    connectedAt: now,
    lastUsedAt: now,
    mode: login.mode,
  };
}

/** The error for a BILL login refused with `code` (either version's machine code). */
export function billLoginRefusal(code: string | undefined, status: number, understood: boolean): AppError {
  const provider = 'bill';
  switch (code) {
    case 'BDC_1144':
      return new AppError('rate_limited', { provider, retryAfter: 60 });
    case 'BDC_1102':
      // A rejected devKey is the operator's configuration, not the user's password.
      return new AppError('upstream_unavailable', {
        provider,
        message: 'The provider refused billfold’s developer key.',
      });
    case undefined:
    default:
      return loginFailure(provider, status, understood);
  }
}

/** When BILL will end the session if billfold makes no call before then. */
export function billIdleExpiresAt(credential: BillCredential): number {
  const idle = credential.mode === 'sync-token' ? BILL_SYNC_TOKEN_IDLE_TIMEOUT_MS : BILL_IDLE_TIMEOUT_MS;
  return credential.lastUsedAt + idle;
}

/** The parts of the BILL adapter both API versions share: the use bookkeeping and the session view. */
export function billCommon(apiVersion: BillApiVersion) {
  return {
    personalIdentity: billPersonalIdentity,
    identityInOrganization: true,
    afterUse: (credential: BillCredential, now: number) =>
      now - credential.lastUsedAt >= LAST_USE_RESOLUTION_MS ? { ...credential, lastUsedAt: now } : undefined,
    view: (credential: BillCredential) => ({
      connected: true as const,
      apiVersion,
      mode: credential.mode ?? 'password',
      user: credential.user,
      orgId: credential.orgId,
      connectedAt: new Date(credential.connectedAt).toISOString(),
      upstreamIdleExpiresAt: new Date(billIdleExpiresAt(credential)).toISOString(),
    }),
  };
}

/** BILL's MFA step-up (v3): ask BILL to send a code, then validate it. */
export interface BillMfa {
  /** Asks BILL to send the user a code; answers the challenge's id. */
  challenge(credential: BillCredential): Promise<string>;
  /** Validates the code; with `rememberMe`, BILL's rememberMeId for `device` (when BILL issued one). */
  validate(
    credential: BillCredential,
    input: { challengeId: string; token: string; rememberMe: boolean; device: string; machineName: string },
  ): Promise<{ rememberMeId: string | undefined }>;
}

/** What either version's factory is handed: BILL's config slice (with the devKey), the HTTP client, the clock. */
export type BillAdapterDeps = AdapterDeps<BillSettings>;

/** BILL's adapter on either API version; the MFA step-up exists on v3 only. */
export interface BillAdapter extends ProviderAdapter<BillCredential> {
  readonly apiVersion: BillApiVersion;
  readonly mfa: BillMfa | undefined;
}

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
export function createBillAdapter(deps: BillAdapterDeps): BillAdapter {
  const { config, client, clock } = deps;
  const provider = 'bill';
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  return {
    id: provider,
    apiVersion: 'v2',
    mfa: undefined,
    loginSchema: billLoginSchema,

    async login(input) {
      const login = toBillLogin(input);
      const { userName, password, orgId } = login;
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
        return newBillCredential(data.sessionId, login, clock.now());
      }
      throw billLoginRefusal(
        billErrorCode(response.json),
        response.status === 200 ? 401 : response.status,
        parsed.success,
      );
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

    // Every v2 call is a form POST; anything else would reach BILL without billfold's devKey and
    // sessionId, or with a client's in a body billfold does not read.
    checkRequest(method, contentType, hasBody) {
      if (method !== 'POST') {
        throw new AppError('method_not_allowed', {
          provider,
          message: 'BILL API v2 is called with POST only.',
        });
      }
      if (hasBody && !isUtf8FormType(contentType)) {
        throw new AppError('unsupported_media_type', {
          provider,
          message: 'A BILL API v2 body is application/x-www-form-urlencoded, in UTF-8.',
        });
      }
    },

    authorize(call: RelayCall, credential: BillCredential) {
      const body = call.body ?? Buffer.alloc(0);
      // Reading and writing a form costs about a microsecond a field, all of it on the event loop.
      if (hasMoreFields(body, MAX_FORM_FIELDS)) {
        throw new AppError('payload_too_large', {
          provider,
          message: `A BILL form holds at most ${MAX_FORM_FIELDS} fields.`,
        });
      }
      // The form is read and written again to set billfold's fields; a field that is not UTF-8, or
      // holds a stray `%`, could come out of that changed, so it is refused instead.
      if (!isWellFormedForm(body)) {
        throw new AppError('invalid_request', {
          provider,
          message: "A BILL form body must be UTF-8, its escapes too, and each '%' must start one.",
        });
      }
      // Client-sent credentials are removed, however spelled, by copying the rest (a delete walks the
      // whole list each time); billfold's are set. The leading `&` keeps a leading `?`, which
      // URLSearchParams would drop.
      const fields = new URLSearchParams();
      for (const [name, value] of new URLSearchParams(`&${body.toString('utf8')}`)) {
        if (!isCredentialField(name)) fields.append(name, value);
      }
      fields.append('devKey', config.devKey);
      fields.append('sessionId', credential.sessionId);
      call.headers['content-type'] = FORM;
      call.body = Buffer.from(fields.toString());
      return call;
    },

    needsResponseBody: () => true,
    // BILL answers an expired session with BDC_1109 inside HTTP 200.
    judge: (_status, body) => (billErrorCode(body) === 'BDC_1109' ? 'expired' : 'ok'),

    secretsOf: (credential) => [credential.sessionId, config.devKey],
    ...billCommon('v2'),
  };
}

/** The most fields a relayed BILL form may hold (BILL's own calls send three): body-parser's default. */
export const MAX_FORM_FIELDS = 1000;

/** Whether a form holds more than `limit` fields (`&`-separated, empty ones counted). */
function hasMoreFields(body: Buffer, limit: number): boolean {
  let fields = 1;
  for (let at = body.indexOf(0x26); at !== -1; at = body.indexOf(0x26, at + 1)) {
    if (++fields > limit) return true;
  }
  return false;
}

/** Whether a Content-Type is the form type, its charset (if it names one) UTF-8. */
function isUtf8FormType(type: string | undefined): boolean {
  const [essence = '', ...parameters] = (type ?? '').split(';');
  if (essence.trim().toLowerCase() !== FORM) return false;
  return parameters.every((parameter) => {
    const [name = '', value = ''] = parameter.split('=').map((part) => part.trim().toLowerCase());
    return name !== 'charset' || ['utf-8', 'utf8'].includes(value.replace(/^"(.*)"$/, '$1'));
  });
}

const ASCII_WITHOUT_ESCAPES = /^[ -$&-~]*$/;

/**
 * Whether a form field is a devKey or sessionId as some server could read its name: decoded again,
 * NFKC, look-alike letters folded, any case, anything but letters and digits ignored (`\tdevKey`,
 * `dev\u200bKey`, `ｄｅｖＫｅｙ`, `session_id`), and an array's brackets too (`devKey[]`). A longer
 * name (`devKeys`, `sessionIdentifier`) is another field.
 */
function isCredentialField(name: string): boolean {
  // A name of printable ASCII without `%` reads as itself in any case: decoding, NFKC and the
  // folding change none of it.
  const read = ASCII_WITHOUT_ESCAPES.test(name) ? name.toLowerCase() : readNameAsUpstream(name);
  const [letters = ''] = read.split('[', 1);
  return ['devkey', 'sessionid'].includes(letters.replace(/[^a-z0-9]/g, ''));
}

/**
 * Whether a form body is UTF-8 with every `%` starting an escape, its escapes UTF-8 too: what
 * `URLSearchParams` reads without changing a field. (Node's reads `%41✓%zz` as `A\u0013%zz`.)
 */
function isWellFormedForm(body: Buffer): boolean {
  if (!isUtf8(body)) return false;
  try {
    decodeURIComponent(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}
