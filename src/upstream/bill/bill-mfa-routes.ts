import { randomUUID } from 'node:crypto';
import express, { type Request, type Router } from 'express';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { audit } from '../../logger.js';
import type { SessionRecord } from '../../session/session-record.js';
import { disconnectProvider } from '../credential-renewer.js';
import { isSameCredential } from '../provider-adapter.js';
import type { ProviderRouteDeps } from '../provider-module.js';
import {
  billPersonalIdentity,
  billTrustedDevice,
  type BillAdapter,
  type BillCredential,
  type BillMfa,
  type BillTrustedDevice,
} from './bill-adapter.js';
import { BILL_REMEMBER_ME_MS } from './bill-v3-adapter.js';

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
  requestId: string;
}

/**
 * `POST /auth/bill/mfa/challenge` and `POST /auth/bill/mfa/validate`: BILL v3's MFA step-up for the
 * signed-in BILL user. The rememberMeId BILL issues stays sealed in the session, never sent to the
 * client; a later BILL sign-in in the session offers it, so that session is trusted without a code.
 */
export function createBillMfaRouter(deps: ProviderRouteDeps<BillAdapter>): Router {
  const { repository, clock, logger, edge } = deps;
  const router = express.Router();
  // Codes are short: every guess counts before BILL sees it, per BILL user, like failed logins. Each
  // challenge texts the user's phone, so asking for codes is limited the same way.
  const attempts = edge.attempts('mfa:bill', 'bill');
  const challenges = edge.attempts('mfa-challenge:bill', 'bill');
  // Counted per BILL user however the name is spelled.
  const identityOf = (credential: BillCredential) =>
    billPersonalIdentity(credential) ?? `${credential.orgId}\n${credential.user}`;

  const stepUpOf = (req: Request): StepUp => {
    const { requestId } = edge.begin(req, 'bill');
    const { adapter } = deps;
    if (!adapter) throw new AppError('provider_not_configured', { provider: 'bill' });
    const { mfa } = adapter;
    if (!mfa)
      throw new AppError('not_found', {
        message: 'The BILL MFA step-up needs BILL API v3.',
        provider: 'bill',
      });
    const record = edge.storedSession(req);
    if (!record) throw new AppError('unauthenticated');
    // Stored under `bill` only by this provider's adapter.
    const credential = record.providers.bill as BillCredential | undefined;
    if (!credential) throw new AppError('provider_not_connected', { provider: 'bill' });
    if (credential.mode === 'sync-token') {
      throw new AppError('invalid_request', {
        provider: 'bill',
        message: 'A BILL sync-token session cannot use MFA; sign in to BILL with a password.',
      });
    }
    return { adapter, mfa, record, credential, requestId };
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
          requestId: stepUp.requestId,
        });
      }
      throw error;
    }
  };

  router.post('/bill/mfa/challenge', async (req, res) => {
    const stepUp = stepUpOf(req);
    edge.parseBody(billMfaChallengeSchema, req.body ?? {});
    await challenges.take(identityOf(stepUp.credential));
    const challengeId = await upstream(req, stepUp, () => stepUp.mfa.challenge(stepUp.credential));
    res.json({ challengeId });
  });

  router.post('/bill/mfa/validate', async (req, res) => {
    const stepUp = stepUpOf(req);
    const { adapter, record, credential } = stepUp;
    const body = edge.parseBody(billMfaValidateSchema, req.body);
    const identity = identityOf(credential);
    await attempts.take(identity);
    const rememberMe = body.rememberMe === true;
    // One device name per billfold session, so BILL's list of trusted devices shows one entry for it.
    const device = billTrustedDevice(record)?.device ?? `billfold-${randomUUID()}`;
    const outcome = (result: 'success' | 'failure', reason?: string) =>
      audit(logger, {
        event: 'mfa_step_up',
        outcome: result,
        provider: 'bill',
        sessionId: req.sessionID,
        requestId: stepUp.requestId,
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
      const current = stored.providers.bill as BillCredential | undefined;
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
        const kept: BillTrustedDevice = {
          rememberMeId,
          device,
          user: current.user,
          orgId: current.orgId,
          until: trusted.trustedUntil,
        };
        stored.trustedDevices = { ...stored.trustedDevices, bill: kept };
      }
      stored.providers.bill = trusted;
      return stored;
    });
    const stored = after?.record.providers.bill as BillCredential | undefined;
    if (!after || !stored?.trusted || !isSameCredential(adapter, stored, credential))
      throw new AppError('provider_not_connected', { provider: 'bill' });
    outcome('success');
    res.json(edge.view(after.record));
  });

  return router;
}
