import type { AppError } from '../errors.js';
import { audit, type Logger } from '../logger.js';
import { findSessions } from '../session/session-inventory.js';
import type { ProviderCredentials, SessionRecord, StoredCredential } from '../session/session-record.js';
import type { LoadedSession, SessionRepository } from '../session/session-repository.js';
import { adapterFor, type AdapterRegistry, type ProviderAdapter } from './provider-adapter.js';

/**
 * Signs one credential out upstream, where the upstream has a logout. Best effort: billfold has
 * already forgotten the credential either way, so a failure is logged and nothing more.
 */
export async function logoutUpstream(
  adapter: ProviderAdapter,
  credential: StoredCredential,
  logger: Logger,
): Promise<void> {
  try {
    await adapter.logout(credential);
  } catch (error) {
    logger.warn({ provider: adapter.id, code: (error as AppError).code }, 'upstream logout failed');
  }
}

/** Signs every credential of an ended session out upstream, side by side. */
export async function logoutEveryUpstream(
  adapters: AdapterRegistry,
  providers: ProviderCredentials | undefined,
  logger: Logger,
): Promise<void> {
  await Promise.all(
    Object.keys(adapters).map((id) => {
      const adapter = adapterFor(adapters, id);
      const credential = providers?.[id];
      return adapter && credential ? logoutUpstream(adapter, credential, logger) : Promise.resolve();
    }),
  );
}

/** What revoking a session needs. */
export interface RevocationDeps {
  repository: SessionRepository;
  adapters: AdapterRegistry;
  logger: Logger;
}

/**
 * Ends sessions someone else asked to end (their owner from another device, or an operator): each is
 * deleted from the store, which every instance reads on every request, so it is dead everywhere at
 * once; then signed out upstream, and audited. Returns how many were still there to end.
 */
export async function revokeSessions(
  deps: RevocationDeps,
  sessions: readonly LoadedSession[],
  by: 'user' | 'operator' | 'session_limit',
  requestId: string,
  clientAddress?: string,
): Promise<number> {
  const ended = await Promise.all(
    sessions.map(async (session) => {
      const record = await deps.repository.destroy(session.id);
      if (!record) return false;
      audit(deps.logger, {
        event: 'session_revoked',
        outcome: 'success',
        sessionId: session.id,
        requestId,
        clientAddress,
        reason: by,
      });
      await logoutEveryUpstream(deps.adapters, record.providers, deps.logger);
      return true;
    }),
  );
  return ended.filter(Boolean).length;
}

/**
 * Holds every personal identity of `record` to `max` live sessions: past it, the oldest sessions
 * (by when they were created) end, with upstream logout, audited as `session_limit`. The session
 * just signed in (`keep`) is never the one ended. Reads are bounded: an index is only listed in full
 * when it holds more than `max`, and then only its newest members up to what it holds past `max`.
 */
export async function enforceSessionCap(
  deps: RevocationDeps,
  record: SessionRecord,
  keep: string,
  max: number,
  requestId: string,
): Promise<number> {
  const { index } = deps.repository;
  let ended = 0;
  for (const indexKey of index.keysOf(record)) {
    const over = await index.overflow(indexKey, max);
    if (over.length === 0) continue;
    // Members whose session already ended (idle, signed out) are dropped on the way, not counted.
    const live = await findSessions(deps.repository, [indexKey], max + over.length);
    if (live.length <= max) continue;
    const oldest = live
      .filter((session) => session.id !== keep)
      .sort((a, b) => a.record.createdAt - b.record.createdAt)
      .slice(0, live.length - max);
    ended += await revokeSessions(deps, oldest, 'session_limit', requestId);
  }
  return ended;
}
