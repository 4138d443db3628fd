import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { memoize } from '../bounded-cache.js';
import { AppError } from '../errors.js';

/** Methods the relay forwards. */
export const RELAY_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const SCHEME = /^[a-z][a-z0-9+.-]*:/i;

/**
 * One path segment as an upstream may end up reading it: percent-decoded until stable (so double
 * encoding hides nothing), NFKC-normalised (fullwidth and other look-alike dots and slashes become the
 * real ones) and without `;` path parameters (Tomcat-style servers read `..;` as `..`). Undefined
 * when the segment does not decode.
 */
function readSegmentAsUpstream(segment: string): string | undefined {
  let decoded = segment;
  for (let round = 0; round < 4 && decoded.includes('%'); round++) {
    try {
      decoded = decodeURIComponent(decoded);
    } catch {
      return undefined;
    }
  }
  if (decoded.includes('%') && /%[0-9a-f]{2}/i.test(decoded)) return undefined;
  return decoded.normalize('NFKC');
}

/**
 * Checks the relay path (below `/api/<provider>/`, still percent-encoded) before anything else uses it.
 * Every segment is read as an upstream might read it, so dot segments and separators are caught
 * however they were spelled. The path is forwarded exactly as checked; the host never comes from it.
 */
export function checkRelayPath(rawPath: string): string {
  const refuse = () => new AppError('invalid_path');
  if (rawPath === '' || rawPath.includes('\\') || CONTROL_CHARACTERS.test(rawPath) || SCHEME.test(rawPath)) {
    throw refuse();
  }
  const segments = rawPath.split('/');
  for (const [index, segment] of segments.entries()) {
    // An empty segment is `//`; only a trailing slash (Billbora's paths end in one) may leave one.
    if (segment === '' && index !== segments.length - 1) throw refuse();
    const read = readSegmentAsUpstream(segment);
    if (read === undefined || /[/\\]/.test(read) || CONTROL_CHARACTERS.test(read)) throw refuse();
    const bare = read.split(';', 1)[0];
    if (bare === '.' || bare === '..') throw refuse();
  }
  return rawPath;
}

/**
 * A checked relay path as the upstream will read it (see `readSegmentAsUpstream`), for matching the
 * upstream's own auth endpoints: `%4cogin.json` or `login;x` is still its login endpoint.
 */
export function canonicalRelayPath(checkedPath: string): string {
  return checkedPath
    .split('/')
    .map((segment) => (readSegmentAsUpstream(segment) ?? '').split(';', 1)[0])
    .join('/');
}

const SECRET_NAMES = new Set([
  'password',
  'passwd',
  'pwd',
  'sessionid',
  'sid',
  'devkey',
  'token',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'authtoken',
  'apitoken',
  'sessiontoken',
  'supabasetoken',
  'jwt',
  'apikey',
  'apisecret',
  'apipassword',
  'clientsecret',
  'secret',
  'authorization',
  'auth',
  'key',
]);
const SECRET_SUFFIXES = [
  'password',
  'secret',
  'apikey',
  'sessionid',
  'devkey',
  'accesstoken',
  'refreshtoken',
];

/** Whether a parameter or header name looks like it carries a credential (any case, `_`/`-` ignored). */
export function isCredentialName(name: string): boolean {
  const normalized = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  return SECRET_NAMES.has(normalized) || SECRET_SUFFIXES.some((suffix) => normalized.endsWith(suffix));
}

// Latin look-alikes from other scripts, folded so `pаssword` (a Cyrillic а) is still a password.
const CONFUSABLES: Record<string, string> = {
  а: 'a',
  е: 'e',
  о: 'o',
  р: 'p',
  с: 'c',
  у: 'y',
  х: 'x',
  і: 'i',
  ј: 'j',
  ѕ: 's',
  ԁ: 'd',
  ԛ: 'q',
  ԝ: 'w',
  һ: 'h',
  к: 'k',
  т: 't',
  м: 'm',
  в: 'b',
  н: 'h',
  α: 'a',
  ο: 'o',
  ρ: 'p',
  ν: 'v',
  ι: 'i',
  κ: 'k',
  τ: 't',
  υ: 'u',
  ε: 'e',
  ѡ: 'w',
  ı: 'i',
};
const foldConfusables = (name: string) =>
  [...name.toLowerCase()].map((character) => CONFUSABLES[character] ?? character).join('');

