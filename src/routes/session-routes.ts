import express, { type Router } from 'express';
import type { Clock } from '../clock.js';
import type { SessionRepository } from '../session/session-repository.js';
import { sessionRecordOf } from '../middleware/session-middleware.js';
import type { AdapterRegistry } from '../upstream/provider-adapter.js';
import { buildSessionView } from './session-view.js';

/** GET /auth/session: the session view; reading it never extends the idle timer unless `?touch=true`. */
export function createSessionRouter(deps: {
  adapters: AdapterRegistry;
  repository: SessionRepository;
  clock: Clock;
}): Router {
  const { adapters, repository, clock } = deps;
  const router = express.Router();

  router.get('/session', async (req, res) => {
    let record = sessionRecordOf(req);
    if (record && req.query.touch === 'true') {
      const now = clock.now();
      const touched = await repository.update(req.sessionID, (stored) => ({
        ...stored,
        lastSeenAt: Math.max(now, stored.lastSeenAt),
      }));
      record = touched?.record;
    }
    res.json(buildSessionView(record, adapters, repository.limits));
  });

  return router;
}
