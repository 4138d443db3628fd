import { RedisStore } from 'connect-redis';
import type session from 'express-session';
import type { SessionData } from 'express-session';
import type { SessionRecord } from './session-record.js';
import type { RedisConnection } from './redis-connection.js';
import type { SealedRecords } from './session-backend.js';
import { createSessionRepository, type SessionRepository } from './session-repository.js';
import {
  createExpressSessionBridge,
  type ExpressSessionBridge,
  type SessionStoreOptions,
} from './session-store.js';

// One key per script, so it is slot-safe on Redis Cluster.
const COMPARE_AND_SET = `
local current = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and not current) or current == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
  return 1
end
return 0`;

/** What the Redis session store is built from. */
export interface RedisSessionStoreOptions extends SessionStoreOptions {
  connection: RedisConnection;
  /** REDIS_KEY_PREFIX; records live under `<prefix>s:<session id>`. */
  keyPrefix: string;
}

/**
 * connect-redis's RedisStore with billfold's guarantees added: its client, key layout, deletes and
 * enumeration (`ids`, `length`, `all`, `clear` across every cluster master) are connect-redis's;
 * billfold seals each record bound to its session id, turns every write into a compare-and-set,
 * and bounds every call by STORE_TIMEOUT_MS. `touch` is switched off by connect-redis's own
 * `disableTouch`: the idle timer lives in the record and slides through compare-and-set, so that
 * reading GET /auth/session never extends it.
 */
export class RedisSessionStore extends RedisStore {
  readonly repository: SessionRepository;
  private readonly bridge: ExpressSessionBridge;
  private readonly ready: () => Promise<void>;
  private readonly connection: RedisConnection;

  constructor(options: RedisSessionStoreOptions) {
    super({ client: options.connection.client, prefix: `${options.keyPrefix}s:`, disableTouch: true });
    this.ready = options.connection.ready;
    this.connection = options.connection;
    const records: SealedRecords = {
      read: (sid) => this.readRecord(sid),
      ...(options.connection.sessionCache && {
        cached: (sid: string) => options.connection.sessionCache?.peek(this.prefix + sid),
      }),
      compareAndSet: (sid, expected, value, ttlMs) => this.compareAndSetRecord(sid, expected, value, ttlMs),
      take: (sid) => this.takeRecord(sid),
      ping: () => options.connection.ping(),
    };
    this.repository = createSessionRepository({ ...options, records });
    this.bridge = createExpressSessionBridge(this.repository, options.cookie);
  }

  /**
   * The stored value of a session, through connect-redis's client and key: from the process's session
   * cache when SESSION_CACHE is on and Redis has not said it changed (see session-cache.ts).
   */
  protected async readRecord(sid: string): Promise<string | null> {
    await this.ready();
    return this.client.get(this.prefix + sid);
  }

  /** The compare-and-set every write is: one script on the session's one key. */
  protected async compareAndSetRecord(
    sid: string,
    expected: string | null,
    value: string | null,
    ttlMs: number,
  ): Promise<boolean> {
    await this.ready();
    const key = this.prefix + sid;
    const args = [expected ?? '', value ?? '', String(Math.max(1, Math.ceil(ttlMs)))];
    try {
      // With REDIS_MIN_REPLICAS_ACK, a login, renewal, logout or revocation counts only once replicas
      // hold it, so a failover can neither lose it nor bring back what it ended.
      const reply = this.connection.acknowledges
        ? await this.connection.durably(key, ['EVAL', COMPARE_AND_SET, '1', key, ...args])
        : await this.client.eval(COMPARE_AND_SET, { keys: [key], arguments: args });
      return reply === 1;
    } finally {
      // Redis does not tell the connection that wrote (NOLOOP); a write that failed may still have landed.
      this.connection.sessionCache?.forget(key);
    }
  }

  /** Ends a session: GETDEL, where connect-redis's own destroy (DEL) would not say what it ended. */
  protected async takeRecord(sid: string): Promise<string | null> {
    await this.ready();
    const key = this.prefix + sid;
    try {
      if (this.connection.acknowledges)
        return (await this.connection.durably(key, ['GETDEL', key])) as string | null;
      return await this.client.getDel(key);
    } finally {
      this.connection.sessionCache?.forget(key);
    }
  }

  override get(sid: string, callback: (error?: unknown, data?: SessionData | null) => void): Promise<void> {
    this.bridge.get(sid, callback);
    return Promise.resolve();
  }

  override set(sid: string, data: SessionData, callback?: (error?: unknown) => void): Promise<void> {
    this.bridge.set(sid, data, callback);
    return Promise.resolve();
  }

  override destroy(sid: string, callback?: (error?: unknown, ended?: SessionRecord) => void): Promise<void> {
    this.bridge.destroy(sid, callback);
    return Promise.resolve();
  }

  override async clear(callback?: (error?: unknown) => void): Promise<void> {
    // connect-redis deletes on this connection, which Redis does not tell about its own writes.
    try {
      await super.clear();
      callback?.();
    } catch (error) {
      callback?.(error);
    } finally {
      this.connection.sessionCache?.clear(false);
    }
  }

  override createSession(req: Parameters<session.Store['createSession']>[0], data: SessionData) {
    return this.bridge.adopt(super.createSession(req, data), data);
  }
}
