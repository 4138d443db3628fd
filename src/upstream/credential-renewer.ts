import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import { audit, type Logger } from '../logger.js';
import { forgetCredential, hasProviders, type StoredCredential } from '../session/session-record.js';
import type { LoadedSession, SessionRepository } from '../session/session-repository.js';
import {
  adapterFor,
  isSameCredential,
  type AdapterRegistry,
  type ProviderAdapter,
  type RenewalContext,
} from './provider-adapter.js';
import type { ProviderId } from './provider-id.js';

type Credential = StoredCredential;

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
  /**
   * Replaces the stored credential with what `change` makes of it, under the same lock as renewal:
   * `change` receives the credential stored once the lock is held (newer than `seen` when a renewal
   * ran meanwhile), so it never presents a token another renewal spent.
   */
  replace(
    session: LoadedSession,
    id: ProviderId,
    change: (current: Credential, context: RenewalContext) => Promise<Credential>,
  ): Promise<Renewed>;
  /**
   * Runs `work` while no renewal (nor organization switch) of `providers` in the session runs: it
   * waits for those in flight, and those asked for meanwhile wait for it. A sign-in moving the
   * session to a new id runs so, or it would copy a credential a renewal is about to replace (and a
   * rotated refresh token would be lost with the old id).
   */
  excludingRenewals<T>(
    sessionId: string,
    providers: readonly ProviderId[],
    work: () => Promise<T>,
  ): Promise<T>;
}

/** What the renewer needs. */
export interface CredentialRenewerDeps {
  adapters: AdapterRegistry;
  repository: SessionRepository;
  clock: Clock;
  logger: Logger;
  /** How long the lock lives unless its holder extends it (it does, every third of this, while it works). */
  lockTtlMs: number;
  /** The most one renewal may take, all its upstream calls together; it is cancelled past it. */
  renewalDeadlineMs: number;
  /** Pause between looks while another instance renews. */
  pollMs?: number;
}

