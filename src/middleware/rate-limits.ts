import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { RateLimitConfig } from '../config.js';
import { AppError } from '../errors.js';
import type { SessionBackend } from '../session/session-backend.js';
import type { ProviderId } from '../upstream/provider-id.js';

// Keys hold hashes, so neither addresses nor usernames sit in the store in the clear.
const digest = (value: string) => createHash('sha256').update(value).digest('base64url').slice(0, 22);

const refuse = (resetInMs: number, provider?: ProviderId) =>
  new AppError('rate_limited', {
    retryAfter: Math.max(1, Math.ceil(resetInMs / 1000)),
    ...(provider && { provider }),
  });

// A counter the store cannot read or write is an outage, never a pass.
const guard = async <T>(operation: () => Promise<T>) => {
  try {
    return await operation();
  } catch (error) {
    throw new AppError('session_store_unavailable', { cause: error });
  }
};

/** Failed-login limits per client address and per username per provider, shared through the store. */
export interface LoginLimiter {
  /** Throws 429 rate_limited (with Retry-After) when either limit is already reached. */
  check(ip: string, provider: ProviderId, username: string | undefined): Promise<void>;
  recordFailure(ip: string, provider: ProviderId, username: string | undefined): Promise<void>;
  /** A successful login clears the username's count (not the address's). */
  recordSuccess(provider: ProviderId, username: string | undefined): Promise<void>;
}

export function createLoginLimiter(backend: SessionBackend, config: RateLimitConfig): LoginLimiter {
  const ipKey = (ip: string) => `rl:login:ip:${digest(ip)}`;
  const userKey = (provider: ProviderId, username: string) =>
    `rl:login:user:${provider}:${digest(username.trim().toLowerCase())}`;

  return {
    async check(ip, provider, username) {
      const [byIp, byUser] = await guard(() =>
        Promise.all([
          backend.readCounter(ipKey(ip)),
          username === undefined ? undefined : backend.readCounter(userKey(provider, username)),
        ]),
      );
      if (byIp.count >= config.loginFailuresPerIp) throw refuse(byIp.resetInMs, provider);
      if (byUser && byUser.count >= config.loginFailuresPerUser) throw refuse(byUser.resetInMs, provider);
    },
    async recordFailure(ip, provider, username) {
      await guard(() =>
        Promise.all([
          backend.increment(ipKey(ip), config.loginWindowMs),
          username === undefined
            ? undefined
            : backend.increment(userKey(provider, username), config.loginWindowMs),
        ]),
      );
    },
    async recordSuccess(provider, username) {
      if (username !== undefined) await guard(() => backend.delete(userKey(provider, username)));
    },
  };
}

/**
 * Attempts at a guessable secret (BILL's MFA codes), limited per key. Each attempt is counted before
 * it is made, so a parallel burst cannot get more than `limit` guesses through.
 */
export interface AttemptLimiter {
  /** Counts one attempt; throws 429 rate_limited (with Retry-After) past the limit. */
  take(key: string): Promise<void>;
  /** A success clears the count. */
  clear(key: string): Promise<void>;
}

export function createAttemptLimiter(
  backend: SessionBackend,
  options: { name: string; limit: number; windowMs: number; provider: ProviderId },
): AttemptLimiter {
  const keyOf = (key: string) => `rl:${options.name}:${digest(key)}`;
  return {
    async take(key) {
      const counter = await guard(() => backend.increment(keyOf(key), options.windowMs));
      if (counter.count > options.limit) throw refuse(counter.resetInMs, options.provider);
    },
    async clear(key) {
      await guard(() => backend.delete(keyOf(key)));
    },
  };
}

/** A per-session limit on relayed calls, shared across instances at the cost of about one store write per session per second. */
export interface RelayLimiter {
  /** Counts the call; throws 429 rate_limited once the session is over its limit. */
  take(sessionId: string): void;
}

interface SessionCount {
  /** Calls counted here and not yet added to the store. */
  pending: number;
  /** The session's total across instances, as of the last flush. */
  shared: number;
  windowEndsAt: number;
  lastFlushAt: number;
  flushing: boolean;
}

const FLUSH_INTERVAL_MS = 1000;

/**
 * Counts calls in memory and adds them to the session's counter in the store at most once a second
 * per session, reading back the total all instances have added. A relayed call therefore
 * costs no store round trip of its own; instances see each other's calls within about a second.
 */
export function createRelayLimiter(
  backend: SessionBackend,
  config: RateLimitConfig,
  clock: Clock,
  onError: (error: unknown) => void,
): RelayLimiter {
  const counts = new Map<string, SessionCount>();
  const key = (sessionId: string) => `rl:relay:${digest(sessionId)}`;

  const flush = (sessionId: string, entry: SessionCount) => {
    const by = entry.pending;
    entry.pending = 0;
    entry.flushing = true;
    entry.lastFlushAt = clock.now();
    backend
      .increment(key(sessionId), config.relayWindowMs, by)
      .then(
        (counter) => {
          entry.shared = counter.count;
          entry.windowEndsAt = clock.now() + counter.resetInMs;
        },
        (error: unknown) => {
          entry.pending += by;
          onError(error);
        },
      )
      .finally(() => {
        entry.flushing = false;
      });
  };

  const forgetEnded = (now: number) => {
    for (const [sessionId, entry] of counts)
      if (entry.windowEndsAt <= now && !entry.flushing) counts.delete(sessionId);
  };

  return {
    take(sessionId) {
      if (config.relayCallsPerSession <= 0) return;
      const now = clock.now();
      let entry = counts.get(sessionId);
      if (!entry || (entry.windowEndsAt <= now && !entry.flushing)) {
        if (counts.size >= 10_000) forgetEnded(now);
        entry = {
          pending: 0,
          shared: 0,
          windowEndsAt: now + config.relayWindowMs,
          lastFlushAt: 0,
          flushing: false,
        };
        counts.set(sessionId, entry);
      }
      if (entry.shared + entry.pending >= config.relayCallsPerSession) throw refuse(entry.windowEndsAt - now);
      entry.pending++;
      if (!entry.flushing && now - entry.lastFlushAt >= FLUSH_INTERVAL_MS) {
        flush(sessionId, entry);
      }
    },
  };
}
