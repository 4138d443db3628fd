import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import { audit, type Logger } from '../logger.js';
import { hasProviders, type CredentialOf } from '../session/session-record.js';
import type { LoadedSession, SessionRepository } from '../session/session-repository.js';
import {
  adapterFor,
  isSameCredential,
  type AdapterRegistry,
  type ProviderAdapter,
} from './provider-adapter.js';
import type { ProviderId } from './provider-id.js';

type Credential = CredentialOf<ProviderId>;

/** A session together with the credential a call should now use. */
export interface Renewed {
  session: LoadedSession;
  credential: Credential;
}

/** Renews upstream credentials so that exactly one renewal reaches the upstream, however many need it. */
export interface CredentialRenewer {
  /**
   * Returns a credential newer than `used`: one another request or instance already stored, or one
   * this call obtained while holding the store lock. Refresh tokens are single use, so presenting one
   * twice would revoke the whole token family upstream.
   */
  renew(session: LoadedSession, id: ProviderId, used: Credential): Promise<Renewed>;
}

/** What the renewer needs. */
export interface CredentialRenewerDeps {
  adapters: AdapterRegistry;
  repository: SessionRepository;
  clock: Clock;
  logger: Logger;
  /** How long a renewal may hold the lock: longer than one upstream call. */
  lockTtlMs: number;
  /** Pause between looks while another instance renews. */
  pollMs?: number;
}

export function createCredentialRenewer(deps: CredentialRenewerDeps): CredentialRenewer {
  const { repository, logger } = deps;
  const pollMs = deps.pollMs ?? 25;
  const inFlight = new Map<string, Promise<Renewed>>();

  const expired = (id: ProviderId) => new AppError('upstream_session_expired', { provider: id });

  // Someone else's renewal is visible as a different credential in the store.
  const storedNewer = async (
    sessionId: string,
    id: ProviderId,
    adapter: ProviderAdapter,
    used: Credential,
  ) => {
    const session = await repository.load(sessionId);
    if (!session) throw new AppError('unauthenticated');
    const stored = session.record.providers[id];
    if (!stored) throw expired(id);
    return isSameCredential(adapter, stored, used) ? undefined : { session, credential: stored };
  };

  const renewOnce = async (
    session: LoadedSession,
    id: ProviderId,
    adapter: ProviderAdapter,
    used: Credential,
  ) => {
    const renew = adapter.renew?.bind(adapter);
    if (!renew) throw expired(id);
    const lock = `l:renew:${session.id}:${id}`;
    const token = randomUUID();
    const deadline = deps.clock.now() + deps.lockTtlMs;
    for (;;) {
      const newer = await storedNewer(session.id, id, adapter, used);
      if (newer) return newer;
      if (await repository.backend.acquireLock(lock, token, deps.lockTtlMs).catch(storeDown)) break;
      if (deps.clock.now() > deadline) throw new AppError('upstream_timeout', { provider: id });
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    try {
      const newer = await storedNewer(session.id, id, adapter, used);
      if (newer) return newer;
      let fresh: Credential;
      try {
        fresh = await renew(used);
      } catch (error) {
        audit(logger, { event: 'renewal', outcome: 'failure', provider: id, sessionId: session.id });
        if (!(error instanceof AppError) || error.code !== 'invalid_credentials') throw error;
        // The upstream refused renewal: this provider is signed out (unless it changed meanwhile).
        await disconnectProvider(repository, session.id, adapter, used);
        audit(logger, {
          event: 'upstream_session_expired',
          outcome: 'failure',
          provider: id,
          sessionId: session.id,
        });
        throw expired(id);
      }
      const stored = await repository.update(session.id, (record) => {
        // Never bring back a provider (or a session) that was signed out meanwhile.
        if (!isSameCredential(adapter, record.providers[id], used)) return undefined;
        return { ...record, providers: { ...record.providers, [id]: fresh } };
      });
      audit(logger, { event: 'renewal', outcome: 'success', provider: id, sessionId: session.id });
      if (!stored) throw new AppError('unauthenticated');
      return { session: stored, credential: stored.record.providers[id] ?? fresh };
    } finally {
      await repository.backend.releaseLock(lock, token).catch(() => undefined);
    }
  };

  return {
    renew(session, id, used) {
      const adapter = adapterFor(deps.adapters, id);
      if (!adapter) return Promise.reject(new AppError('provider_not_configured', { provider: id }));
      const key = `${session.id}:${id}:${adapter.secretsOf(used)[0] ?? ''}`;
      let pending = inFlight.get(key);
      if (!pending) {
        pending = renewOnce(session, id, adapter, used).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    },
  };
}

function storeDown(error: unknown): never {
  throw new AppError('session_store_unavailable', { cause: error });
}

/** Stores `next` in place of `used`, unless the provider was signed out or signed in again meanwhile. */
export async function replaceCredential(
  repository: SessionRepository,
  sessionId: string,
  adapter: ProviderAdapter,
  used: Credential,
  next: Credential,
): Promise<void> {
  await repository.update(sessionId, (record) =>
    isSameCredential(adapter, record.providers[adapter.id], used)
      ? { ...record, providers: { ...record.providers, [adapter.id]: next } }
      : undefined,
  );
}

/**
 * Removes a provider whose credential the upstream no longer accepts, ending the session when it was
 * the last one. Only the credential that failed is removed: a newer login or renewal stays.
 */
export async function disconnectProvider(
  repository: SessionRepository,
  sessionId: string,
  adapter: ProviderAdapter,
  failed: Credential,
): Promise<void> {
  await repository.update(sessionId, (record) => {
    if (!isSameCredential(adapter, record.providers[adapter.id], failed)) return undefined;
    delete record.providers[adapter.id];
    return hasProviders(record) ? record : null;
  });
}
