import express, { type Request, type Router } from 'express';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { contextOf } from '../middleware/request-context.js';
import { forgetSession, sessionCookieOptions, sessionRecordOf } from '../middleware/session-middleware.js';
import { findSessions, summarizeSession } from '../session/session-inventory.js';
import type { LoadedSession } from '../session/session-repository.js';
import { revokeSessions, type RevocationDeps } from '../upstream/session-revocation.js';

/** What the session inventory routes are built from. */
export interface InventoryRouteDeps extends RevocationDeps {
  config: Config;
  handleOf: (sessionId: string) => string;
}

/**
 * `GET /auth/sessions`, `DELETE /auth/sessions/:id` and `DELETE /auth/sessions?others=true`: the
 * caller's own sessions, which are those signed in as at least one of the caller's upstream
 * identities. Anything else does not exist as far as the caller can tell (404).
 */
export function createInventoryRouter(deps: InventoryRouteDeps): Router {
  const { config, repository, handleOf } = deps;
  const router = express.Router();
  const cookie = sessionCookieOptions(config);

  /** The caller's sessions, their own current one first, then by last use. */
  const visibleSessions = async (req: Request): Promise<LoadedSession[]> => {
    const record = sessionRecordOf(req);
    if (!record) throw new AppError('unauthenticated');
    const sessions = await findSessions(
      repository,
      repository.index.keysOf(record),
      config.session.maxSessionsPerIdentity,
    );
    // The caller's own session is listed even if an index missed it (one written before indexes existed).
    if (!sessions.some((session) => session.id === req.sessionID)) {
      const current = await repository.load(req.sessionID);
      if (current) sessions.push(current);
    }
    const rank = (session: LoadedSession) =>
      session.id === req.sessionID ? Infinity : session.record.lastSeenAt;
    return sessions.sort((a, b) => rank(b) - rank(a));
  };

  router.get('/sessions', async (req, res) => {
    const sessions = await visibleSessions(req);
    res.json({
      sessions: sessions.map((session) => {
        const { id, ...summary } = summarizeSession(session, handleOf);
        return { id, current: session.id === req.sessionID, ...summary };
      }),
    });
  });

  router.delete('/sessions/:id', async (req, res) => {
    const sessions = await visibleSessions(req);
    const target = sessions.find((session) => handleOf(session.id) === req.params.id);
    if (!target) throw new AppError('not_found');
    await revokeSessions(deps, [target], 'user', contextOf(req).id, contextOf(req).clientAddress);
    if (target.id === req.sessionID) {
      forgetSession(req);
      res.clearCookie(config.session.cookieName, cookie);
    }
    res.status(204).end();
  });

  router.delete('/sessions', async (req, res) => {
    if (req.query.others !== 'true') {
      throw new AppError('invalid_request', {
        message: 'Revoke one session by its id, or every other one with ?others=true.',
      });
    }
    const sessions = await visibleSessions(req);
    const others = sessions.filter((session) => session.id !== req.sessionID);
    const { id, clientAddress } = contextOf(req);
    res.json({ revoked: await revokeSessions(deps, others, 'user', id, clientAddress) });
  });

  return router;
}
