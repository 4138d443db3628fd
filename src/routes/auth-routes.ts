import express, { type Request, type Response, type Router } from 'express';
import type { z } from 'zod';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { audit, type Logger } from '../logger.js';
import { createAttemptLimiter, createLoginLimiter } from '../middleware/rate-limits.js';
import { contextOf } from '../middleware/request-context.js';
import {
  destroySession,
  forgetSession,
  hasStoredSession,
  saveAsNewSession,
  sessionCookieOptions,
} from '../middleware/session-middleware.js';
import {
  forgetCredential,
  forgetTrustedDevice,
  hasProviders,
  type SessionRecord,
  type StoredCredential,
} from '../session/session-record.js';
import type { SessionRepository } from '../session/session-repository.js';
import type { StoreKeyNames } from '../session/store-key-names.js';
import { resolveProvider, type AdapterRegistry } from '../upstream/provider-adapter.js';
import type { CredentialRenewer } from '../upstream/credential-renewer.js';
import { createSessionIdReader } from '../session/session-cookie.js';
import type { ProviderModule, ProviderRouteEdge } from '../upstream/provider-module.js';
import { enforceSessionCap, logoutEveryUpstream, logoutUpstream } from '../upstream/session-revocation.js';
import { buildSessionView } from './session-view.js';

/** What the auth routes are built from. */
export interface AuthRouteDeps {
  config: Config;
  /** The provider modules: each one's login name and budgets, and its own routes. */
  modules: readonly ProviderModule[];
  adapters: AdapterRegistry;
  repository: SessionRepository;
  clock: Clock;
  logger: Logger;
  keyNames: StoreKeyNames;
  /** A provider's route that rewrites a credential (Billbora's organization switch) runs under the renewal lock. */
  renewer: CredentialRenewer;
}

/** Validates a JSON body against a schema; the message names the fields, never their values. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const fields = [...new Set(parsed.error.issues.map((issue) => issue.path.join('.') || 'body'))];
  throw new AppError('invalid_request', { message: `Invalid or missing fields: ${fields.join(', ')}.` });
}

/** The session record express-session loaded for this request, when it has a stored one. */
function storedRecord(req: Request): SessionRecord | undefined {
  return hasStoredSession(req) ? (req.session as unknown as SessionRecord) : undefined;
}

/**
 * The routes of each provider's own (BILL's MFA step-up, Billbora's organization switch), lent the
 * same body validation, session lookup, request context, view and attempt limits as these.
 */
export function createProviderRouters(deps: AuthRouteDeps): Router[] {
  const { config, adapters, repository } = deps;
  const edge: ProviderRouteEdge = {
    parseBody,
    storedSession: storedRecord,
    begin(req, provider) {
      const context = contextOf(req);
      context.provider = provider;
      return { requestId: context.id };
    },
    view: (record) => buildSessionView(record, adapters, repository.limits),
    attempts: (name, provider) =>
      createAttemptLimiter(repository.backend, deps.keyNames, {
        name,
        limit: config.rateLimits.loginFailuresPerUser,
        windowMs: config.rateLimits.loginWindowMs,
        provider,
      }),
  };
  return deps.modules.flatMap((module) =>
    module.createRoutes ? [module.createRoutes({ ...deps, adapter: adapters[module.id], edge })] : [],
  );
}

/** Auth routes take JSON bodies only; a body of any other type is a 415 (body-less POSTs are fine). */
export function requireJsonBody(req: Request, _res: Response, next: (error?: unknown) => void): void {
  const hasBody =
    Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  next(hasBody && !req.is('application/json') ? new AppError('unsupported_media_type') : undefined);
}

