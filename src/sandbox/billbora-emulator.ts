import type { Clock } from '../clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from './sandbox-demo.js';
import {
  bearerToken,
  createEmulator,
  createRouter,
  htmlReply,
  isoSeconds,
  jsonReply,
  parseJsonObject,
  randomToken,
  withUpstreamAuthHeaders,
  type Emulator,
  type EmulatorControl,
  type EmulatorLimits,
  type RecordedRequest,
  type Reply,
} from './sandbox-http.js';
import { createHs256Key, createHs256Verifier, epochSeconds, signHs256 } from './sandbox-jwt.js';

/** The Billbora emulator's control surface. */
export interface BillboraControl extends EmulatorControl {
  /** The live token families (one per exchange; the `sid` claim). */
  sessions(): string[];
  /** Revokes one token family: its access and refresh tokens get 401 `invalid_token`. */
  expireSession(familyId: string): void;
  expireAllSessions(): void;
  /** Expires the access tokens issued so far (of one family, or all): 401 `token_expired`; refresh still works. */
  expireAccessTokens(familyId?: string): void;
  /** The lifetime of access tokens issued from now on (default one hour). */
  setAccessTokenLifetime(ms: number): void;
  /** How many calls reached `POST /users/auth/refresh/`. */
  refreshCalls(): number;
  /** The families revoked because a used refresh token was presented again. */
  revokedFamilies(): string[];
  /** While on, the demo API key is refused with 401 `invalid_token`. */
  setApiKeyRevoked(on: boolean): void;
}

const DEFAULT_ACCESS_TOKEN_LIFETIME_MS = 3_600_000;
const SUPABASE_AUDIENCE = 'authenticated';
const DEMO_USER = { id: 'u1', email: SANDBOX_DEMO_CREDENTIALS.billbora.email };

interface Family {
  readonly id: string;
  readonly userId: string;
  readonly orgId: string;
  revoked: boolean;
  /** Access tokens up to this sequence number count as expired since `expiredAt`. */
  expired?: { seq: number; at: number };
}

interface Caller {
  userId: string;
  orgId: string;
  kind: 'jwt' | 'apiKey';
}

interface Invoice {
  id: string;
  number: string;
  customer_name: string;
  amount: string;
  currency: string;
  status: string;
  issued_at: string;
}

type Refusal = { refusal: Reply };
type AuthHandler = (request: RecordedRequest) => Reply | Promise<Reply>;
type ApiHandler = (request: RecordedRequest, caller: Caller) => Reply;

/**
 * Billbora API v1: an API key as Bearer token, or a Supabase access token exchanged for compact HS256
 * access JWTs and opaque refresh tokens that rotate, are single use, and revoke their family on reuse.
 */
