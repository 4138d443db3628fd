import { AppError } from '../errors.js';
import type { ProviderId } from './provider-id.js';

/**
 * The error for a login the upstream did not grant: throttling is a 429; an upstream fault, or a
 * success status with a body billfold cannot read, is a 502; any other refusal is the credentials'.
 */
export function loginFailure(provider: ProviderId, status: number, understood: boolean): AppError {
  if (status === 429) return new AppError('rate_limited', { provider, retryAfter: 60 });
  if (status >= 500 || (status < 400 && !understood))
    return new AppError('upstream_unavailable', { provider });
  return new AppError('invalid_credentials', { provider });
}
