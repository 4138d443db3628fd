import type { Request, RequestHandler } from 'express';
import session from 'express-session';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import type { SessionRecord } from '../session/session-record.js';
import { recordOf, type SessionStore } from '../session/session-store.js';
import { contextOf } from './request-context.js';

/** The session cookie's attributes (the `session` scheme in /openapi.json): httpOnly, SameSite=Strict, Path=/, no Domain, no expiry. */
export function sessionCookieOptions(config: Config) {
  return { httpOnly: true, secure: config.session.cookieSecure, sameSite: 'strict', path: '/' } as const;
}

/**
 * express-session on /auth: it reads and signs the cookie (SESSION_SECRETS, newest first, any of them
 * accepted), loads the session from the store, and saves it. `resave: false` and
 * `saveUninitialized: false` keep it from writing an unchanged or empty session; a save it does make
 * is a compare-and-set in the store, so it never writes a stale copy. The relay reads sessions itself.
 */
export function createSessionMiddleware(config: Config, store: SessionStore): RequestHandler {
  const middleware = session({
    name: config.session.cookieName,
    secret: [...config.session.secrets],
    store,
    cookie: sessionCookieOptions(config),
    resave: false,
    saveUninitialized: false,
    rolling: false,
    unset: 'keep',
  });
  return (req, res, next) => {
    middleware(req, res, (error?: unknown) => {
      if (hasStoredSession(req)) contextOf(req).sessionId = req.sessionID;
      next(error);
    });
  };
}

/** The record of the request's stored session (express-session gives every request an unsaved one). */
export function sessionRecordOf(req: Request): SessionRecord | undefined {
  return recordOf(req.session);
}

/** Whether the request carries a stored session. */
export function hasStoredSession(req: Request): boolean {
  return sessionRecordOf(req) !== undefined;
}

/**
 * Puts `record` under a brand-new session id (express-session's `regenerate`, which ends the old
 * id) and saves it before any cookie can be set. On failure the request is left with no session,
 * so express-session sets no cookie.
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

/** Ends the request's session through express-session; the record as it was when it ended. */
export function destroySession(req: Request): Promise<SessionRecord | undefined> {
  return new Promise((resolve, reject) => {
    req.session.destroy((error: unknown, ended?: SessionRecord) =>
      error ? reject(asError(error)) : resolve(ended),
    );
  });
}

/**
 * Detaches the session from the request (express-session's documented `unset`): it then neither
 * saves it nor sets a cookie.
 */
export function forgetSession(req: Request): void {
  (req as { session: unknown }).session = null;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
