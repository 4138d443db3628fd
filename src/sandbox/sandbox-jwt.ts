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
export function signHs256(claims: JWTPayload, key: KeyObject, options: { compact?: boolean } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader(options.compact ? { alg: 'HS256' } : { alg: 'HS256', typ: 'JWT' })
    .sign(key);
}

/** Verifies an HS256 JWT against `key` at the clock's time, telling an expired token from a bad one. */
export async function verifyHs256(
  token: string,
  key: KeyObject,
  clock: Clock,
  audience?: string,
): Promise<JwtCheck> {
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      currentDate: new Date(clock.now()),
      requiredClaims: ['exp', 'iat'],
      ...(audience !== undefined && { audience }),
    });
    return { state: 'valid', claims: payload };
  } catch (error) {
    if (error instanceof errors.JWTExpired && typeof error.payload.exp === 'number') {
      return { state: 'expired', claims: error.payload, expiredAt: error.payload.exp * 1000 };
    }
    return { state: 'invalid' };
  }
}
