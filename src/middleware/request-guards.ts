import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import cors from 'cors';
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
  // A TLS socket says so; a plain one has no such field.
  if ((req.socket as Partial<Pick<TLSSocket, 'encrypted'>>).encrypted === true) return true;
  if (!trust(req.socket.remoteAddress, 0)) return false;
  const proto = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}

/** The checks every /auth and /api request passes, whichever road it takes. */
export interface RequestPolicy {
  /** Throws csrf_header_missing or origin_not_allowed (HTTPS is enforced before either road). */
  check(req: IncomingMessage): void;
  /**
   * Whether `req` is a CORS preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`, as
   * browsers send it (without the X-CSRF header, which a preflight cannot carry). Any other OPTIONS is
   * an ordinary request.
   */
  isPreflight(req: IncomingMessage): boolean;
  /** Throws origin_not_allowed for a preflight from neither billfold's origin nor one CORS_ORIGINS lists. */
  checkPreflight(req: IncomingMessage): void;
}

const ALLOWED_REQUEST_HEADERS = [
  'accept',
  'accept-language',
  'content-type',
  'if-match',
  'if-none-match',
  'idempotency-key',
  'x-request-id',
  'x-csrf',
];

/**
 * CORS through the `cors` package: an allowed cross-origin caller is one CORS_ORIGINS lists, and
 * gets credentials; anyone else gets no CORS header at all (refusing it is the request policy's job).
 * Preflights get their headers here and their answer from the routes, which refuse unlisted origins.
 */
export function createCors(
  corsOrigins: readonly string[],
): (req: IncomingMessage, res: ServerResponse) => void {
  const listed = new Set(corsOrigins);
  const middleware = cors({
    origin: (origin, callback) => callback(null, origin !== undefined && listed.has(origin)),
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ALLOWED_REQUEST_HEADERS,
    // Not CORS-safelisted, yet a listed SPA needs them: to wait out a 429, to tell billfold's own
    // errors from relayed ones and quote them, and to send If-Match on a relayed update.
    exposedHeaders: ['retry-after', 'x-request-id', 'etag', 'x-billfold-error'],
    maxAge: 600,
    preflightContinue: true,
  });
  // The origin callback answers at once, so `cors` has written its headers when this returns.
  return (req, res) => middleware(req, res, () => undefined);
}

/**
 * The one body-size rule, for both roads: a declared length past BODY_LIMIT_BYTES is refused before
 * anything is read. Bodies without a declared length are counted as they are read, against the same limit.
 */
export function refuseOversizedBody(req: IncomingMessage, limitBytes: number): void {
  if (Number(req.headers['content-length'] ?? 0) > limitBytes) throw new AppError('payload_too_large');
}

export function createRequestPolicy(config: Config): RequestPolicy {
  const listed = new Set(config.corsOrigins);
  const isAllowed = (origin: string | undefined) =>
    origin === undefined || origin === config.publicOrigin || listed.has(origin);
  return {
    check(req) {
      const { headers } = req;
      if (headers['x-csrf'] !== '1') throw new AppError('csrf_header_missing');
      const origin = headers.origin;
      if (!isAllowed(origin)) throw new AppError('origin_not_allowed');
      // A cross-site fetch is refused unless it comes from a listed origin; no Origin says nothing here.
      if (headers['sec-fetch-site'] === 'cross-site' && (origin === undefined || !listed.has(origin))) {
        throw new AppError('origin_not_allowed');
      }
    },
    isPreflight: (req) =>
      req.method === 'OPTIONS' &&
      req.headers.origin !== undefined &&
      req.headers['access-control-request-method'] !== undefined,
    checkPreflight(req) {
      if (!isAllowed(req.headers.origin)) throw new AppError('origin_not_allowed');
    },
  };
}
