import type { SessionRecord, SessionLimits } from '../session/session-record.js';
import { sessionDeadlines } from '../session/session-record.js';
import { configuredAdapters, type AdapterRegistry, type ProviderView } from '../upstream/provider-adapter.js';
import type { ProviderId } from '../upstream/provider-id.js';

/** The session view of SPEC section 2: every configured provider, connected or not, and no secret. */
export type SessionView =
  | { authenticated: false }
  | {
      authenticated: true;
      expiresAt: string;
      idleExpiresAt: string;
      providers: Partial<Record<ProviderId, ProviderView | { connected: false }>>;
    };

export function buildSessionView(
  record: SessionRecord | undefined,
  adapters: AdapterRegistry,
  limits: SessionLimits,
): SessionView {
  if (!record) return { authenticated: false };
  const providers: Partial<Record<ProviderId, ProviderView | { connected: false }>> = {};
  for (const adapter of configuredAdapters(adapters)) {
    const credential = record.providers[adapter.id];
    providers[adapter.id] = credential ? adapter.view(credential) : { connected: false };
  }
  const { expiresAt, idleExpiresAt } = sessionDeadlines(record, limits);
  return {
    authenticated: true,
    expiresAt: new Date(expiresAt).toISOString(),
    idleExpiresAt: new Date(Math.min(idleExpiresAt, expiresAt)).toISOString(),
    providers,
  };
}
