import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Checks an `Authorization: Bearer <token>` header against `token` in constant time. Both sides are
 * hashed first, so the comparison always runs over two equal-length digests and neither its time nor
 * a length check tells a caller how much of a guess was right.
 */
export function createBearerCheck(token: string): (authorization: string | undefined) => boolean {
  const expected = digest(token);
  return (authorization) => {
    const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
    return timingSafeEqual(digest(match?.[1] ?? ''), expected);
  };
}
