import type { Request, Router } from 'express';
import type { z } from 'zod';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { SessionRecord } from '../session/session-record.js';
import type { SessionRepository } from '../session/session-repository.js';
import type { CredentialRenewer } from './credential-renewer.js';
import type { ProviderAdapter } from './provider-adapter.js';
import type { ProviderConfigSlice, ProviderSettings } from './provider-settings.js';
import type { UpstreamClient } from './upstream-client.js';

/** What a provider's adapter factory is handed: its config slice, the HTTP client, the clock. */
export interface AdapterDeps<Slice extends ProviderSettings = ProviderSettings> {
  config: Slice;
  client: UpstreamClient;
  clock: Clock;
}

/**
 * A login count a provider adds to the shared ones (BILL's developer-key budget). Held in the store
 * as `rl:login:<name>:<keyed hash>`, per client address or per one value shared by everyone.
 */
export interface LoginBudget {
  readonly name: string;
  readonly per: 'address' | { readonly label: string; readonly value: string };
  readonly limit: number;
  readonly windowMs: number;
}

/** Attempts at a guessable secret, limited per key; each is counted before it is made. */
export interface AttemptLimiter {
  /** Counts one attempt; throws 429 rate_limited (with Retry-After) past the limit. */
  take(key: string): Promise<void>;
  /** A success clears the count. */
  clear(key: string): Promise<void>;
}

/**
 * What billfold's edge lends a provider's own routes, so a provider folder depends on no route or
 * middleware module: the same body validation, session lookup, request context and view as the
 * shared auth routes.
 */
export interface ProviderRouteEdge {
  /** Validates a JSON body; a refusal names the fields, never their values (400 invalid_request). */
  parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T>;
  /** The session express-session loaded for this request, when one is stored. */
  storedSession(req: Request): SessionRecord | undefined;
  /** Names the provider on the request's log line and metrics; answers the request id. */
  begin(req: Request, provider: string): { requestId: string };
  /** The session view of a record (`{authenticated: false}` for none). */
  view(record: SessionRecord | undefined): unknown;
  /** A limiter of attempts named `name` (its store keys' prefix), at the per-user login limit. */
  attempts(name: string, provider: string): AttemptLimiter;
}

/** What a provider's own routes are built from; `adapter` is undefined when the provider is off. */
export interface ProviderRouteDeps<Adapter extends ProviderAdapter = ProviderAdapter> {
  adapter: Adapter | undefined;
  repository: SessionRepository;
  clock: Clock;
  logger: Logger;
  /** The renewal lock's holder: a route that rewrites a credential runs under it. */
  renewer: CredentialRenewer;
  edge: ProviderRouteEdge;
}

/**
 * Everything billfold knows about one upstream, in one place: its id, its configuration slice, its
 * adapter, the name its logins are limited under, its extra login budgets, its own routes and where
 * the sandbox serves its emulator. The provider module list drives every other part of billfold.
 */
export interface ProviderModule<
  Id extends string = string,
  Shape extends z.ZodRawShape = z.ZodRawShape,
  Slice extends ProviderSettings = ProviderSettings,
  Adapter extends ProviderAdapter = ProviderAdapter,
> {
  readonly id: Id;
  readonly config: ProviderConfigSlice<Shape, Slice>;
  createAdapter(deps: AdapterDeps<Slice>): Adapter;
  /**
   * The name a login body signs in under, for the per-username failure limits (the body already
   * passed the adapter's `loginSchema`); undefined where a login names nobody (a token).
   */
  loginName(input: unknown): string | undefined;
  /** Login counts besides the shared ones, reserved before the upstream is asked. */
  loginBudgets?(config: Slice): readonly LoginBudget[];
  /** Routes of the provider's own under `/auth` (BILL's MFA step-up, Billbora's organization switch). */
  createRoutes?(deps: ProviderRouteDeps<Adapter>): Router;
  /** Where the sandbox serves the provider's emulator, and the environment that points billfold at it. */
  readonly sandbox: { readonly mount: string; env(mountedAt: string): Readonly<Record<string, string>> };
}

/** Declares a provider module with its types inferred (the identity function, typed). */
export function defineProviderModule<
  const Id extends string,
  Shape extends z.ZodRawShape,
  Slice extends ProviderSettings,
  Adapter extends ProviderAdapter,
>(module: ProviderModule<Id, Shape, Slice, Adapter>): ProviderModule<Id, Shape, Slice, Adapter> {
  return module;
}

/** The slice type of a module. */
export type SliceOf<M> = M extends ProviderModule<string, z.ZodRawShape, infer S> ? S : never;
/** The adapter type of a module. */
export type AdapterOf<M> =
  M extends ProviderModule<string, z.ZodRawShape, ProviderSettings, infer A> ? A : never;

/** The configured providers' slices, by id: typed for the modules in `M`, open to any other. */
export type ProviderConfigs<M extends readonly ProviderModule[]> = {
  readonly [K in M[number] as K['id']]?: SliceOf<K>;
} & Readonly<Record<string, ProviderSettings | undefined>>;

/** Every known provider's adapter, by id (undefined when off): typed for the modules in `M`. */
export type ProviderAdapters<M extends readonly ProviderModule[]> = {
  readonly [K in M[number] as K['id']]: AdapterOf<K> | undefined;
} & Readonly<Record<string, ProviderAdapter | undefined>>;

/** One adapter for each provider whose configuration slice is present, `undefined` for the others. */
export function createAdapterRegistry<const M extends readonly ProviderModule[]>(
  modules: M,
  configs: Readonly<Record<string, ProviderSettings | undefined>>,
  client: UpstreamClient,
  clock: Clock,
): ProviderAdapters<M> {
  const adapters: Record<string, ProviderAdapter | undefined> = {};
  for (const module of modules) {
    const config = configs[module.id];
    adapters[module.id] = config && module.createAdapter({ config, client, clock });
  }
  return adapters as ProviderAdapters<M>;
}
