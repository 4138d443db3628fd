import type { Clock } from '../clock.js';
import { limitedAddress } from './rate-limits.js';

/** Wrong operator tokens per client address, counted in this process. */
export interface OperatorAuthLimiter {
  /** Milliseconds until `address` may try again, or 0 when it may now. */
  blockedFor(address: string | undefined): number;
  recordFailure(address: string | undefined): void;
}

const MAX_TRACKED = 10_000;

/**
 * The unit an address is counted under: an IPv4 address, or the /64 an IPv6 address belongs to (one
 * host commonly holds a whole /64, so counting single IPv6 addresses would not slow it at all).
 */
export function addressKey(address: string | undefined): string {
  return address === undefined ? 'unknown' : limitedAddress(address);
}

/**
 * Counts failures in a fixed window per address. Kept in process rather than in the session store:
 * the operator ports must answer while the store is down, and each instance counting its own only
 * multiplies the allowance by the number of instances. Memory is bounded: past `MAX_TRACKED`
 * addresses, ended windows are dropped, then the oldest.
 */
export function createOperatorAuthLimiter(
  limits: { maxFailures: number; windowMs: number },
  clock: Clock,
): OperatorAuthLimiter {
  const windows = new Map<string, { count: number; endsAt: number }>();
  const current = (key: string) => {
    const entry = windows.get(key);
    if (entry && entry.endsAt <= clock.now()) {
      windows.delete(key);
      return undefined;
    }
    return entry;
  };
  return {
    blockedFor(address) {
      const entry = current(addressKey(address));
      return entry && entry.count >= limits.maxFailures ? entry.endsAt - clock.now() : 0;
    },
    recordFailure(address) {
      const key = addressKey(address);
      const entry = current(key);
      if (entry) {
        entry.count++;
        return;
      }
      if (windows.size >= MAX_TRACKED) {
        const now = clock.now();
        for (const [other, { endsAt }] of windows) if (endsAt <= now) windows.delete(other);
        if (windows.size >= MAX_TRACKED) windows.delete(windows.keys().next().value ?? '');
      }
      windows.set(key, { count: 1, endsAt: clock.now() + limits.windowMs });
    },
  };
}
