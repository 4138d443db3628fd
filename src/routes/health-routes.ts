import express, { type Router } from 'express';
import type { SessionRepository } from '../session/session-repository.js';

/** /healthz (the process serves) and /readyz (the session store answers); both hold no secrets. */
export function createHealthRouter(repository: SessionRepository): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    await repository.ping();
    res.json({ status: 'ready' });
  });
  return router;
}