/**
 * Refuses a query string that carries a credential-like parameter, on every route. Each name is read
 * as any server might read it: split on `&` or `;`, `+` as a space, percent-decoded until stable,
 * NFKC-normalised, look-alike letters folded; a name that would not decode is judged as sent.
 */
export function checkQuery(search: string): void {
  if (search === '' || search === '?') return;
  if (CONTROL_CHARACTERS.test(search)) throw new AppError('invalid_path');
  const query = search.startsWith('?') ? search.slice(1) : search;
  for (const pair of query.split(/[&;]/)) {
    const raw = (pair.split('=', 1)[0] ?? '').replaceAll('+', ' ');
    const read = readSegmentAsUpstream(raw) ?? raw.normalize('NFKC');
    if (isCredentialName(foldConfusables(read)) || isCredentialName(foldConfusables(raw)))
      throw new AppError('secret_in_query');
  }
}

/** Client request headers the relay forwards; everything else is dropped before auth is attached. */
const FORWARDED_REQUEST_HEADERS = [
  'accept',
  'accept-language',
  'content-type',
  'content-length',
  'if-match',
  'if-none-match',
  'idempotency-key',
] as const;

function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  const value = headers.connection;
  return new Set(value ? value.split(',').map((token) => token.trim().toLowerCase()) : []);
}

/** The allow-listed client headers, minus any the client declared hop-by-hop in `Connection`. */
export function forwardRequestHeaders(
  headers: IncomingHttpHeaders,
  requestId: string,
): Record<string, string> {
  const hopByHop = connectionTokens(headers);
  const forwarded: Record<string, string> = { 'x-request-id': requestId };
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = headers[name];
    if (typeof value === 'string' && !hopByHop.has(name)) forwarded[name] = value;
  }
  return forwarded;
}

const DROPPED_RESPONSE_HEADERS = new Set([
  'set-cookie',
  'set-cookie2',
  'www-authenticate',
  'proxy-authenticate',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'server',
  'x-powered-by',
  'strict-transport-security',
  'content-security-policy',
  'content-security-policy-report-only',
  'x-content-type-options',
  'cache-control',
  'expires',
  'pragma',
  // billfold's own request id identifies the answer; an upstream's must not replace it.
  'x-request-id',
  // What the browser is told about billfold's origin is billfold's to say: helmet's headers (set on
  // every answer, an upstream's would replace them), and navigation, cache or cookie clearing, and
  // alternative services, which an upstream's answer could otherwise point at billfold's origin.
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'cross-origin-embedder-policy',
  'origin-agent-cluster',
  'referrer-policy',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-frame-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
  'refresh',
  'clear-site-data',
  'alt-svc',
]);

const isDroppedResponseHeader = memoize(
  (name: string) =>
    DROPPED_RESPONSE_HEADERS.has(name) ||
    name.startsWith('access-control-') ||
    isCredentialName(name) ||
    /token|session|auth/.test(name),
  1000,
);

/** Headers billfold puts on every relayed answer, so upstream content is inert in a browser. */
export const RELAY_RESPONSE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; sandbox",
  'cache-control': 'no-store',
};

/**
 * The upstream response headers a client may see: cookies, auth challenges, hop-by-hop headers, CORS
 * and security headers (billfold sets its own) and anything naming or echoing a credential are dropped.
 */
export function filterResponseHeaders(
  headers: IncomingHttpHeaders,
  secrets: readonly string[],
): OutgoingHttpHeaders {
  const hopByHop = connectionTokens(headers);
  const kept: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || isDroppedResponseHeader(name) || hopByHop.has(name)) continue;
    const text = Array.isArray(value) ? value.join(', ') : value;
    if (secrets.some((secret) => text.includes(secret))) continue;
    kept[name] = value;
  }
  return kept;
}
