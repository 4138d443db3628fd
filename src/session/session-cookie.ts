import { parse } from 'cookie';
import signature from 'cookie-signature';
import { memoize } from '../bounded-cache.js';

/**
 * Reads the session id from a Cookie header the way express-session does, with the very modules it
 * uses (`cookie` to parse, `cookie-signature` to verify: package.json pins the versions
 * express-session depends on, so npm installs one copy of each): the first cookie of the name, the
 * `s:` prefix, a signature under any of SESSION_SECRETS. The relay calls this; express-session does
 * the same on /auth, so both roads agree on every cookie.
 */
export function createSessionIdReader(name: string, secrets: readonly string[]) {
  // Verifying a signature is a pure function of the cookie value, so verified values are remembered
  // rather than HMAC'd on every relayed call.
  const verify = memoize((signed: string) => {
    for (const secret of secrets) {
      const value = signature.unsign(signed, secret);
      if (value !== false) return value;
    }
    return false as const;
  });
  return (cookieHeader: string | undefined): string | undefined => {
    if (!cookieHeader) return undefined;
    const raw = parse(cookieHeader)[name];
    if (!raw?.startsWith('s:')) return undefined;
    return verify(raw.slice(2)) || undefined;
  };
}
