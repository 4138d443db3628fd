import { randomUUID } from 'node:crypto';
import express, { type Request, type Router } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { audit } from '../logger.js';
import { createAttemptLimiter } from '../middleware/rate-limits.js';
import { contextOf } from '../middleware/request-context.js';
import { hasStoredSession } from '../middleware/session-middleware.js';
import type { BillCredential, SessionRecord } from '../session/session-record.js';
import { billPersonalIdentity, type BillAdapter, type BillMfa } from '../upstream/bill-adapter.js';
import { BILL_REMEMBER_ME_MS } from '../upstream/bill-v3-adapter.js';
import { disconnectProvider } from '../upstream/credential-renewer.js';
import { isSameCredential } from '../upstream/provider-adapter.js';
import { parseBody, type AuthRouteDeps } from './auth-routes.js';
import { buildSessionView } from './session-view.js';

/** The body of `POST /auth/bill/mfa/challenge`: none, or an empty object. */
export const billMfaChallengeSchema = z.strictObject({});
/** The body of `POST /auth/bill/mfa/validate`. */
export const billMfaValidateSchema = z.strictObject({
  challengeId: z.string().min(1).max(1024),
  token: z.string().min(1).max(64),
  rememberMe: z.boolean().optional(),
});

/** What a step-up works on: the v3 adapter and the session's BILL credential. */
interface StepUp {
  adapter: BillAdapter;
  mfa: BillMfa;
  record: SessionRecord;
  credential: BillCredential;
}

/**
 * `POST /auth/bill/mfa/challenge` and `POST /auth/bill/mfa/validate`: BILL v3's MFA step-up for the
 * signed-in BILL user. The rememberMeId BILL issues stays sealed in the session, never sent to the
 * client; a later BILL sign-in in the session offers it, so that session is trusted without a code.
 */
export function createBillMfaRouter(deps: AuthRouteDeps): Router {
  const { config, adapters, repository, clock, logger, keyNames } = deps;
  const router = express.Router();
  // Codes are short: every guess counts before BILL sees it, per BILL user, like failed logins. Each
  // challenge texts the user's phone, so asking for codes is limited the same way.
  const limitOf = (name: string) =>
    createAttemptLimiter(repository.backend, keyNames, {
      name,
      limit: config.rateLimits.loginFailuresPerUser,
      windowMs: config.rateLimits.loginWindowMs,
      provider: 'bill',
    });
  const attempts = limitOf('mfa:bill');
  const challenges = limitOf('mfa-challenge:bill');
  // Counted per BILL user however the name is spelled.
  const identityOf = (credential: BillCredential) =>
    billPersonalIdentity(credential) ?? `${credential.orgId}\n${credential.user}`;

  const stepUpOf = (req: Request): StepUp => {
    contextOf(req).provider = 'bill';
    const adapter = adapters.bill;
    if (!adapter) throw new AppError('provider_not_configured', { provider: 'bill' });
    const { mfa } = adapter;
    if (!mfa)
      throw new AppError('not_found', {
        message: 'The BILL MFA step-up needs BILL API v3.',
        provider: 'bill',
      });
    if (!hasStoredSession(req)) throw new AppError('unauthenticated');
    const record = req.session as unknown as SessionRecord;
    const credential = record.providers.bill;
    if (!credential) throw new AppError('provider_not_connected', { provider: 'bill' });
    if (credential.mode === 'sync-token') {
      throw new AppError('invalid_request', {
        provider: 'bill',
        message: 'A BILL sync-token session cannot use MFA; sign in to BILL with a password.',
      });
    }
    return { adapter, mfa, record, credential };
  };

  /** Runs a BILL call; a session BILL has ended is signed out here as the relay would. */
  const upstream = async <T>(req: Request, stepUp: StepUp, operation: () => Promise<T>): Promise<T> => {
    try {
      return await operation();
    } catch (error) {
      if (error instanceof AppError && error.code === 'upstream_session_expired') {
        await disconnectProvider(repository, req.sessionID, stepUp.adapter, stepUp.credential);
        audit(logger, {
          event: 'upstream_session_expired',
          outcome: 'failure',
          provider: 'bill',
          sessionId: req.sessionID,
          requestId: contextOf(req).id,
        });
      }
      throw error;
    }
  };

  router.post('/bill/mfa/challenge', async (req, res) => {
    const stepUp = stepUpOf(req);
    parseBody(billMfaChallengeSchema, req.body ?? {});
    await challenges.take(identityOf(stepUp.credential));
    const challengeId = await upstream(req, stepUp, () => stepUp.mfa.challenge(stepUp.credential));
    res.json({ challengeId });
  });

  router.post('/bill/mfa/validate', async (req, res) => {
    const stepUp = stepUpOf(req);
    const { adapter, record, credential } = stepUp;
    const body = parseBody(billMfaValidateSchema, req.body);
    const identity = identityOf(credential);
    await attempts.take(identity);
    const rememberMe = body.rememberMe === true;
    // One device name per billfold session, so BILL's list of trusted devices shows one entry for it.
    const device = record.trustedDevices?.bill?.device ?? `billfold-${randomUUID()}`;
    const outcome = (result: 'success' | 'failure', reason?: string) =>
      audit(logger, {
        event: 'mfa_step_up',
        outcome: result,
        provider: 'bill',
        sessionId: req.sessionID,
        requestId: contextOf(req).id,
        ...(reason && { reason }),
      });
    let rememberMeId: string | undefined;
    try {
      ({ rememberMeId } = await upstream(req, stepUp, () =>
        stepUp.mfa.validate(credential, {
          challengeId: body.challengeId,
          token: body.token,
          rememberMe,
          device,
          machineName: record.device ?? 'billfold',
        }),
      ));
    } catch (error) {
      outcome('failure', error instanceof AppError ? error.code : 'internal_error');
      throw error;
    }
    await Promise.all([attempts.clear(identity), challenges.clear(identity)]);

    const now = clock.now();
    const after = await repository.update(req.sessionID, (stored) => {
      const current = stored.providers.bill;
      // Signed out of BILL, or signed in again, meanwhile: this step-up was for a session that is gone.
      if (!current || !isSameCredential(adapter, current, credential)) return undefined;
      const trusted: BillCredential = {
        ...current,
        trusted: true,
        lastUsedAt: Math.max(current.lastUsedAt, now),
      };
      delete trusted.trustedUntil;
      if (rememberMeId !== undefined) {
        trusted.trustedUntil = now + BILL_REMEMBER_ME_MS;
        stored.trustedDevices = {
          ...stored.trustedDevices,
          bill: {
            rememberMeId,
            device,
            user: current.user,
            orgId: current.orgId,
            until: trusted.trustedUntil,
          },
        };
      }
      stored.providers.bill = trusted;
      return stored;
    });
    const stored = after?.record.providers.bill;
    if (!after || !stored?.trusted || !isSameCredential(adapter, stored, credential))
      throw new AppError('provider_not_connected', { provider: 'bill' });
    outcome('success');
    res.json(buildSessionView(after.record, adapters, repository.limits));
  });

  return router;
}