export function createBillboraEmulator(options: {
  clock: Clock;
  /** The Supabase emulator's signing secret: only its unexpired access tokens pass the exchange. */
  supabaseJwtSecret: string | Uint8Array;
  /** Billbora's own signing secret (random when not given). */
  jwtSecret?: string | Uint8Array;
  accessTokenLifetimeMs?: number;
  limits?: EmulatorLimits;
}): Emulator<BillboraControl> {
  const { clock } = options;
  const verifySupabaseToken = createHs256Verifier(
    createHs256Key(options.supabaseJwtSecret),
    clock,
    SUPABASE_AUDIENCE,
  );
  const key = createHs256Key(options.jwtSecret ?? randomToken(32));
  const verify = createHs256Verifier(key, clock);
  const defaultLifetime = options.accessTokenLifetimeMs ?? DEFAULT_ACCESS_TOKEN_LIFETIME_MS;
  const organizations = new Map<string, string>(
    SANDBOX_DEMO_CREDENTIALS.billboraOrganizations.map((org) => [org.id, org.name]),
  );
  const memberships: readonly string[] = [...organizations.keys()];
  const invoices = new Map<string, Invoice[]>([
    [
      'org_demo',
      [
        invoice('inv_1', 'INV-2026-001', 'Acme AB', '1250.00', 'sent'),
        invoice('inv_2', 'INV-2026-002', 'Globex Ltd', '310.50', 'paid'),
      ],
    ],
    ['org_other', [invoice('inv_3', 'OTH-2026-001', 'Initech', '99.00', 'draft')]],
  ]);
  const families = new Map<string, Family>();
  const refreshTokens = new Map<string, { familyId: string; used: boolean }>();
  const revokedOnReuse: string[] = [];
  let lifetimeMs = defaultLifetime;
  let nextFamily = 0;
  let nextToken = 0;
  let nextRequest = 0;
  let nextInvoice = 4;
  let refreshCount = 0;
  let apiKeyRevoked = false;
  let allExpired: { seq: number; at: number } | undefined;

  const failure = (status: number, code: string, message: string, details: Record<string, unknown> = {}) =>
    jsonReply(status, {
      error: { code, message, details },
      meta: { request_id: `req_${(++nextRequest).toString(36)}`, timestamp: isoSeconds(clock.now()) },
    });
  const invalidToken = (message = 'The token is invalid or has been revoked.') =>
    failure(401, 'invalid_token', message);
  const validation = (field: string, message: string) =>
    failure(400, 'validation_error', 'The request is invalid.', { [field]: [message] });

  // Short claims and ids on purpose: billfold stores these tokens within a 2 KiB session budget.
  const issueAccess = (family: Family) => {
    const iat = epochSeconds(clock);
    const claims = {
      sub: family.userId,
      org: family.orgId,
      sid: family.id,
      jti: (++nextToken).toString(36),
      iat,
      exp: iat + Math.max(1, Math.round(lifetimeMs / 1000)),
    };
    return signHs256(claims, key, { compact: true });
  };

  const issueRefresh = (family: Family) => {
    const token = randomToken(12);
    refreshTokens.set(token, { familyId: family.id, used: false });
    return token;
  };

  const exchange = async (request: RecordedRequest) => {
    const body = parseJsonObject(request.body);
    if (typeof body?.supabase_token !== 'string' || body.supabase_token === '') {
      return validation('supabase_token', 'This field is required.');
    }
    const wanted = body.organization_id;
    if (wanted !== undefined && typeof wanted !== 'string') {
      return validation('organization_id', 'Must be a string.');
    }
    const check = await verifySupabaseToken(body.supabase_token);
    if (check.state !== 'valid' || check.claims.email !== DEMO_USER.email) {
      return invalidToken('The Supabase token is invalid or expired.');
    }
    const orgId = wanted ?? memberships[0] ?? '';
    if (!memberships.includes(orgId)) {
      return failure(403, 'organization_access_denied', 'You do not have access to this organization.', {
        organization_id: orgId,
      });
    }
    const family: Family = {
      id: `f${(++nextFamily).toString(36)}`,
      userId: DEMO_USER.id,
      orgId,
      revoked: false,
    };
    families.set(family.id, family);
    return jsonReply(200, {
      access: await issueAccess(family),
      refresh: issueRefresh(family),
      organization: { id: orgId, name: organizations.get(orgId) ?? orgId },
    });
  };

  const refresh = async (request: RecordedRequest) => {
    refreshCount += 1;
    const presented = parseJsonObject(request.body)?.refresh;
    if (typeof presented !== 'string' || presented === '')
      return validation('refresh', 'This field is required.');
    const record = refreshTokens.get(presented);
    const family = record && families.get(record.familyId);
    if (!record || !family || family.revoked) return invalidToken();
    if (record.used) {
      // A refresh token that comes back was stolen or raced: the whole family goes (the strict reading).
      family.revoked = true;
      revokedOnReuse.push(family.id);
      return invalidToken('The refresh token was already used; the session is revoked.');
    }
    record.used = true;
    return jsonReply(200, { access: await issueAccess(family), refresh: issueRefresh(family) });
  };

  const authenticate = async (request: RecordedRequest): Promise<Caller | Refusal> => {
    const token = bearerToken(request.headers);
    if (!token)
      return { refusal: failure(401, 'missing_token', 'Authentication credentials were not provided.') };
    if (token.startsWith('bb_')) {
      return token === SANDBOX_DEMO_CREDENTIALS.billboraApiKey && !apiKeyRevoked
        ? { userId: DEMO_USER.id, orgId: 'org_demo', kind: 'apiKey' }
        : { refusal: invalidToken('The API key is invalid or revoked.') };
    }
    const check = await verify(token);
    const family = check.state === 'invalid' ? undefined : families.get(String(check.claims.sid));
    if (check.state === 'invalid' || !family || family.revoked) return { refusal: invalidToken() };
    const seq = parseInt(String(check.claims.jti), 36);
    const forced = [family.expired, allExpired].find((cutoff) => cutoff && seq <= cutoff.seq);
    const expiredAt = check.state === 'expired' ? check.expiredAt : forced?.at;
    if (expiredAt !== undefined) {
      return {
        refusal: failure(401, 'token_expired', 'The provided token has expired', {
          expired_at: isoSeconds(expiredAt),
        }),
      };
    }
    return { userId: family.userId, orgId: family.orgId, kind: 'jwt' };
  };

  const createInvoice = (request: RecordedRequest, caller: Caller) => {
    const body = parseJsonObject(request.body);
    if (typeof body?.customer_name !== 'string' || body.customer_name === '') {
      return validation('customer_name', 'This field is required.');
    }
    const amount = Number(body.amount);
    if (!(typeof body.amount === 'number' || typeof body.amount === 'string') || !(amount > 0)) {
      return validation('amount', 'A positive amount is required.');
    }
    const id = `inv_${nextInvoice++}`;
    const created = invoice(id, `SBX-${id}`, body.customer_name, amount.toFixed(2), 'draft');
    invoicesOf(caller.orgId).push(created);
    return jsonReply(201, created);
  };

  const invoicesOf = (orgId: string) => {
    let list = invoices.get(orgId);
    if (!list) invoices.set(orgId, (list = []));
    return list;
  };

  const authRoutes = createRouter<AuthHandler>({
    'POST /users/auth/exchange/': exchange,
    'POST /users/auth/refresh/': refresh,
  });
  const apiRoutes = createRouter<ApiHandler>({
    'GET /users/me/organizations/': (_request, caller) => {
      if (caller.kind === 'apiKey') {
        return failure(
          403,
          'insufficient_permissions',
          'An API key belongs to one organization, not to a user.',
        );
      }
      const results = memberships.map((id) => ({
        id,
        name: organizations.get(id),
        role: id === 'org_demo' ? 'owner' : 'member',
        is_current: id === caller.orgId,
      }));
      return jsonReply(200, { count: results.length, results });
    },
    'GET /invoices/': (_request, caller) => {
      const results = invoicesOf(caller.orgId);
      return jsonReply(200, { count: results.length, next: null, previous: null, results });
    },
    'POST /invoices/': createInvoice,
    'GET /sandbox/html/': () => htmlReply('Billbora'),
    'GET /sandbox/cookie/': () => withUpstreamAuthHeaders(jsonReply(200, {}), 'Bearer'),
  });

  const cutoff = () => ({ seq: nextToken, at: clock.now() });

  return createEmulator({
    clock,
    limits: options.limits,
    async route(request) {
      const auth = authRoutes(request.method, request.path);
      if (auth) return auth.handler(request);
      const api = apiRoutes(request.method, request.path);
      if (!api) return failure(404, 'not_found', 'Not found.');
      const caller = await authenticate(request);
      return 'refusal' in caller ? caller.refusal : api.handler(request, caller);
    },
    control: {
      sessions: () => [...families.values()].filter((family) => !family.revoked).map((family) => family.id),
      expireSession(familyId: string) {
        const family = families.get(familyId);
        if (family) family.revoked = true;
      },
      expireAllSessions() {
        for (const family of families.values()) family.revoked = true;
      },
      expireAccessTokens(familyId?: string) {
        if (familyId === undefined) allExpired = cutoff();
        else {
          const family = families.get(familyId);
          if (family) family.expired = cutoff();
        }
      },
      setAccessTokenLifetime(ms: number) {
        lifetimeMs = ms;
      },
      refreshCalls: () => refreshCount,
      revokedFamilies: () => [...revokedOnReuse],
      setApiKeyRevoked(on: boolean) {
        apiKeyRevoked = on;
      },
    },
    resetSwitches() {
      lifetimeMs = defaultLifetime;
      refreshCount = 0;
      revokedOnReuse.length = 0;
      apiKeyRevoked = false;
    },
  });
}

function invoice(id: string, number: string, customerName: string, amount: string, status: string): Invoice {
  return {
    id,
    number,
    customer_name: customerName,
    amount,
    currency: 'EUR',
    status,
    issued_at: '2026-11-01',
  };
}
