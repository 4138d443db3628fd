import session, { type SessionData } from 'express-session';
import { AppError } from '../errors.js';
import type { SessionRecord } from './session-record.js';
import type { SessionRepository } from './session-repository.js';

declare module 'express-session' {
  // The session record's fields live directly on req.session for the Express routes.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface SessionData extends SessionRecord {}
}

type Callback<T = void> = (error?: unknown, value?: T) => void;

/**
 * express-session's view of the repository. It can only create sessions: an existing session is
 * changed through `SessionRepository.update`, never by express-session writing back a whole copy,
 * so a request holding a stale copy cannot overwrite a newer one. The cookie is not stored.
 */
export class RepositorySessionStore extends session.Store {
  /** Session objects this store has written, so express-session's closing save of them is a no-op. */
  private readonly saved = new WeakSet<object>();

  constructor(
    private readonly repository: SessionRepository,
    private readonly cookie: session.CookieOptions,
  ) {
    super();
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.repository
      .load(sid)
      .then(
        (loaded) =>
          callback(
            null,
            loaded ? { ...loaded.record, cookie: { ...this.cookie, originalMaxAge: null } } : null,
          ),
        callback,
      );
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    // express-session saves a regenerated session once more when the response ends. That second save
    // must not write: the session may have been revoked in between, and writing would bring it back.
    if (this.saved.has(data)) {
      callback?.();
      return;
    }
    this.createOnce(sid, data).then(
      () => callback?.(),
      (error: unknown) => callback?.(error),
    );
  }

  private async createOnce(sid: string, data: SessionData): Promise<void> {
    const { cookie: _cookie, ...record } = data;
    if (!(await this.repository.create(sid, record))) {
      throw new AppError('internal_error', { message: 'A session is changed only through the repository.' });
    }
    this.saved.add(data);
  }

  override destroy(sid: string, callback?: Callback): void {
    this.repository.destroy(sid).then(
      () => callback?.(),
      (error: unknown) => callback?.(error),
    );
  }

  /** The idle timer is slid by the repository (throttled), not by express-session on every request. */
  override touch(_sid: string, _data: SessionData, callback?: Callback): void {
    callback?.();
  }

  /** Gives the request a new session and id without destroying the old one: that happens after the new one is saved. */
  override regenerate(req: Parameters<session.Store['regenerate']>[0], callback: Callback): void {
    // express-session adds `generate` to every store it is given.
    (this as unknown as { generate(request: typeof req): void }).generate(req);
    callback();
  }
}
