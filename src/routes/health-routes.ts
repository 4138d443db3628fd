import express, { type Router } from 'express';
import type { SessionRepository } from '../session/session-repository.js';
import type { UpstreamClient } from '../upstream/upstream-client.js';

/**
 * /healthz (the process serves) and /readyz (the session store answers, and no provider's connection
 * pool is exhausted: a 503 naming the providers whose calls queue for a connection). Neither holds a secret.
 */
export function createHealthRouter(
  repository: SessionRepository,
  client: Pick<UpstreamClient, 'poolStatus'>,
): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    await repository.ping();
    const exhausted = Object.entries(client.poolStatus())
      .filter(([, pool]) => pool.exhausted)
      .map(([provider]) => provider);
    if (exhausted.length > 0) {
      res.status(503).json({ status: 'pool_exhausted', providers: exhausted });
      return;
    }
    res.json({ status: 'ready' });
  });
  return router;
}
