import { isIPv6 } from 'node:net';
import type { Clock } from '../clock.js';
import type { RateLimitConfig } from '../config.js';
import { AppError } from '../errors.js';
import type { SessionBackend } from '../session/session-backend.js';
import type { StoreKeyNames } from '../session/store-key-names.js';
import type { AttemptLimiter, LoginBudget } from '../upstream/provider-module.js';
import type { ProviderId } from '../upstream/provider-id.js';

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

/**
 * A username as the login limits count it: every spelling an upstream might take for the same
 * account (case, width, compatibility forms, surrounding space) is one, so no spelling buys more tries.
 */
export function limitedUsername(username: string): string {
  return username.normalize('NFKC').trim().toLowerCase();
}

/**
 * The client address as the login limits count it. One IPv6 user is handed a whole /64, so an
 * address there counts as its /64: otherwise each of its 2^64 addresses would be a new stranger.
 * IPv4-mapped IPv6 is the IPv4 address.
 */
export function limitedAddress(ip: string): string {
  const address = ip.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head = '', tail] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** One login attempt's reservations, settled by how the upstream answered. */
export interface LoginAttempt {
  /** The upstream signed in: the failure reservations are given back, the success one kept. */
  succeeded(): Promise<void>;
  /** The upstream refused the credentials: the failure reservations stand, the success one is given back. */
  failed(): Promise<void>;
  /** Neither (the upstream failed, or the attempt never reached it): all but the BILL budget given back. */
  abandoned(): Promise<void>;
}

/**
 * Login limits, shared through the store and reserved before the upstream is called, so a parallel
 * burst gets no more attempts than the limit: failures per client address; failures per username
 * from one address (a stranger elsewhere cannot lock the user out); failures per username from all
 * addresses, past which the username is slowed to one attempt per interval rather than walled;
 * successes per client address; and BILL's logins per developer key, refused before BILL refuses,
 * of which one address may spend only a share.
 */
export interface LoginLimiter {
  /** Reserves every count the attempt needs; throws 429 rate_limited (with Retry-After) when one is spent. */
  begin(ip: string, provider: ProviderId, username: string | undefined): Promise<LoginAttempt>;
}

interface Limit {
  key: string;
  limit: number;
  windowMs: number;
  /** Which outcomes keep the reservation (counted); every other outcome gives it back. */
  keptOn: ReadonlySet<keyof LoginAttempt>;
}

const ON_FAILURE = new Set<keyof LoginAttempt>(['failed']);
const ON_SUCCESS = new Set<keyof LoginAttempt>(['succeeded']);
const ALWAYS = new Set<keyof LoginAttempt>(['failed', 'succeeded', 'abandoned']);

export function createLoginLimiter(
  backend: SessionBackend,
  config: RateLimitConfig,
  names: StoreKeyNames,
  budgetsOf: (provider: ProviderId) => readonly LoginBudget[],
): LoginLimiter {
  const window = config.loginWindowMs;
  const releaseAll = (limits: readonly Limit[]) =>
    // A release that fails leaves a count standing: the limit errs on the strict side.
    Promise.all(limits.map((limit) => backend.release(limit.key).catch(() => undefined)));
  // Reserves all of `limits` or none: on a refusal the others are given back and the refusal thrown.
  const reserveAll = async (limits: readonly Limit[], provider: ProviderId) => {
    const results = await guard(() =>
      Promise.all(limits.map((limit) => backend.reserve(limit.key, limit.limit, limit.windowMs))),
    );
    const refused = results.filter((result) => !result.granted);
    if (refused.length === 0) return;
    await releaseAll(limits.filter((_, index) => results[index]?.granted));
    throw refuse(Math.max(...refused.map((result) => result.resetInMs)), provider);
  };

  return {
    async begin(clientIp, provider, username) {
      const ip = limitedAddress(clientIp);
      const limits: Limit[] = [
        {
          key: `rl:login:ip:${names.current('ip', ip)}`,
          limit: config.loginFailuresPerIp,
          windowMs: window,
          keptOn: ON_FAILURE,
        },
        {
          key: `rl:login:ok:${names.current('ip', ip)}`,
          limit: config.loginSuccessesPerIp,
          windowMs: window,
          keptOn: ON_SUCCESS,
        },
      ];
      const user = username === undefined ? undefined : limitedUsername(username);
      const userIpKey =
        user === undefined
          ? undefined
          : `rl:login:user-ip:${provider}:${names.current('user-ip', `${user}\n${ip}`)}`;
      if (userIpKey !== undefined) {
        limits.push({
          key: userIpKey,
          limit: config.loginFailuresPerUser,
          windowMs: window,
          keptOn: ON_FAILURE,
        });
      }
      // A provider's own budgets count every login, granted or not (BILL's developer key).
      for (const budget of budgetsOf(provider)) {
        const scope =
          budget.per === 'address'
            ? names.current('ip', ip)
            : names.current(budget.per.label, budget.per.value);
        limits.push({
          key: `rl:login:${budget.name}:${scope}`,
          limit: budget.limit,
          windowMs: budget.windowMs,
          keptOn: ALWAYS,
        });
      }
      await reserveAll(limits, provider);

      if (user !== undefined) {
        // The username's ceiling across every address; past it, one attempt per interval still passes.
        const ceiling: Limit = {
          key: `rl:login:user:${provider}:${names.current('user', user)}`,
          limit: config.loginFailuresPerUserAllAddresses,
          windowMs: window,
          keptOn: ON_FAILURE,
        };
        const slowed: Limit = {
          key: `rl:login:slowed:${provider}:${names.current('user', user)}`,
          limit: 1,
          windowMs: config.loginSlowedIntervalMs,
          keptOn: ON_FAILURE,
        };
        try {
          await reserveAll([ceiling], provider).then(
            () => limits.push(ceiling),
            async (error: unknown) => {
              if (!(error instanceof AppError) || error.code !== 'rate_limited') throw error;
              await reserveAll([slowed], provider);
              limits.push(slowed);
            },
          );
        } catch (error) {
          await releaseAll(limits);
          throw error;
        }
      }

      const settle = (outcome: keyof LoginAttempt) => async () => {
        await releaseAll(limits.filter((limit) => !limit.keptOn.has(outcome)));
        // Signing in proves the address knows the password: its failures for the username are forgiven.
        if (outcome === 'succeeded' && userIpKey !== undefined)
          await backend.delete(userIpKey).catch(() => undefined);
      };
      return { succeeded: settle('succeeded'), failed: settle('failed'), abandoned: settle('abandoned') };
    },
  };
}

/**
 * Attempts at a guessable secret (BILL's MFA codes), limited per key. Each attempt is counted before
 * it is made, so a parallel burst cannot get more than `limit` guesses through.
 */
export function createAttemptLimiter(
  backend: SessionBackend,
  names: StoreKeyNames,
  options: { name: string; limit: number; windowMs: number; provider: ProviderId },
): AttemptLimiter {
  const keyOf = (key: string) => `rl:${options.name}:${names.current(options.name, key)}`;
  return {
    async take(key) {
      // Counted and compared in one atomic step: no burst gets past the limit.
      const reservation = await guard(() => backend.reserve(keyOf(key), options.limit, options.windowMs));
      if (!reservation.granted) throw refuse(reservation.resetInMs, options.provider);
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
  names: StoreKeyNames,
): RelayLimiter {
  const counts = new Map<string, SessionCount>();
  const key = (sessionId: string) => `rl:relay:${names.current('session', sessionId)}`;

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
