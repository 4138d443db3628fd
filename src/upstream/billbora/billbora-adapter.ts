import { decodeJwt } from 'jose';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { loginFailure } from '../login-failure.js';
import { upstreamUrl, type ProviderAdapter, type RenewalContext } from '../provider-adapter.js';
import type { AdapterDeps } from '../provider-module.js';
import type { ProviderSettings } from '../provider-settings.js';
import type { UpstreamJsonResponse } from '../upstream-client.js';

/** Billbora's slice of the configuration: Supabase, for email and password sign-in. */
export interface BillboraSettings extends ProviderSettings {
  readonly supabase: { readonly url: URL; readonly anonKey: string } | undefined;
}

/** Billbora signed in through Supabase: rotating JWTs bound to one organization. */
export type BillboraJwtCredential = {
  mode: 'jwt';
  access: string;
  refresh: string;
  accessExpiresAt: number;
  /** Present when billfold signed in to Supabase itself (email and password). */
  supabaseRefresh?: string;
  /**
   * Set once `refresh` was refused, or presented without an answer (so possibly spent): it is never
   * presented again, and the next renewal starts from the Supabase session.
   */
  refreshSpent?: true;
  organization: { id: string; name: string };
  user: string;
  /** The Supabase user id (`sub`): the identity indexes use it, and an organization switch must match it. */
  identity?: string;
  connectedAt: number;
};

/** Billbora with an organization API key: shared, so it names no person. */
export type BillboraApiKeyCredential = {
  mode: 'apiKey';
  apiKey: string;
  connectedAt: number;
};

/** What billfold stores for Billbora. */
export type BillboraCredential = BillboraJwtCredential | BillboraApiKeyCredential;

/**
 * Whether a failed call may still have reached the upstream and been acted on: anything but a
 * connection that was never made.
 */
function mayHaveArrived(error: unknown): boolean {
  if (!(error instanceof AppError)) return true;
  if (error.code === 'upstream_timeout') return true;
  // An answer that arrived and was refused (a redirect) carries no cause: the token was not taken.
  const cause = error.cause as { code?: unknown } | undefined;
  if (error.code !== 'upstream_unavailable' || cause === undefined) return false;
  return (
    cause.code !== 'ECONNREFUSED' && cause.code !== 'UND_ERR_CONNECT_TIMEOUT' && cause.code !== 'ENOTFOUND'
  );
}

/** Renew this long before the access token expires, so a relayed call rarely meets an expired one. */
export const BILLBORA_RENEW_BEFORE_MS = 60_000;

const organizationId = z.string().min(1).max(128);
// The key travels in an Authorization header: anything but visible ASCII could not be sent (undici
// refuses it), so it is the client's invalid input, not an upstream failure.
const apiKey = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[\x21-\x7e]+$/);
/** The client's Billbora login body: email and password, a Supabase token, or an API key. */
export const billboraLoginSchema = z.union([
  z.strictObject({
    email: z.email().max(320),
    password: z.string().min(1).max(1024),
    organizationId: organizationId.optional(),
  }),
  z.strictObject({ supabaseToken: z.string().min(1).max(8192), organizationId: organizationId.optional() }),
  z.strictObject({ apiKey }),
]);

/** The body of `POST /auth/billbora/organization`. */
export const organizationSwitchSchema = z.strictObject({
  organizationId,
  supabaseToken: z.string().min(1).max(8192).optional(),
});

const supabaseSessionSchema = z.object({ access_token: z.string().min(1), refresh_token: z.string().min(1) });
const exchangeSchema = z.object({
  access: z.string().min(1),
  refresh: z.string().min(1),
  organization: z.object({ id: z.string(), name: z.string() }),
});
const refreshSchema = z.object({ access: z.string().min(1), refresh: z.string().min(1) });

/** Billbora's adapter, plus the organization switch only Billbora has. */
export interface BillboraAdapter extends ProviderAdapter<BillboraCredential> {
  /** Exchanges a Supabase token (given, or obtained with the stored Supabase refresh token) for another organization. */
  switchOrganization(
    credential: BillboraCredential,
    organizationId: string,
    supabaseToken: string | undefined,
    context: RenewalContext,
  ): Promise<BillboraJwtCredential>;
}

/**
 * Billbora API v1: an organization API key as a Bearer token, or Supabase sign-in exchanged for
 * rotating JWTs. Refresh tokens are single use, so renewal goes through the single-flight renewer.
 */
