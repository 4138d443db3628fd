import type { SessionRecord, SessionLimits } from '../session/session-record.js';
import { sessionDeadlines } from '../session/session-record.js';
import { configuredAdapters, type AdapterRegistry, type ProviderView } from '../upstream/provider-adapter.js';
import type { ProviderId } from '../upstream/provider-id.js';

/** A provider's entry: what its adapter shows of a connected credential, or that there is none. */
export type ProviderEntry = ProviderView | { connected: false };

/**
 * The session view (`SessionView` in /openapi.json): every configured provider, connected or not,
 * and no secret. Signed out, it still lists the configured providers, none connected, so a client
 * knows which sign-ins to offer.
 */
export type SessionView =
  | { authenticated: false; providers: Partial<Record<ProviderId, { connected: false }>> }
  | {
      authenticated: true;
      expiresAt: string;
      idleExpiresAt: string;
      providers: Partial<Record<ProviderId, ProviderEntry>>;
    };

export function buildSessionView(
  record: SessionRecord | undefined,
  adapters: AdapterRegistry,
  limits: SessionLimits,
): SessionView {
  const providers: Partial<Record<ProviderId, ProviderEntry>> = {};
  const signedOut: Partial<Record<ProviderId, { connected: false }>> = {};
  for (const adapter of configuredAdapters(adapters)) {
    signedOut[adapter.id] = { connected: false };
    const credential = record?.providers[adapter.id];
    providers[adapter.id] = credential ? adapter.view(credential) : { connected: false };
  }
  if (!record) return { authenticated: false, providers: signedOut };
  const { expiresAt, idleExpiresAt } = sessionDeadlines(record, limits);
  return {
    authenticated: true,
    expiresAt: new Date(expiresAt).toISOString(),
    idleExpiresAt: new Date(Math.min(idleExpiresAt, expiresAt)).toISOString(),
    providers,
  };
}
