import { AppError } from '../errors.js';
import type { ProviderId } from '../upstream/provider-id.js';

/** How many relayed calls each session, and each upstream identity, may have open at once per provider. */
export interface RelayConcurrency {
  /**
   * Takes one slot under every key, or throws 429 `rate_limited` (Retry-After: 1) when one is full.
   * The returned function gives the slots back; calling it again does nothing.
   */
  acquire(provider: ProviderId, keys: readonly string[]): () => void;
}

/**
 * Per-instance counts, because the connection pool they share out is per instance: with a limit of
 * `max`, no session or identity can hold more than `max` of a provider's pooled connections, so the
 * rest stay free for everyone else. `max` 0 turns the limit off.
 */
export function createRelayConcurrency(max: number): RelayConcurrency {
  const open = new Map<string, number>();
  return {
    acquire(provider, keys) {
      if (max === 0) return () => undefined;
      const taken = keys.map((key) => `${provider}\n${key}`);
      if (taken.some((key) => (open.get(key) ?? 0) >= max)) {
        throw new AppError('rate_limited', {
          provider,
          retryAfter: 1,
          message: 'Too many calls to this provider are in progress for this session; retry shortly.',
        });
      }
      for (const key of taken) open.set(key, (open.get(key) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        for (const key of taken) {
          const left = (open.get(key) ?? 1) - 1;
          if (left === 0) open.delete(key);
          else open.set(key, left);
        }
      };
    },
  };
}
