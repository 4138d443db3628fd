import { createHmac } from 'node:crypto';
import type { LoadedSession, SessionRepository } from './session-repository.js';

/** One session as the inventory shows it: a handle in place of its id, and no secret. */
export interface SessionSummary {
  id: string;
  device: string;
  createdAt: string;
  lastSeenAt: string;
  providers: string[];
}

/**
 * The public handle of a session id: a keyed hash, so the inventory never shows an id (which is what
 * the cookie carries), and nobody without the signing secret can link a handle to a session. The label
 * keeps it apart from the cookie's own signature, an HMAC of the bare id under the same secret.
 */
export function createSessionHandles(secret: string): (sessionId: string) => string {
  return (sessionId) =>
    createHmac('sha256', secret)
      .update(`billfold session handle\n${sessionId}`)
      .digest('base64url')
      .slice(0, 22);
}

/**
 * The live sessions listed under any of `indexKeys` whose record still carries that identity, at
 * most the newest `limit` members of each index (one store read per member). A member whose session
 * is gone, or no longer signed in as that identity, is dropped from the index.
 */
export async function findSessions(
  repository: SessionRepository,
  indexKeys: readonly string[],
  limit: number,
): Promise<LoadedSession[]> {
  const found = new Map<string, LoadedSession>();
  await Promise.all(
    indexKeys.map(async (indexKey) => {
      const members = await repository.index.newest(indexKey, limit);
      await Promise.all(
        members.map(async (sessionId) => {
          const session = await repository.load(sessionId);
          if (session && repository.index.keysOf(session.record).includes(indexKey))
            found.set(sessionId, session);
          else await repository.index.remove(indexKey, sessionId);
        }),
      );
    }),
  );
  return [...found.values()];
}

/** What the inventory shows of a session. */
export function summarizeSession(
  session: LoadedSession,
  handleOf: (sessionId: string) => string,
): SessionSummary {
  const { record } = session;
  return {
    id: handleOf(session.id),
    device: record.device ?? 'unknown',
    createdAt: new Date(record.createdAt).toISOString(),
    lastSeenAt: new Date(record.lastSeenAt).toISOString(),
    providers: Object.keys(record.providers),
  };
}
