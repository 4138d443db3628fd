import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import proxyAddr from 'proxy-addr';
import type { Config } from '../config.js';
import { memoize } from '../bounded-cache.js';
import { AppError } from '../errors.js';

/** Decides whether a connecting address (at a hop index) is a trusted proxy, as Express's `trust proxy` does. */
export type TrustFunction = (address: string | undefined, hop: number) => boolean;

/** Compiles TRUST_PROXY once, with Express's own semantics, for both roads. */
export function compileTrust(value: Config['trustProxy']): TrustFunction {
  if (typeof value === 'boolean') return () => value;
  if (typeof value === 'number') return (_address, hop) => hop < value;
  const trust = proxyAddr.compile([...value]);
  // Parsing addresses is the costly part; the answer for the connecting hop depends on the address alone.
  const trustsPeer = memoize((address) => trust(address, 0));
  return (address, hop) => address !== undefined && (hop === 0 ? trustsPeer(address) : trust(address, hop));
}

/** Whether the request reached billfold over TLS: directly, or through a trusted proxy saying so. */
export function isSecureRequest(req: IncomingMessage, trust: TrustFunction): boolean {
  if ((req.socket as TLSSocket).encrypted) return true;
  if (!trust(req.socket.remoteAddress, 0)) return false;
  const proto = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}

/** The checks every /auth and /api request passes, whichever road it takes. */
export interface RequestPolicy {
  /** Throws csrf_header_missing or origin_not_allowed (HTTPS is enforced before either road). */
  check(req: IncomingMessage): void;
  /** The CORS headers for an allowed cross-origin caller (none otherwise). */
  corsHeaders(headers: IncomingHttpHeaders): Record<string, string>;
}

const ALLOWED_REQUEST_HEADERS =
  'accept, accept-language, content-type, if-match, if-none-match, idempotency-key, x-request-id, x-csrf';

/** CORS answers for a preflight from a listed origin. */
export const PREFLIGHT_HEADERS = {
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
  'access-control-allow-headers': ALLOWED_REQUEST_HEADERS,
  'access-control-max-age': '600',
};

export function createRequestPolicy(config: Config): RequestPolicy {
  const listed = new Set(config.corsOrigins);
  return {
    check(req) {
      const { headers } = req;
      if (headers['x-csrf'] !== '1') throw new AppError('csrf_header_missing');
      const origin = headers.origin;
      if (origin !== undefined && origin !== config.publicOrigin && !listed.has(origin)) {
        throw new AppError('origin_not_allowed');
      }
      // A cross-site fetch is refused unless it comes from a listed origin; no Origin says nothing here.
      if (headers['sec-fetch-site'] === 'cross-site' && (origin === undefined || !listed.has(origin))) {
        throw new AppError('origin_not_allowed');
      }
    },
    corsHeaders(headers) {
      const origin = headers.origin;
      if (origin === undefined || !listed.has(origin)) return {};
      return {
        'access-control-allow-origin': origin,
        'access-control-allow-credentials': 'true',
        // Not CORS-safelisted, yet a listed SPA needs them: to wait out a 429, to tell billfold's own
        // errors from relayed ones and quote them, and to send If-Match on a relayed update.
        'access-control-expose-headers': 'retry-after, x-request-id, etag, x-billfold-error',
      };
    },
  };
}
