import type { Request, RequestHandler } from 'express';
import session from 'express-session';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { RepositorySessionStore } from '../session/session-store.js';
import type { SessionRecord } from '../session/session-record.js';
import type { SessionRepository } from '../session/session-repository.js';
import { contextOf } from './request-context.js';

/** The session cookie's attributes (SPEC section 3): httpOnly, SameSite=Strict, Path=/, no Domain, no expiry. */
export function sessionCookieOptions(config: Config) {
  return { httpOnly: true, secure: config.session.cookieSecure, sameSite: 'strict', path: '/' } as const;
}

/** express-session over the repository; mounted on /auth only (the relay reads sessions itself). */
export function createSessionMiddleware(config: Config, repository: SessionRepository): RequestHandler {
  const cookie = sessionCookieOptions(config);
  const middleware = session({
    name: config.session.cookieName,
    secret: [...config.session.secrets],
    store: new RepositorySessionStore(repository, cookie),
    cookie,
    resave: false,
    saveUninitialized: false,
    rolling: false,
    unset: 'keep',
  });
  return (req, res, next) => {
    middleware(req, res, (error?: unknown) => {
      if (req.session?.createdAt !== undefined) contextOf(req).sessionId = req.sessionID;
      next(error);
    });
  };
}

/** Whether the request carries a stored session (express-session gives every request an unsaved one). */
export function hasStoredSession(req: Request): boolean {
  return req.session?.createdAt !== undefined;
}

/**
 * Puts `record` under a brand-new session id and saves it before any cookie can be set. On failure the
 * request is left with no session, so express-session sets no cookie.
 */
export async function saveAsNewSession(req: Request, record: SessionRecord): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) =>
      req.session.regenerate((error: unknown) => (error ? reject(asError(error)) : resolve())),
    );
    Object.assign(req.session, record);
    await new Promise<void>((resolve, reject) =>
      req.session.save((error: unknown) => (error ? reject(asError(error)) : resolve())),
    );
  } catch (error) {
    forgetSession(req);
    throw error instanceof AppError ? error : new AppError('session_store_unavailable', { cause: error });
  }
}

/** Detaches the session from the request: express-session then neither saves it nor sets a cookie. */
export function forgetSession(req: Request): void {
  (req as { session: unknown }).session = null;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
