import type { z } from 'zod';
import type { SessionRecord, StoredCredential } from '../session/session-record.js';
import { AppError } from '../errors.js';
import type { ProviderId } from './provider-id.js';

/** A relayed call as billfold is about to send it, before the provider's auth is attached. */
export interface RelayCall {
  method: string;
  url: URL;
  /** Client headers that passed the allow-list, lower-cased. */
  headers: Record<string, string>;
  /** The request body when the adapter asked for it buffered (see `buffersRequestBody`). */
  body: Buffer | undefined;
}

/**
 * How an upstream answer reads with respect to the stored credential: fine, dead, to be renewed and
 * replayed once, or (`untrusted`) refused until the session is stepped up (BILL's MFA), the
 * credential staying as it is.
 */
export type AuthVerdict = 'ok' | 'expired' | 'renew' | 'untrusted';

/** What one provider shows in the session view (never a secret). */
export type ProviderView = { connected: true } & Record<string, unknown>;

/**
 * Everything billfold knows about one upstream's authentication, free of Express and of storage.
 * Built by a factory given its config slice, the HTTP client and the clock; the session layer stores
 * what `login` and `renew` return, and the relay asks the adapter to attach and judge it.
 */
export interface ProviderAdapter<C extends StoredCredential = StoredCredential> {
  readonly id: ProviderId;
  /** Validates the login body (unknown fields refused); its output is what `login` receives. */
  readonly loginSchema: z.ZodType;
  /**
   * Signs in upstream (passwords are used once, here, and never kept) and returns what to store.
   * `session` is the billfold session this sign-in joins, if any (BILL offers its trusted device).
   */
  login(input: unknown, session?: SessionRecord): Promise<C>;
  /** Ends the upstream session where the upstream has one; best effort. */
  logout(credential: C): Promise<void>;
  /** Paths (relative to the base URL) that are the upstream's own login, logout or token endpoints. */
  isAuthEndpoint(path: string): boolean;
  /**
   * Refuses a relayed request the upstream cannot take as sent (BILL v2 takes form POSTs only), from
   * its method and Content-Type alone: before its body is read or a `100 Continue` invites it.
   */
  checkRequest?(method: string, contentType: string | undefined, hasBody: boolean): void;
  /** Whether the relay must hold the request body in memory (to rewrite it, or to replay it once). */
  buffersRequestBody(credential: C, call: RelayCall): boolean;
  /** Attaches the credential: headers, and for BILL the form fields of the body. */
  authorize(call: RelayCall, credential: C): RelayCall;
  /**
   * Whether `judge` needs the parsed JSON body of an answer with this status (BILL signals expiry
   * inside HTTP 200; Billogram's 403 means expiry only for some codes). Other answers stream untouched.
   */
  needsResponseBody(status: number): boolean;
  /** Reads an upstream answer: fine, the credential is dead, or it should be renewed and the call replayed once. */
  judge(status: number, body: unknown): AuthVerdict;
  /** Exchanges a credential for a fresh one (Billbora's rotating JWTs), holding the renewal lock. */
  renew?(credential: C, context: RenewalContext): Promise<C>;
  /** Whether the credential should be renewed before use (shortly before it expires). */
  needsRenewal?(credential: C, now: number): boolean;
  /** The credential to store once the upstream answered `untrusted` (BILL's view of its MFA trust is stale). */
  afterUntrusted?(credential: C): C | undefined;
  /** The credential to store after a successful call, when the adapter tracks use (BILL's idle timer). */
  afterUse?(credential: C, now: number): C | undefined;
  /** The secret values in a credential, so no upstream answer header can echo one back to the client. */
  secretsOf(credential: C): string[];
  /** The provider's entry in the session view. */
  view(credential: C): ProviderView;
  /**
   * The personal identity an operator's `user` (and BILL's `orgId`) names, canonicalised as the
   * upstream compares it and as `login` records it on the credential; undefined where the
   * provider's credentials are shared, not personal.
   */
  personalIdentity(name: { user: string; orgId?: string }): string | undefined;
  /** Whether a user is a person only within an organization, so naming one takes its `orgId` (BILL). */
  readonly identityInOrganization?: boolean;
}

/** What a renewal runs under: the renewer's lock, its deadline, and what it must not lose. */
export interface RenewalContext {
  /** Aborted once the renewal's deadline passes or its lock is lost; pass it to every upstream call. */
  readonly signal: AbortSignal;
  /** Confirms (and extends) the lock; call it right before presenting a single-use token. Throws when the lock is lost. */
  fence(): Promise<void>;
  /** Records a credential holding tokens the upstream has already rotated or may have spent: stored even if the renewal then fails. */
  keep(credential: StoredCredential): void;
}

/**
 * Every provider billfold knows, in the order the session view lists them: its adapter when its base
 * URL is configured, `undefined` when it is off. A key that is absent names no provider at all.
 */
export type AdapterRegistry = Readonly<Record<ProviderId, ProviderAdapter | undefined>>;

/** Whether `name` is a provider billfold knows (configured or not); never a prototype key. */
export function isKnownProvider(registry: AdapterRegistry, name: string): boolean {
  return Object.hasOwn(registry, name);
}

/**
 * The adapter for `id`, typed for any stored credential. Safe because a session only ever stores
 * under `id` what that same adapter's `login` or `renew` returned.
 */
export function adapterFor(registry: AdapterRegistry, id: ProviderId): ProviderAdapter | undefined {
  return isKnownProvider(registry, id) ? registry[id] : undefined;
}

/** The configured adapters, in the registry's order. */
export function configuredAdapters(registry: AdapterRegistry): ProviderAdapter[] {
  return Object.values(registry).filter((adapter) => adapter !== undefined);
}

/**
 * The adapter a `:provider` path segment names, the same way on both roads: 404 not_found for a
 * name that is no provider, provider_not_configured for one without a base URL.
 */
export function resolveProvider(registry: AdapterRegistry, name: string | undefined): ProviderAdapter {
  if (name === undefined || !isKnownProvider(registry, name)) throw new AppError('not_found');
  const adapter = adapterFor(registry, name);
  if (!adapter) throw new AppError('provider_not_configured', { provider: name });
  return adapter;
}

/** Joins a base URL and a relative path without ever changing the host. */
export function upstreamUrl(baseUrl: URL, path: string, search = ''): URL {
  const url = new URL(baseUrl.href);
  url.pathname = `${baseUrl.pathname.replace(/\/+$/, '')}/${path}`;
  url.search = search;
  return url;
}

/** The first path segment, lower-cased: how auth endpoints are matched, case-insensitively. */
export function firstSegment(path: string): string {
  return (path.split('/')[0] ?? '').toLowerCase();
}

/** Whether two credentials of one provider are the same one (compared by their first secret). */
export function isSameCredential(
  adapter: ProviderAdapter,
  a: StoredCredential | undefined,
  b: StoredCredential,
): boolean {
  return a !== undefined && adapter.secretsOf(a)[0] === adapter.secretsOf(b)[0];
}