/** POST /auth/:provider/login, POST /auth/:provider/logout and POST /auth/logout. */
export function createAuthRouter(deps: AuthRouteDeps): Router {
  const { config, adapters, repository, clock, logger } = deps;
  const moduleOf = (provider: string) => deps.modules.find((module) => module.id === provider);
  const loginLimiter = createLoginLimiter(
    repository.backend,
    config.rateLimits,
    deps.keyNames,
    (provider) => {
      const module = moduleOf(provider);
      const slice = config.providers[provider];
      return module?.loginBudgets && slice ? module.loginBudgets(slice) : [];
    },
  );
  const router = express.Router();
  // The id a request's cookie names when express-session found no session under it (it may have moved).
  const readSessionId = createSessionIdReader(config.session.cookieName, config.session.secrets);
  const movedAway = async (req: Request) => {
    const carried = hasStoredSession(req) ? undefined : readSessionId(req.headers.cookie);
    return carried !== undefined && (await repository.moves.wasMoved(carried));
  };
  const sessionEnded = (req: Request, provider: string) => {
    audit(logger, {
      event: 'login',
      outcome: 'failure',
      provider,
      sessionId: hasStoredSession(req) ? req.sessionID : readSessionId(req.headers.cookie),
      requestId: contextOf(req).id,
      clientAddress: contextOf(req).clientAddress,
      reason: 'session_ended',
    });
    return new AppError('unauthenticated', {
      provider,
      message:
        'The session this sign-in was joining has moved or ended (a sign-in or sign-out in another tab); sign in again.',
    });
  };
  const cookie = sessionCookieOptions(config);
  const clearCookie = (res: Response) => res.clearCookie(config.session.cookieName, cookie);
  const view = (record: SessionRecord | undefined) => buildSessionView(record, adapters, repository.limits);

  router.post('/:provider/login', async (req, res) => {
    const context = contextOf(req);
    const adapter = resolveProvider(adapters, req.params.provider);
    context.provider = adapter.id;
    const input = parseBody(adapter.loginSchema, req.body);
    // Sent with an id a sign-in in another tab has just moved: joining nothing, it would start a
    // second session beside the one the browser now holds.
    if (await movedAway(req)) throw sessionEnded(req, adapter.id);
    const attempt = await loginLimiter.begin(
      req.ip ?? 'unknown',
      adapter.id,
      moduleOf(adapter.id)?.loginName(input),
    );
    let credential: StoredCredential;
    try {
      credential = await adapter.login(input, storedRecord(req));
    } catch (error) {
      const refused = error instanceof AppError && error.code === 'invalid_credentials';
      await (refused ? attempt.failed() : attempt.abandoned());
      audit(logger, {
        event: 'login',
        outcome: 'failure',
        provider: adapter.id,
        // The session it was to join, when there is one.
        sessionId: hasStoredSession(req) ? req.sessionID : undefined,
        requestId: context.id,
        clientAddress: context.clientAddress,
        reason: error instanceof AppError ? error.code : 'internal_error',
      });
      throw error;
    }

    await attempt.succeeded();
    // The old id ends before the new one exists. What the old session held at that instant moves to
    // the new id; express-session's regenerate then finds it already gone. No renewal runs at that
    // instant: one in flight lands first (and moves), one asked for meanwhile finds the old id gone.
    let latest: SessionRecord | undefined;
    let record: SessionRecord;
    try {
      const joined = storedRecord(req);
      latest = joined
        ? await deps.renewer.excludingRenewals(req.sessionID, Object.keys(joined.providers), () =>
            repository.destroy(req.sessionID),
          )
        : undefined;
      // The session this sign-in was joining ended while it ran: a sign-in beside it moved it to a
      // new id, or a sign-out or revocation ended it. A fresh session here would split the browser's
      // sign-ins over two sessions (the cookie set last wins) and keep a credential nobody holds.
      if (joined && !latest) throw sessionEnded(req, adapter.id);
      const now = clock.now();
      record = {
        // What the session keeps beyond credentials (BILL's trusted device) carries over to the new id.
        ...latest,
        createdAt: latest?.createdAt ?? now,
        lastSeenAt: now,
        providers: { ...latest?.providers, [adapter.id]: credential },
        device: (req.headers['user-agent'] ?? 'unknown').slice(0, 120),
      };
      const joinedId = req.sessionID;
      await saveAsNewSession(req, record);
      if (latest) {
        // Best effort: without it, a request still on its way with the old id meets no session.
        await repository.moves.record(joinedId, req.sessionID).catch(() => undefined);
      }
    } catch (error) {
      // The upstream session just granted is kept nowhere, nor (once the old id has ended) what the
      // old session held: sign them all out upstream, and leave no session or cookie behind.
      forgetSession(req);
      void logoutUpstream(adapter, credential, logger);
      void logoutEveryUpstream(adapters, latest?.providers, logger);
      throw error;
    }
    context.sessionId = req.sessionID;
    const replaced = latest?.providers[adapter.id];
    if (replaced) void logoutUpstream(adapter, replaced, logger);
    await enforceSessionCap(
      deps,
      record,
      req.sessionID,
      config.session.maxSessionsPerIdentity,
      context.id,
    ).catch((error: unknown) => {
      // The cap is enforced again at the identity's next sign-in; this one stands.
      logger.warn({ code: (error as AppError).code }, 'session cap not enforced');
    });
    audit(logger, {
      event: 'login',
      outcome: 'success',
      provider: adapter.id,
      sessionId: req.sessionID,
      requestId: context.id,
      clientAddress: context.clientAddress,
    });
    res.json(view(record));
  });

  router.post('/:provider/logout', async (req, res) => {
    const context = contextOf(req);
    const adapter = resolveProvider(adapters, req.params.provider);
    context.provider = adapter.id;
    if (!hasStoredSession(req)) throw new AppError('unauthenticated');
    let removed: StoredCredential | undefined;
    const after = await repository.update(req.sessionID, (record) => {
      removed = record.providers[adapter.id];
      if (!removed) return undefined;
      forgetCredential(record, adapter.id);
      forgetTrustedDevice(record, adapter.id);
      return hasProviders(record) ? record : null;
    });
    if (removed) await logoutUpstream(adapter, removed, logger);
    audit(logger, {
      event: 'logout',
      outcome: 'success',
      provider: adapter.id,
      sessionId: req.sessionID,
      requestId: context.id,
      clientAddress: context.clientAddress,
    });
    if (!after) {
      forgetSession(req);
      clearCookie(res);
    }
    res.json(view(after?.record));
  });

  router.post('/logout', async (req, res) => {
    const context = contextOf(req);
    // Sent with an id a sign-in in another tab has just moved: the sign-out ends where it went, or
    // it would clear the browser's cookie and leave that session signed in upstream, held by nobody.
    const carried = hasStoredSession(req) ? undefined : readSessionId(req.headers.cookie);
    const movedTo = carried === undefined ? undefined : await repository.moves.follow(carried);
    if (hasStoredSession(req) || movedTo !== undefined) {
      const sessionId = movedTo ?? req.sessionID;
      const ended = movedTo === undefined ? await destroySession(req) : await repository.destroy(movedTo);
      // Where a move led to a session already ended, this sign-out ended nothing.
      if (ended || movedTo === undefined) {
        audit(logger, {
          event: 'logout',
          outcome: 'success',
          sessionId,
          requestId: context.id,
          clientAddress: context.clientAddress,
        });
      }
      await logoutEveryUpstream(adapters, ended?.providers, logger);
    }
    forgetSession(req);
    clearCookie(res);
    res.status(204).end();
  });

  return router;
}
