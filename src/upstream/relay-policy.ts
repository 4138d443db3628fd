import type { IncomingHttpHeaders } from 'node:http';
import { memoize } from '../bounded-cache.js';
import { AppError } from '../errors.js';

/** Methods the relay forwards. */
export const RELAY_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

// C0, DEL and C1 (NEL, the 8-bit CSI and the rest).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
// What a reader may drop without a trace: soft hyphens, zero-width characters, byte-order marks.
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/gu;
/** A segment as a server that drops invisible characters and surrounding spaces reads it. */
const visibleSegment = (segment: string) => segment.replace(INVISIBLE, '').trim();
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
    // Dots alone, however padded (`..%20`, `%c2%ad..`, `...`), are a dot segment to some server.
    if (/^\.+$/.test(visibleSegment(read.split(';', 1)[0] ?? ''))) throw refuse();
  }
  return rawPath;
}

/**
 * A checked relay path as the upstream will read it (see `readSegmentAsUpstream`), for matching the
 * upstream's own auth endpoints: `%4cogin.json`, `login;x`, `login%20` and `Login.json.` are still
 * its login endpoint.
 */
export function canonicalRelayPath(checkedPath: string): string {
  return (
    checkedPath
      .split('/')
      // Trailing dots too, as servers that map paths to Windows file names drop them.
      .map((segment) =>
        visibleSegment((readSegmentAsUpstream(segment) ?? '').split(';', 1)[0] ?? '').replace(/[\s.]+$/, ''),
      )
      .join('/')
  );
}

/** Longest relay path (and query) whose check and upstream URL are remembered. */
export const REMEMBERED_LENGTH = 256;
/** How many of them are remembered (URLs per provider) before the memo starts over. */
export const REMEMBERED_ENTRIES = 1000;

/**
 * `checkRelayPath`, then the path as the upstream will read it (`canonicalRelayPath`). The same paths
 * recur (a client polls its invoices) and both are pure functions of the path, so short ones are
 * remembered; a refused path throws and is never remembered.
 */
export const checkedRelayPath = memoize(
  (path: string) => canonicalRelayPath(checkRelayPath(path)),
  REMEMBERED_ENTRIES,
  REMEMBERED_LENGTH,
);

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
  'otp',
  'passcode',
  'passwd',
  'credential',
  'credentials',
  'phpsessid',
]);
// Suffixes name a credential whatever qualifies it (`x_session_id`, `private_key`, `mfaToken`); a
// bare `token` or `key` suffix is not among them, since `pageToken` and `sortKey` carry none.
const SECRET_SUFFIXES = [
  'password',
  'passwd',
  'passcode',
  'secret',
  'apikey',
  'sessionid',
  'devkey',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'authtoken',
  'apitoken',
  'sessiontoken',
  'mfatoken',
  'tokenvalue',
  'remembermeid',
  'privatekey',
  'secretkey',
  'accesskey',
  'signingkey',
  'encryptionkey',
  'sessionkey',
  'clientkey',
  'authkey',
  'credential',
  'credentials',
  'bearertoken',
  'csrftoken',
  'xsrftoken',
  'passphrase',
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
  Array.from(name.toLowerCase())
    .map((character) => CONFUSABLES[character] ?? character)
    .join('');

/**
 * A parameter name as any server might read it: percent-decoded until stable, NFKC-normalised,
 * look-alike letters folded, lower case; a name that would not decode is read as sent.
 */
export const readNameAsUpstream = (name: string) =>
  foldConfusables(readSegmentAsUpstream(name) ?? name.normalize('NFKC'));

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
    const read = readNameAsUpstream(raw);
    // A name that decodes to `name=value` (`password%3Dx`) is read up to its `=` too, as a server
    // that decodes before it splits would read it.
    const names = [read, read.split('=', 1)[0] ?? '', foldConfusables(raw)];
    if (names.some(isCredentialName)) throw new AppError('secret_in_query');
  }
}

