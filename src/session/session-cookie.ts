import { parse } from 'cookie';
import signature from 'cookie-signature';

/**
 * Reads the session id from a Cookie header exactly as express-session does (first cookie of the
 * name, `s:` prefix, any of the secrets), so the relay and the Express routes agree on every cookie.
 */
export function createSessionIdReader(name: string, secrets: readonly string[]) {
  return (cookieHeader: string | undefined): string | undefined => {
    if (!cookieHeader) return undefined;
    const raw = parse(cookieHeader)[name];
    if (!raw?.startsWith('s:')) return undefined;
    for (const secret of secrets) {
      const value = signature.unsign(raw.slice(2), secret);
      if (value !== false) return value;
    }
    return undefined;
  };
}
