import { createSecretKey, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { Clock } from '../clock.js';

/** How a presented JWT reads: valid with its claims, expired (and when), or not ours at all. */
export type JwtCheck =
  | { readonly state: 'valid'; readonly claims: JWTPayload }
  | { readonly state: 'expired'; readonly claims: JWTPayload; readonly expiredAt: number }
  | { readonly state: 'invalid' };

/** An HS256 signing key from a shared secret (imported once, not per request). */
export function createHs256Key(secret: string | Uint8Array): KeyObject {
  return createSecretKey(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret);
}

/** Whole seconds since the epoch on `clock`, as JWT time claims count. */
export function epochSeconds(clock: Clock): number {
  return Math.floor(clock.now() / 1000);
}

/**
 * Signs `claims` as a compact HS256 JWT. The header carries no `typ` when `compact` is set, because
 * billfold stores Billbora's tokens and every byte counts against its 2 KiB session budget.
 */
export function signHs256(
  claims: JWTPayload,
  key: KeyObject,
  options: { compact?: boolean } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader(options.compact ? { alg: 'HS256' } : { alg: 'HS256', typ: 'JWT' })
    .sign(key);
}

const VERIFIED_CACHE_SIZE = 1024;

/**
 * A verifier of HS256 JWTs signed with `key` (and for `audience`, when given), judging expiry at the
 * clock's time. Signature and audience never change for a token, so they are checked once per token
 * (a bounded cache) and only expiry per call: the sandbox must keep up with a relay benchmark.
 */
export function createHs256Verifier(
  key: KeyObject,
  clock: Clock,
  audience?: string,
): (token: string) => Promise<JwtCheck> {
  const verified = new Map<string, JWTPayload & { exp: number }>();

  const authenticate = async (token: string) => {
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['HS256'],
        currentDate: new Date(clock.now()),
        requiredClaims: ['exp', 'iat'],
        ...(audience !== undefined && { audience }),
      });
      return payload;
    } catch (error) {
      // jose authenticates the token before it judges the claims, so an expired token's claims are genuine.
      return error instanceof errors.JWTExpired ? error.payload : undefined;
    }
  };

  return async (token) => {
    let claims = verified.get(token);
    if (!claims) {
      const payload = await authenticate(token);
      if (typeof payload?.exp !== 'number') return { state: 'invalid' };
      claims = { ...payload, exp: payload.exp };
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value ?? '');
      verified.set(token, claims);
    }
    const expiredAt = claims.exp * 1000;
    return expiredAt <= clock.now() ? { state: 'expired', claims, expiredAt } : { state: 'valid', claims };
  };
}