export function createBillboraAdapter(deps: AdapterDeps<BillboraSettings>): BillboraAdapter {
  const { config, client, clock } = deps;
  const provider = 'billbora';

  const postJson = (url: URL, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    client.sendJson(provider, {
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
    });

  const errorCode = (response: UpstreamJsonResponse) => {
    const body = response.json as { error?: { code?: unknown }; code?: unknown; error_code?: unknown } | null;
    const code = body?.error?.code ?? body?.code ?? body?.error_code;
    return typeof code === 'string' ? code : undefined;
  };

  const expiryOf = (token: string) => {
    try {
      const { exp } = decodeJwt(token);
      if (typeof exp === 'number') return exp * 1000;
    } catch {
      // An opaque token: assume the documented one-hour lifetime.
    }
    return clock.now() + 3_600_000;
  };

  const supabaseGrant = async (
    grant: 'password' | 'refresh_token',
    body: Record<string, string>,
    signal?: AbortSignal,
  ) => {
    if (!config.supabase) {
      throw new AppError('invalid_request', {
        message: 'Email sign-in to Billbora is not configured; use supabaseToken or apiKey.',
      });
    }
    const url = new URL(`${config.supabase.url.href.replace(/\/+$/, '')}/auth/v1/token`);
    url.searchParams.set('grant_type', grant);
    const response = await postJson(
      url,
      body,
      { apikey: config.supabase.anonKey, 'x-supabase-api-version': '2024-01-01' },
      signal,
    );
    const parsed = supabaseSessionSchema.safeParse(response.json);
    if (response.status === 200 && parsed.success) return parsed.data;
    // A refused anon key is billfold's configuration, not the user's password.
    if (response.status === 401) throw new AppError('upstream_unavailable', { provider });
    throw loginFailure(provider, response.status, parsed.success);
  };

  const exchange = async (
    supabaseToken: string,
    organization: string | undefined,
    person: { user: string; identity: string | undefined },
    supabaseRefresh?: string,
    signal?: AbortSignal,
  ) => {
    const response = await postJson(
      upstreamUrl(config.baseUrl, 'users/auth/exchange/'),
      {
        supabase_token: supabaseToken,
        ...(organization !== undefined && { organization_id: organization }),
      },
      {},
      signal,
    );
    if (response.status === 403 && errorCode(response) === 'organization_access_denied') {
      throw new AppError('organization_access_denied', { provider });
    }
    const parsed = exchangeSchema.safeParse(response.json);
    if (response.status !== 200 || !parsed.success)
      throw loginFailure(provider, response.status, parsed.success);
    const credential: BillboraJwtCredential = {
      mode: 'jwt',
      access: parsed.data.access,
      refresh: parsed.data.refresh,
      accessExpiresAt: expiryOf(parsed.data.access),
      organization: parsed.data.organization,
      user: person.user,
      connectedAt: clock.now(),
    };
    if (person.identity !== undefined) credential.identity = person.identity;
    if (supabaseRefresh !== undefined) credential.supabaseRefresh = supabaseRefresh;
    return credential;
  };

  // A Supabase refresh rotates its token at once: the new one is kept even when the exchange then fails.
  const viaSupabase = async (
    credential: BillboraJwtCredential,
    organization: string,
    context: RenewalContext,
  ) => {
    if (!credential.supabaseRefresh) throw new AppError('invalid_credentials', { provider });
    await context.fence();
    const session = await supabaseGrant(
      'refresh_token',
      { refresh_token: credential.supabaseRefresh },
      context.signal,
    );
    context.keep({ ...credential, supabaseRefresh: session.refresh_token });
    return exchange(
      session.access_token,
      organization,
      personOfCredential(credential),
      session.refresh_token,
      context.signal,
    );
  };

  // Who a Supabase token names: its `sub` (Supabase's stable user id) is the identity; the email is
  // only what the session view shows, and phone or anonymous users have none. Read unverified: the
  // exchange that follows is Billbora's verification, and nothing is stored unless it succeeds.
  const personOf = (token: string) => {
    try {
      const { email, sub } = decodeJwt(token);
      return {
        user: typeof email === 'string' && email !== '' ? email : 'unknown',
        identity: typeof sub === 'string' && sub.trim() !== '' ? sub.trim() : undefined,
      };
    } catch {
      throw new AppError('invalid_credentials', { provider });
    }
  };
  const personOfCredential = (credential: BillboraJwtCredential) => ({
    user: credential.user,
    identity: credential.identity,
  });

  const adapter: BillboraAdapter = {
    id: provider,
    loginSchema: billboraLoginSchema,

    async login(input) {
      const body = billboraLoginSchema.parse(input);
      if ('apiKey' in body) {
        const response = await client.send(provider, {
          method: 'GET',
          url: upstreamUrl(config.baseUrl, 'invoices/'),
          headers: { authorization: `Bearer ${body.apiKey}`, accept: 'application/json' },
        });
        await response.body.dump();
        if (response.status === 200)
          return {
            mode: 'apiKey',
            apiKey: body.apiKey,
            connectedAt: clock.now(),
          } satisfies BillboraApiKeyCredential;
        throw loginFailure(provider, response.status, response.status < 300);
      }
      if ('email' in body) {
        const session = await supabaseGrant('password', { email: body.email, password: body.password });
        const { identity } = personOf(session.access_token);
        return exchange(
          session.access_token,
          body.organizationId,
          { user: body.email, identity },
          session.refresh_token,
        );
      }
      return exchange(body.supabaseToken, body.organizationId, personOf(body.supabaseToken));
    },

    async logout(credential) {
      // Billbora has no logout call; ending the Supabase session revokes the refresh token billfold holds.
      // Only this session's: Supabase's default scope, `global`, would end every session of the person,
      // on every device and in every other billfold session.
      if (credential.mode !== 'jwt' || !credential.supabaseRefresh || !config.supabase) return;
      const session = await supabaseGrant('refresh_token', { refresh_token: credential.supabaseRefresh });
      const response = await client.send(provider, {
        method: 'POST',
        url: new URL(`${config.supabase.url.href.replace(/\/+$/, '')}/auth/v1/logout?scope=local`),
        headers: { apikey: config.supabase.anonKey, authorization: `Bearer ${session.access_token}` },
      });
      await response.body.dump();
    },

    isAuthEndpoint: (path) => /^users\/auth(\/|$)/i.test(path),
    // A JWT call may be replayed once after renewal, so its body is kept.
    buffersRequestBody: (credential) => credential.mode === 'jwt',

    authorize(call, credential) {
      call.headers.authorization = `Bearer ${credential.mode === 'jwt' ? credential.access : credential.apiKey}`;
      return call;
    },

    needsResponseBody: () => false,
    judge: (status) => (status === 401 ? 'renew' : 'ok'),

    async renew(credential, context) {
      if (credential.mode !== 'jwt') throw new AppError('invalid_credentials', { provider });
      if (!credential.refreshSpent) {
        await context.fence();
        let response: UpstreamJsonResponse | undefined;
        try {
          response = await postJson(
            upstreamUrl(config.baseUrl, 'users/auth/refresh/'),
            { refresh: credential.refresh },
            {},
            context.signal,
          );
        } catch (error) {
          // Presented without an answer, the refresh token may be spent: it is never presented again.
          if (!mayHaveArrived(error)) throw error;
          context.keep({ ...credential, refreshSpent: true });
          if (!credential.supabaseRefresh) throw error;
        }
        if (response) {
          const parsed = refreshSchema.safeParse(response.json);
          if (response.status === 200 && parsed.success) {
            const { refreshSpent: _spent, ...rest } = credential;
            return { ...rest, ...parsed.data, accessExpiresAt: expiryOf(parsed.data.access) };
          }
          if (response.status !== 401 && response.status !== 400)
            throw loginFailure(provider, response.status, parsed.success);
          context.keep({ ...credential, refreshSpent: true });
        }
      }
      // The Billbora refresh token is dead; a Supabase session, when billfold has one, can start a new one.
      if (!credential.supabaseRefresh) throw new AppError('invalid_credentials', { provider });
      return viaSupabase({ ...credential, refreshSpent: true }, credential.organization.id, context);
    },

    needsRenewal: (credential, now) =>
      credential.mode === 'jwt' && now >= credential.accessExpiresAt - BILLBORA_RENEW_BEFORE_MS,

    async switchOrganization(credential, organization, supabaseToken, context) {
      if (credential.mode !== 'jwt') {
        throw new AppError('invalid_request', {
          message: 'An API key is bound to its organization.',
          provider,
        });
      }
      if (supabaseToken !== undefined) {
        // Only the same Supabase user may move this credential: another user's token would leave one
        // credential holding two users (their tokens, this one's Supabase refresh token).
        const person = personOf(supabaseToken);
        if (credential.identity === undefined || person.identity !== credential.identity)
          throw new AppError('organization_access_denied', { provider });
        return exchange(supabaseToken, organization, person, credential.supabaseRefresh, context.signal);
      }
      if (!credential.supabaseRefresh) {
        throw new AppError('invalid_request', {
          message: 'supabaseToken is required to switch organization.',
          provider,
        });
      }
      return viaSupabase(credential, organization, context);
    },

    secretsOf: (credential) =>
      credential.mode === 'jwt'
        ? [
            credential.access,
            credential.refresh,
            ...(credential.supabaseRefresh ? [credential.supabaseRefresh] : []),
          ]
        : [credential.apiKey],

    // An API key is the organization's, shared by whoever holds it; a person is their Supabase `sub`.
    personalIdentity: ({ user }) => (user.trim() === '' ? undefined : user.trim()),

    view: (credential) =>
      credential.mode === 'jwt'
        ? {
            connected: true,
            mode: 'jwt',
            user: credential.user,
            organization: credential.organization,
            accessExpiresAt: new Date(credential.accessExpiresAt).toISOString(),
            connectedAt: new Date(credential.connectedAt).toISOString(),
          }
        : { connected: true, mode: 'apiKey', connectedAt: new Date(credential.connectedAt).toISOString() },
  };
  return adapter;
}
