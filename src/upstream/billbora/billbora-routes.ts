import express, { type Router } from 'express';
import { AppError } from '../../errors.js';
import type { ProviderRouteDeps } from '../provider-module.js';
import {
  organizationSwitchSchema,
  type BillboraAdapter,
  type BillboraCredential,
} from './billbora-adapter.js';

/**
 * `POST /auth/billbora/organization`: exchanges the session's Billbora sign-in for another
 * organization's. It runs under the renewal lock, so it never presents a token a renewal spent.
 */
export function createBillboraRouter(deps: ProviderRouteDeps<BillboraAdapter>): Router {
  const { repository, edge } = deps;
  const router = express.Router();
  router.post('/billbora/organization', async (req, res) => {
    edge.begin(req, 'billbora');
    const { adapter } = deps;
    if (!adapter) throw new AppError('provider_not_configured', { provider: 'billbora' });
    if (!edge.storedSession(req)) throw new AppError('unauthenticated');
    const body = edge.parseBody(organizationSwitchSchema, req.body);
    const session = await repository.load(req.sessionID);
    if (!session?.record.providers.billbora)
      throw new AppError('provider_not_connected', { provider: 'billbora' });
    const after = await deps.renewer
      .replace(session, 'billbora', (current, renewal) =>
        adapter.switchOrganization(
          // Stored under `billbora` only by this provider's adapter.
          current as BillboraCredential,
          body.organizationId,
          body.supabaseToken,
          renewal,
        ),
      )
      .catch((error: unknown) => {
        // Signed out of Billbora meanwhile: the switch does not sign it back in.
        if (
          error instanceof AppError &&
          (error.code === 'upstream_session_expired' || error.code === 'unauthenticated')
        )
          throw new AppError('provider_not_connected', { provider: 'billbora' });
        throw error;
      });
    if (!after.session.record.providers.billbora)
      throw new AppError('provider_not_connected', { provider: 'billbora' });
    res.json(edge.view(after.session.record));
  });
  return router;
}
