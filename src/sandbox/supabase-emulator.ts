import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { SANDBOX_DEMO_CREDENTIALS } from './sandbox-demo.js';
import {
  bearerToken,
  createEmulator,
  createRouter,
  emptyReply,
  htmlReply,
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

/** The Supabase Auth emulator's control surface. */
export interface SupabaseControl extends EmulatorControl {
  /** The live session ids (the `session_id` claim). */
  sessions(): string[];
  /** Ends one session: its refresh tokens stop working (its access tokens stay valid JWTs until `exp`). */
  expireSession(sessionId: string): void;
  expireAllSessions(): void;
  /** Refresh tokens are single use (default); off, a used one is accepted again and answers with its successor. */
  setSingleUseRefreshTokens(on: boolean): void;
  /** Each refresh holds its session's lock this long (real time) before answering, so refreshes can overlap. */
  setRefreshDelay(ms: number): void;
  /** Sessions whose token family was revoked because an old refresh token came back. */
  revokedSessions(): string[];
}

/** The API version header the newer error body depends on. */
export const SUPABASE_API_VERSION_HEADER = 'x-supabase-api-version';

/** The demo user's Supabase id (the `sub` claim). */
export const SUPABASE_DEMO_USER_ID = '6f1c2a7e-3b5d-4e8f-9a0b-1c2d3e4f5a6b';

const DEFAULT_ACCESS_TOKEN_LIFETIME_MS = 3_600_000;
/** GoTrue's `refresh_token_reuse_interval` default. */
const DEFAULT_REUSE_INTERVAL_MS = 10_000;
/** How long GoTrue retries a refresh whose session another refresh holds, before answering 409. */
const DEFAULT_CONCURRENT_REFRESH_WAIT_MS = 5_000;
const AUDIENCE = 'authenticated';
const CREATED_AT = '2026-01-05T09:00:00Z';
const SCOPES = new Set(['global', 'local', 'others']);

type Handler = (request: RecordedRequest, query: URLSearchParams) => Reply | Promise<Reply>;

/**
 * Supabase Auth (GoTrue) as Billbora's email sign-in uses it: password and refresh-token grants behind
 * the `apikey` gateway check, HS256 access tokens, single-use refresh tokens, `/user` and `/logout`.
 */
export function createSupabaseEmulator(options: {
  clock: Clock;
  /** Shared with the Billbora emulator, which accepts these access tokens at its exchange. */
  jwtSecret: string | Uint8Array;
  anonKey?: string;
  accessTokenLifetimeMs?: number;
  /** A just-rotated refresh token reused within this (the emulator's clock) answers the current pair. */
  refreshTokenReuseIntervalMs?: number;
  /** How long (real time) a refresh waits for a concurrent refresh of its session before a 409. */
  concurrentRefreshWaitMs?: number;
  limits?: EmulatorLimits;
}): Emulator<SupabaseControl> {
  const { clock } = options;
  const key = createHs256Key(options.jwtSecret);
  const verify = createHs256Verifier(key, clock, AUDIENCE);
  const anonKey = options.anonKey ?? SANDBOX_DEMO_CREDENTIALS.supabaseAnonKey;
  const lifetimeSeconds = Math.floor(
    (options.accessTokenLifetimeMs ?? DEFAULT_ACCESS_TOKEN_LIFETIME_MS) / 1000,
  );
  const demo = SANDBOX_DEMO_CREDENTIALS.billbora;
  const user = {
    id: SUPABASE_DEMO_USER_ID,
    aud: AUDIENCE,
    role: 'authenticated',
    email: demo.email,
    email_confirmed_at: CREATED_AT,
    confirmed_at: CREATED_AT,
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: {},
    identities: [],
    created_at: CREATED_AT,
    updated_at: CREATED_AT,
    is_anonymous: false,
  };
  const reuseIntervalMs = options.refreshTokenReuseIntervalMs ?? DEFAULT_REUSE_INTERVAL_MS;
  const concurrentWaitMs = options.concurrentRefreshWaitMs ?? DEFAULT_CONCURRENT_REFRESH_WAIT_MS;
  // `active` is the session's newest refresh token; `busy` while a refresh of it is in progress.
  const sessions = new Map<string, { refreshTokens: string[]; active?: string; busy?: boolean }>();
  // A used refresh token remembers its successor and when it was rotated, so a reuse is recognised.
  const refreshTokens = new Map<string, { sessionId: string; successor?: string; rotatedAt?: number }>();
  const revoked: string[] = [];
  let singleUse = true;
  let refreshDelayMs = 0;

  // The newer `{code, message}` body only for clients that declare an API version, as GoTrue does.
  const failure = (request: RecordedRequest, status: number, code: string, message: string) =>
    jsonReply(
      status,
      request.headers[SUPABASE_API_VERSION_HEADER] !== undefined
        ? { code, message }
        : { code: status, error_code: code, msg: message },
    );

  const endSession = (sessionId: string) => {
    for (const token of sessions.get(sessionId)?.refreshTokens ?? []) refreshTokens.delete(token);
    sessions.delete(sessionId);
  };

  const issue = async (sessionId: string, refreshToken: string) => {
    const iat = epochSeconds(clock);
    const exp = iat + lifetimeSeconds;
    const claims = {
      sub: user.id,
      email: user.email,
      aud: AUDIENCE,
      role: user.role,
      session_id: sessionId,
      iat,
      exp,
    };
    return jsonReply(200, {
      access_token: await signHs256(claims, key),
      token_type: 'bearer',
      expires_in: lifetimeSeconds,
      expires_at: exp,
      refresh_token: refreshToken,
      user,
    });
  };

  const addRefreshToken = (sessionId: string) => {
    const token = randomToken(9);
    refreshTokens.set(token, { sessionId });
    const session = sessions.get(sessionId);
    session?.refreshTokens.push(token);
    if (session) session.active = token;
    return token;
  };

  const passwordGrant = (request: RecordedRequest, body: Record<string, unknown>) => {
    if (typeof body.email !== 'string' || typeof body.password !== 'string') {
      return failure(request, 400, 'validation_failed', 'An email address and a password are required.');
    }
    if (body.email.toLowerCase() !== demo.email || body.password !== demo.password) {
      return failure(request, 400, 'invalid_credentials', 'Invalid login credentials');
    }
    const sessionId = randomUUID();
    sessions.set(sessionId, { refreshTokens: [] });
    return issue(sessionId, addRefreshToken(sessionId));
  };

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  // GoTrue serialises refreshes of one session: it retries for a while, then answers 409.
  const refreshGrant = async (request: RecordedRequest, body: Record<string, unknown>) => {
    if (typeof body.refresh_token !== 'string' || body.refresh_token === '') {
      return failure(request, 400, 'validation_failed', 'A refresh_token is required.');
    }
    const notFound = () =>
      failure(request, 400, 'refresh_token_not_found', 'Invalid Refresh Token: Refresh Token Not Found');
    const first = refreshTokens.get(body.refresh_token);
    const session = first && sessions.get(first.sessionId);
    if (!first || !session) return notFound();
    const waitUntil = Date.now() + concurrentWaitMs;
    while (session.busy) {
      if (Date.now() >= waitUntil) {
        return failure(
          request,
          409,
          'conflict',
          'Too many concurrent token refresh requests on the same session or refresh token',
        );
      }
      await sleep(10);
    }
    session.busy = true;
    try {
      if (refreshDelayMs > 0) await sleep(refreshDelayMs);
      const record = refreshTokens.get(body.refresh_token);
      if (!record || !sessions.has(record.sessionId)) return notFound();
      if (record.successor !== undefined) {
        if (!singleUse) return await issue(record.sessionId, record.successor);
        // The token just rotated, back within the reuse interval: a client that lost the answer gets the current pair.
        const justRotated = record.successor === session.active;
        if (justRotated && clock.now() - (record.rotatedAt ?? 0) <= reuseIntervalMs) {
          return await issue(record.sessionId, record.successor);
        }
        // An older token, or too late: treated as stolen, the whole family goes.
        endSession(record.sessionId);
        revoked.push(record.sessionId);
        return failure(request, 400, 'refresh_token_already_used', 'Invalid Refresh Token: Already Used');
      }
      record.successor = addRefreshToken(record.sessionId);
      record.rotatedAt = clock.now();
      return await issue(record.sessionId, record.successor);
    } finally {
      session.busy = false;
    }
  };

  // The caller's session from its access token, or the refusal GoTrue gives.
  const authenticate = async (request: RecordedRequest) => {
    const token = bearerToken(request.headers);
    if (!token) {
      return { refusal: failure(request, 401, 'no_authorization', 'This endpoint requires a Bearer token') };
    }
    const check = await verify(token);
    if (check.state !== 'valid') {
      return {
        refusal: failure(
          request,
          403,
          'bad_jwt',
          'invalid JWT: unable to parse or verify signature, token is expired',
        ),
      };
    }
    return { sessionId: String(check.claims.session_id) };
  };

  const route = createRouter<Handler>({
    'POST /auth/v1/token': (request, query) => {
      const body = parseJsonObject(request.body);
      if (!body) return failure(request, 400, 'bad_json', 'Could not parse request body as JSON');
      const grant = query.get('grant_type');
      if (grant === 'password') return passwordGrant(request, body);
      if (grant === 'refresh_token') return refreshGrant(request, body);
      return failure(request, 400, 'unsupported_grant_type', 'Unsupported grant type');
    },
    'GET /auth/v1/user': async (request) => {
      const caller = await authenticate(request);
      if ('refusal' in caller) return caller.refusal;
      if (!sessions.has(caller.sessionId)) {
        return failure(
          request,
          403,
          'session_not_found',
          'Session from session_id claim in JWT does not exist',
        );
      }
      return jsonReply(200, user);
    },
    'POST /auth/v1/logout': async (request, query) => {
      const scope = query.get('scope') ?? 'global';
      if (!SCOPES.has(scope)) return failure(request, 400, 'validation_failed', 'Unsupported logout scope');
      const caller = await authenticate(request);
      if ('refusal' in caller) return caller.refusal;
      // Every session here is the demo user's, so "global" ends them all and "others" all but this one.
      for (const sessionId of [...sessions.keys()]) {
        if (scope === 'global' || (scope === 'local') === (sessionId === caller.sessionId))
          endSession(sessionId);
      }
      return emptyReply(204);
    },
    'GET /auth/v1/sandbox/html': () => htmlReply('Supabase'),
    'GET /auth/v1/sandbox/cookie': () => withUpstreamAuthHeaders(jsonReply(200, {}), 'Bearer'),
  });

  const answer = (request: RecordedRequest, query: URLSearchParams) => {
    // The API gateway checks the key before Auth sees the request.
    const apikey = request.headers.apikey;
    if (apikey === undefined) {
      return jsonReply(401, {
        message: 'No API key found in request',
        hint: 'No `apikey` request header or url param was found.',
      });
    }
    if (apikey !== anonKey) return jsonReply(401, { message: 'Invalid API key' });
    const match = route(request.method, request.path);
    return match ? match.handler(request, query) : failure(request, 404, 'not_found', 'Not found');
  };

  return createEmulator({
    clock,
    limits: options.limits,
    async route(request, query) {
      const reply = await answer(request, query);
      const version = request.headers[SUPABASE_API_VERSION_HEADER];
      // Echoing the version is what makes @supabase/auth-js read the newer error body's `code`.
      return typeof version === 'string'
        ? { ...reply, headers: { ...reply.headers, [SUPABASE_API_VERSION_HEADER]: version } }
        : reply;
    },
    control: {
      sessions: () => [...sessions.keys()],
      expireSession: endSession,
      expireAllSessions() {
        sessions.clear();
        refreshTokens.clear();
      },
      setSingleUseRefreshTokens(on: boolean) {
        singleUse = on;
      },
      setRefreshDelay(ms: number) {
        refreshDelayMs = ms;
      },
      revokedSessions: () => [...revoked],
    },
    resetSwitches() {
      singleUse = true;
      refreshDelayMs = 0;
      revoked.length = 0;
    },
  });
}
