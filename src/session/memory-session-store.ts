import session, { type SessionData } from 'express-session';
import type { MemoryBackend } from './memory-backend.js';
import type { SessionRecord } from './session-record.js';
import { createSessionRepository, type SessionRepository } from './session-repository.js';
import {
  createExpressSessionBridge,
  type ExpressSessionBridge,
  type SessionStore,
  type SessionStoreOptions,
} from './session-store.js';

/**
 * The embedded session store: the same guarantees as the Redis one behind the same interface, its
 * records in the embedded backend's bounded map. billfold's own, since no maintained in-memory
 * express-session store offers compare-and-set.
 */
export class MemorySessionStore extends session.Store implements SessionStore {
  readonly repository: SessionRepository;
  private readonly bridge: ExpressSessionBridge;

  constructor(options: SessionStoreOptions & { backend: MemoryBackend }) {
    super();
    const { backend } = options;
    const key = (sid: string) => `s:${sid}`;
    this.repository = createSessionRepository({
      ...options,
      records: {
        read: (sid) => backend.get(key(sid)),
        compareAndSet: (sid, expected, value, ttlMs) =>
          backend.compareAndSet(key(sid), expected, value, ttlMs),
        take: (sid) => backend.take(key(sid)),
        ping: () => backend.ping(),
      },
    });
    this.bridge = createExpressSessionBridge(this.repository, options.cookie);
  }

  override get(sid: string, callback: (error?: unknown, data?: SessionData | null) => void): void {
    this.bridge.get(sid, callback);
  }

  override set(sid: string, data: SessionData, callback?: (error?: unknown) => void): void {
    this.bridge.set(sid, data, callback);
  }

  override destroy(sid: string, callback?: (error?: unknown, ended?: SessionRecord) => void): void {
    this.bridge.destroy(sid, callback);
  }

  override createSession(req: Parameters<session.Store['createSession']>[0], data: SessionData) {
    return this.bridge.adopt(super.createSession(req, data), data);
  }
}
