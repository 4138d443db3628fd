import { parse } from 'cookie';
import signature from 'cookie-signature';
import { memoize } from '../bounded-cache.js';

/**
 * How express-session's own cookie parser reads a value: one pair of surrounding double quotes
 * (RFC 6265 allows them) removed, then percent-decoded when it decodes. The `cookie` package this
 * module uses keeps the quotes, so without this the two roads would disagree on `name="s:..."`.
 */
function decodeLikeExpressSession(value: string): string {
  const unquoted =
    value.length > 1 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  if (!unquoted.includes('%')) return unquoted;
  try {
    return decodeURIComponent(unquoted);
  } catch {
    return unquoted;
  }
}

/**
 * Reads the session id from a Cookie header exactly as express-session does (first cookie of the
 * name, `s:` prefix, any of the secrets), so the relay and the Express routes agree on every cookie.
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
    const raw = parse(cookieHeader, { decode: decodeLikeExpressSession })[name];
    if (!raw?.startsWith('s:')) return undefined;
    return verify(raw.slice(2)) || undefined;
  };
}
