import type { Clock } from '../clock.js';
import type { StoredCredential } from '../session/session-record.js';
import { billModule } from './bill/bill-module.js';
import { billboraModule } from './billbora/billbora-module.js';
import { billingPlatformModule } from './billingplatform/billingplatform-module.js';
import { billogramModule } from './billogram/billogram-module.js';
import type { ProviderAdapter } from './provider-adapter.js';
import {
  createAdapterRegistry,
  type AdapterOf,
  type ProviderAdapters,
  type ProviderConfigs,
  type ProviderModule,
} from './provider-module.js';
import type { ProviderSettings } from './provider-settings.js';
import type { UpstreamClient } from './upstream-client.js';

/**
 * The upstreams billfold signs in to, in the order the session view lists them. Adding one is a
 * folder under `src/upstream/` with its module, and one line here.
 */
export const PROVIDER_MODULES = [
  billingPlatformModule,
  billModule,
  billogramModule,
  billboraModule,
] as const satisfies readonly ProviderModule[];

/** The built-in provider modules. */
export type ProviderModules = typeof PROVIDER_MODULES;

/** The id of a built-in provider. */
export type BuiltInProviderId = ProviderModules[number]['id'];

/** The built-in providers' ids, in the list's order. */
export const PROVIDER_IDS: readonly BuiltInProviderId[] = PROVIDER_MODULES.map((module) => module.id);

/** The configured providers' slices, typed for the built-in modules. */
export type ProviderConfig = ProviderConfigs<ProviderModules>;

/** One adapter for each provider whose base URL is configured (`undefined` for each one off). */
export function createAdapters(
  config: { readonly providers: Readonly<Record<string, ProviderSettings | undefined>> },
  client: UpstreamClient,
  clock: Clock,
): ProviderAdapters<ProviderModules>;
export function createAdapters<const M extends readonly ProviderModule[]>(
  config: { readonly providers: Readonly<Record<string, ProviderSettings | undefined>> },
  client: UpstreamClient,
  clock: Clock,
  modules: M,
): ProviderAdapters<M>;
export function createAdapters(
  config: { readonly providers: Readonly<Record<string, ProviderSettings | undefined>> },
  client: UpstreamClient,
  clock: Clock,
  modules: readonly ProviderModule[] = PROVIDER_MODULES,
): ProviderAdapters<readonly ProviderModule[]> {
  return createAdapterRegistry(modules, config.providers, client, clock);
}

/** The credential a built-in provider stores; any stored credential for another id. */
export type CredentialOf<P extends string> = string extends P
  ? StoredCredential
  : [Extract<ProviderModules[number], { id: P }>] extends [never]
    ? StoredCredential
    : AdapterOf<Extract<ProviderModules[number], { id: P }>> extends ProviderAdapter<infer C>
      ? C
      : never;