export function createCredentialRenewer(deps: CredentialRenewerDeps): CredentialRenewer {
  const { repository, logger } = deps;
  const pollMs = deps.pollMs ?? 25;
  const inFlight = new Map<string, Promise<Renewed>>();

  const expired = (id: ProviderId) => new AppError('upstream_session_expired', { provider: id });

  const loadStored = async (sessionId: string, id: ProviderId) => {
    const session = await repository.load(sessionId);
    if (!session) throw new AppError('unauthenticated');
    const stored = session.record.providers[id];
    if (!stored) throw expired(id);
    return { session, credential: stored };
  };

  // Stores `next` in place of `expected` unless the provider changed or was signed out meanwhile.
  const store = (
    sessionId: string,
    id: ProviderId,
    adapter: ProviderAdapter,
    expected: Credential,
    next: Credential,
  ) =>
    repository.update(sessionId, (record) => {
      if (!isSameCredential(adapter, record.providers[id], expected)) return undefined;
      return { ...record, providers: { ...record.providers, [id]: next } };
    });

  const lockOf = (sessionId: string, id: ProviderId) => `l:renew:${sessionId}:${id}`;
  /**
   * Takes `lock`, polling while another holds it, until `settled` (asked before each try) says there
   * is nothing left to wait for. Answers whether the lock is held: false once settled, or once the
   * holder must have finished or lost its lock.
   */
  const acquire = async (lock: string, token: string, settled?: () => Promise<boolean>) => {
    const waitUntil = deps.clock.now() + deps.renewalDeadlineMs + deps.lockTtlMs;
    for (;;) {
      if (settled && (await settled())) return false;
      if (await repository.backend.acquireLock(lock, token, deps.lockTtlMs).catch(storeDown)) return true;
      if (deps.clock.now() > waitUntil) return false;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  };

  /**
   * Runs `work` holding the session's renewal lock for `id`. The lock is extended while `work` runs
   * and `work` is cancelled (its upstream calls aborted) once the lock cannot be confirmed or the
   * renewal deadline passes; `skip` may answer from the store instead, before and after the lock is taken.
   */
  const underLock = async (
    session: LoadedSession,
    id: ProviderId,
    adapter: ProviderAdapter,
    skip: (stored: Renewed) => Renewed | undefined,
    work: (current: Credential, context: RenewalContext) => Promise<Credential>,
  ): Promise<Renewed> => {
    const lock = lockOf(session.id, id);
    const token = randomUUID();
    let skipped: Renewed | undefined;
    const held = await acquire(
      lock,
      token,
      async () => (skipped = skip(await loadStored(session.id, id))) !== undefined,
    );
    if (skipped) return skipped;
    if (!held) throw new AppError('upstream_timeout', { provider: id });

    const cancel = new AbortController();
    const deadline = setTimeout(
      () => cancel.abort(new AppError('upstream_timeout', { provider: id })),
      deps.renewalDeadlineMs,
    );
    const lost = (cause?: unknown) =>
      cancel.abort(
        cause === undefined
          ? new AppError('upstream_timeout', { provider: id, message: 'The renewal lost its lock.' })
          : new AppError('session_store_unavailable', { cause }),
      );
    const confirm = async () => {
      if (cancel.signal.aborted) throw cancel.signal.reason;
      const held = await repository.backend
        .extendLock(lock, token, deps.lockTtlMs)
        .catch((error: unknown) => {
          lost(error);
          return false;
        });
      if (!held) {
        // The deadline may have aborted the signal while the extension was awaited.
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
        if (!cancel.signal.aborted) lost();
        throw cancel.signal.reason;
      }
    };
    const heartbeat = setInterval(
      () => void confirm().catch(() => undefined),
      Math.max(1, deps.lockTtlMs / 3),
    );
    let kept: Credential | undefined;
    let current: Credential | undefined;
    try {
      const stored = await loadStored(session.id, id);
      const answer = skip(stored);
      if (answer) return answer;
      current = stored.credential;
      const context: RenewalContext = {
        signal: cancel.signal,
        fence: confirm,
        keep: (credential) => void (kept = credential),
      };
      let fresh: Credential;
      try {
        fresh = await work(current, context);
      } catch (error) {
        audit(logger, { event: 'renewal', outcome: 'failure', provider: id, sessionId: session.id });
        // Tokens the upstream already rotated are kept, or the next renewal would present spent ones.
        if (kept) {
          await store(session.id, id, adapter, current, kept).catch(() => undefined);
          current = kept;
        }
        throw cancel.signal.aborted && !(error instanceof AppError && error.status < 500)
          ? (cancel.signal.reason as Error)
          : error;
      }
      const written = await store(session.id, id, adapter, current, fresh);
      audit(logger, { event: 'renewal', outcome: 'success', provider: id, sessionId: session.id });
      if (!written) throw new AppError('unauthenticated');
      // Signed out of this provider meanwhile: the fresh credential is neither stored nor used.
      const held = written.record.providers[id];
      if (!held) throw new AppError('provider_not_connected', { provider: id });
      return { session: written, credential: held };
    } finally {
      clearTimeout(deadline);
      clearInterval(heartbeat);
      await repository.backend.releaseLock(lock, token).catch(() => undefined);
    }
  };

  const renewOnce = async (
    session: LoadedSession,
    id: ProviderId,
    adapter: ProviderAdapter,
    used: Credential,
  ) => {
    const renew = adapter.renew?.bind(adapter);
    if (!renew) throw expired(id);
    // Someone else's renewal is visible as a different credential in the store.
    const newer = (stored: Renewed) =>
      isSameCredential(adapter, stored.credential, used) ? undefined : stored;
    try {
      return await underLock(session, id, adapter, newer, (current, context) => renew(current, context));
    } catch (error) {
      if (!(error instanceof AppError) || error.code !== 'invalid_credentials') throw error;
      // The upstream refused renewal: this provider is signed out (unless it changed meanwhile).
      const stored = await repository.load(session.id);
      const current = stored?.record.providers[id];
      await disconnectProvider(repository, session.id, adapter, current ?? used);
      audit(logger, {
        event: 'upstream_session_expired',
        outcome: 'failure',
        provider: id,
        sessionId: session.id,
      });
      throw expired(id);
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
    replace(session, id, change) {
      const adapter = adapterFor(deps.adapters, id);
      if (!adapter) return Promise.reject(new AppError('provider_not_configured', { provider: id }));
      return underLock(session, id, adapter, () => undefined, change);
    },
    async excludingRenewals(sessionId, providers, work) {
      const token = randomUUID();
      const held: string[] = [];
      try {
        // In one order for every caller, so two sign-ins on one session cannot wait on each other.
        for (const id of [...providers].sort()) {
          const lock = lockOf(sessionId, id);
          if (!(await acquire(lock, token))) throw new AppError('upstream_timeout', { provider: id });
          held.push(lock);
        }
        return await work();
      } finally {
        await Promise.all(
          held.map((lock) => repository.backend.releaseLock(lock, token).catch(() => undefined)),
        );
      }
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
    forgetCredential(record, adapter.id);
    return hasProviders(record) ? record : null;
  });
}