/** `checkQuery` on the query of a request target (`/path?query`), for the routes that are not the relay. */
export function checkTargetQuery(target: string): void {
  const queryAt = target.indexOf('?');
  if (queryAt !== -1) checkQuery(target.slice(queryAt));
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

// A repeated header reaches billfold as an array (undici keeps an upstream's repeats apart).
const NO_TOKENS: ReadonlySet<string> = new Set();
const tokensOf = (line: string) => line.split(',').map((token) => token.trim().toLowerCase());
// Nearly every message sends the same one line (`keep-alive`), so its tokens are worked out once.
const tokensOfLine = memoize((line: string): ReadonlySet<string> => new Set(tokensOf(line)), 1000);

function connectionTokens(headers: IncomingHttpHeaders): ReadonlySet<string> {
  const value: unknown = headers.connection;
  if (value === undefined) return NO_TOKENS;
  if (typeof value === 'string') return tokensOfLine(value);
  return Array.isArray(value) ? new Set(value.map(String).flatMap(tokensOf)) : NO_TOKENS;
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

/**
 * Upstream response headers a client may see, by name. Everything else is dropped: cookies, auth
 * challenges, hop-by-hop headers, CORS and security headers (billfold sets its own), caching headers
 * (billfold answers `no-store`), and whatever would act for billfold's origin in a browser —
 * reporting (`NEL`, `Report-To`), client hints (`Accept-CH`), `Link` preloads, `Content-Disposition`,
 * `Refresh`, `Clear-Site-Data`, `Alt-Svc` — including headers a provider adds later.
 */
const PASSED_RESPONSE_HEADERS = new Set([
  // the representation
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-range',
  'accept-ranges',
  // validators, for conditional requests
  'etag',
  'last-modified',
  // pacing and time
  'retry-after',
  'date',
  // paging and counts
  'x-total-count',
  'x-total',
  'x-total-pages',
  'x-page',
  'x-per-page',
  'x-next-page',
  'x-prev-page',
  // rate-limit state
  'ratelimit',
  'ratelimit-policy',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
]);

/** Headers billfold puts on every relayed answer, so upstream content is inert in a browser. */
export const RELAY_RESPONSE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; sandbox",
  'cache-control': 'no-store',
};

/**
 * billfold's own headers on every relayed answer as a flat `[name, value, ...]` list, computed once:
 * the security headers every answer carries, with `RELAY_RESPONSE_HEADERS` in place of theirs.
 */
export function relayFixedHeaders(fixed: ReadonlyArray<readonly [string, string]>): string[] {
  const list: string[] = [];
  for (const [name, value] of fixed) if (!(name in RELAY_RESPONSE_HEADERS)) list.push(name, value);
  for (const [name, value] of Object.entries(RELAY_RESPONSE_HEADERS)) list.push(name, value);
  return list;
}

/**
 * Passed headers whose value is a list: an upstream sending one twice means both, joined. Every other
 * passed header names one thing (a type, a length, a validator, a count), so a second copy
 * conflicts with the first and is dropped, as Node's own HTTP client drops it.
 */
const LIST_RESPONSE_HEADERS = new Set(['content-encoding', 'content-language', 'accept-ranges']);

/**
 * The headers of a relayed answer, as one flat list for one `writeHead`: billfold's own (`fixed`,
 * from `relayFixedHeaders`, then `perRequest`: X-Request-Id, CORS, `Vary: Origin`), the
 * allow-listed upstream headers that echo no credential, each once, and an upstream `Vary` merged
 * into billfold's rather than replacing it. No name is in two of these sets, so none is sent twice.
 */
export function relayedResponseHeaders(
  upstream: IncomingHttpHeaders,
  secrets: readonly string[],
  fixed: readonly string[],
  perRequest: readonly string[],
): string[] {
  const hopByHop = connectionTokens(upstream);
  const headers = fixed.slice();
  let ours: string | undefined;
  // Plain loops with no closure: this runs once per relayed answer.
  for (let i = 0; i < perRequest.length; i += 2) {
    const name = perRequest[i] ?? '';
    if (name === 'vary') ours = perRequest[i + 1];
    else headers.push(name, perRequest[i + 1] ?? '');
  }
  let echoes: readonly string[] | undefined;
  for (const name in upstream) {
    const given = upstream[name];
    if (given === undefined || !PASSED_RESPONSE_HEADERS.has(name) || hopByHop.has(name)) continue;
    const value =
      typeof given === 'string' ? given : LIST_RESPONSE_HEADERS.has(name) ? given.join(', ') : given[0];
    if (value === undefined) continue;
    echoes ??= echoFormsOf(secrets.join('\n'));
    if (!echoesSecret(value, echoes)) headers.push(name, value);
  }
  const vary = mergeVary(ours, upstream.vary);
  if (vary !== undefined) headers.push('vary', vary);
  return headers;
}

/** The shortest base64 run taken as a secret's trace inside a longer encoded value. */
const BASE64_TRACE = 8;

/**
 * Each secret as an upstream might echo it, lower-cased because the comparison is case-insensitive:
 * as sent, hex-encoded, and base64-encoded (both alphabets) at each of the three byte alignments it
 * can have inside a longer encoded value — the part of each encoding that no neighbouring byte
 * changes. A credential's forms are worked out once.
 */
const echoFormsOf = memoize((joined: string): readonly string[] => {
  const forms: string[] = [];
  for (const secret of joined.split('\n')) {
    if (secret === '') continue;
    const bytes = Buffer.from(secret);
    forms.push(secret, bytes.toString('hex'));
    for (let shift = 0; shift < 3; shift++) {
      const shifted = Buffer.concat([Buffer.alloc(shift), bytes]);
      for (const alphabet of ['base64', 'base64url'] as const) {
        const encoded = shifted.toString(alphabet).replace(/=+$/, '');
        // The first group holds the shift's filler, the last one whatever byte follows.
        const stable = encoded.slice(shift === 0 ? 0 : 4, encoded.length - 4);
        if (stable.length >= BASE64_TRACE) forms.push(stable);
        else if (shift === 0) forms.push(encoded);
      }
    }
  }
  return [...new Set(forms.map((form) => form.toLowerCase()))];
});

/** A run of percent-escapes: decoded together, as the UTF-8 bytes they are. */
const PERCENT_ESCAPES = /(?:%[0-9a-f]{2})+/gi;

/**
 * Whether a header value carries one of the credential's secrets: in any case, hex or base64, and
 * also once its percent-escapes are undone (twice, for a double encoding).
 */
function echoesSecret(value: string, echoes: readonly string[]): boolean {
  let text = value.toLowerCase();
  for (let round = 0; round < 3; round++) {
    for (const form of echoes) if (text.includes(form)) return true;
    if (!text.includes('%')) return false;
    text = text
      .replace(PERCENT_ESCAPES, (run) => Buffer.from(run.replaceAll('%', ''), 'hex').toString('utf8'))
      .toLowerCase();
  }
  return false;
}

const SINGLE_FIELD_NAME = /^[!#$%&'+.^_`|~0-9a-z-]+$/i;

/** One `Vary` holding every field name of both, each once (case-insensitively); `*` absorbs the rest. */
export function mergeVary(
  ours: string | undefined,
  theirs: string | string[] | undefined,
): string | undefined {
  // The common case on the relay: billfold's own `Origin` and no Vary from upstream.
  if (theirs === undefined && ours !== undefined && SINGLE_FIELD_NAME.test(ours)) return ours;
  const names = new Map<string, string>();
  for (const value of [ours, ...(Array.isArray(theirs) ? theirs : [theirs])]) {
    for (const name of (value ?? '').split(',')) {
      const trimmed = name.trim();
      const key = trimmed.toLowerCase();
      if (!names.has(key) && /^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(trimmed)) names.set(key, trimmed);
    }
  }
  if (names.has('*')) return '*';
  return names.size === 0 ? undefined : [...names.values()].join(', ');
}
