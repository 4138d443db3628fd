import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalRelayPath,
  checkedRelayPath,
  checkQuery,
  checkRelayPath,
  forwardRequestHeaders,
  isCredentialName,
  mergeVary,
  relayedResponseHeaders,
  relayFixedHeaders,
  RELAY_RESPONSE_HEADERS,
} from '../../src/upstream/relay-policy.js';

const code = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return 'accepted';
};

describe('relay path check', () => {
  it.each([
    'ACCOUNT/12345',
    'query',
    'invoices/',
    'users/me/organizations/',
    'customer/a%20b',
    'ACCOUNT/%7Eweird',
  ])('accepts %s', (path) => {
    expect(code(() => checkRelayPath(path))).toBe('accepted');
  });

  it.each([
    ['a dot-dot segment', '../admin'],
    ['a dot segment', 'ACCOUNT/./1'],
    ['a percent-encoded dot-dot', '%2e%2e/admin'],
    ['an upper-case encoded dot-dot', '%2E%2E/admin'],
    ['a mixed encoded dot-dot', '.%2e/admin'],
    ['a double-encoded dot-dot', '%252e%252e/admin'],
    ['a triple-encoded dot-dot', '%25252e%25252e/admin'],
    ['an encoded slash', 'ACCOUNT%2f..%2fadmin'],
    ['an encoded backslash', 'ACCOUNT%5cadmin'],
    ['a raw backslash', 'ACCOUNT\\admin'],
    ['a double slash', 'ACCOUNT//1'],
    ['a protocol-relative host', '/evil.example.com/x'],
    ['an absolute URL', 'https://evil.example.com/x'],
    ['a scheme without slashes', 'http:evil.example.com'],
    ['a NUL byte', 'ACCOUNT%00'],
    ['a raw control character', 'ACCOUNT\u0001'],
    ['an encoded CRLF', 'ACCOUNT%0d%0aHost:%20evil'],
    ['a malformed escape', 'ACCOUNT/%zz'],
    ['an empty path', ''],
    ['a C1 control character (8-bit CSI)', 'ACCOUNT/1001%c2%9b'],
    ['a next-line character', 'ACCOUNT%c2%85'],
    ['a dot-dot with a trailing space', 'ACCOUNT/..%20/login'],
    ['a dot-dot with a leading space', '%20../admin'],
    ['a dot with a space', 'ACCOUNT/.%20/1'],
    ['a dot-dot with a no-break space', '..%c2%a0/admin'],
    ['a dot-dot with a zero-width space', '..%e2%80%8b/admin'],
    ['dots around a soft hyphen', '%2e%c2%ad%2e/admin'],
    ['a dot-dot with a byte-order mark', '..%ef%bb%bf/admin'],
    ['three dots', '.../admin'],
  ])('refuses %s with invalid_path', (_name, path) => {
    expect(code(() => checkRelayPath(path))).toBe('invalid_path');
  });

  it.each([
    ['login%20', 'login'],
    ['login.', 'login'],
    ['Login.json.', 'Login.json'],
    ['login%e2%80%8b', 'login'],
    ['%4cogin;x/session', 'Login/session'],
    ['ACCOUNT/1001', 'ACCOUNT/1001'],
  ])('reads %s as the upstream may: %s', (path, canonical) => {
    expect(canonicalRelayPath(checkRelayPath(path))).toBe(canonical);
  });
});

describe('the remembered relay path check', () => {
  const outcome = (run: () => string) => {
    try {
      return { canonical: run() };
    } catch (error) {
      return { code: (error as { code?: string }).code };
    }
  };
  const segment = fc.oneof(
    fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '..%20',
      '%c2%85',
      'login',
      'Login.json.',
      'ACCOUNT',
      '1001',
      '%zz',
      '',
    ),
    fc.string({ maxLength: 8 }),
    fc.stringMatching(/^(?:%[0-9a-fA-F]{2}|[a-z.; ])*$/),
  );

  it('answers every path as the check itself does, the first time and every time after', () => {
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segments) => {
        const path = segments.join('/');
        const direct = outcome(() => canonicalRelayPath(checkRelayPath(path)));
        for (let i = 0; i < 3; i++) expect(outcome(() => checkedRelayPath(path))).toEqual(direct);
      }),
      { numRuns: 3000 },
    );
  });

  it('checks a path longer than it remembers all the same', () => {
    const long = `ACCOUNT/${'a'.repeat(300)}`;
    expect(checkedRelayPath(long)).toBe(long);
    expect(code(() => checkedRelayPath(`${long}/..%20/login`))).toBe('invalid_path');
  });
});

describe('query strings', () => {
  it.each([
    '?password=x',
    '?sessionId=x',
    '?SESSIONID=x',
    '?session_id=x',
    '?devKey=x',
    '?dev_key=x',
    '?token=x',
    '?access_token=x',
    '?apiKey=x',
    '?api-key=x',
    '?a=1&userPassword=x',
    '?a=1&a=2&apikey=z',
    '?bearerToken=x',
    '?csrf_token=x',
    '?passphrase=x',
    '?PHPSESSID=x',
    '?password%3Dhunter2',
    '?a=1&api%5Fkey%3Dx',
  ])('refuses %s with secret_in_query', (query) => {
    expect(code(() => checkQuery(query))).toBe('secret_in_query');
  });

  it('accepts ordinary parameters, repeated ones included', () => {
    expect(code(() => checkQuery('?sql=select%20Id%20from%20ACCOUNT&page=1&page=2'))).toBe('accepted');
    expect(code(() => checkQuery(''))).toBe('accepted');
  });

  it('names credential-like parameters and headers whatever their spelling', () => {
    for (const name of [
      'Authorization',
      'sessionid',
      'X-Api-Key',
      'api_key',
      'devkey',
      'DEV-KEY',
      'apikey',
      'x_session_id',
      'tokenValue',
      'rememberMeId',
      'mfaToken',
      'secret_key',
      'private_key',
      'accessKey',
      'signingKey',
      'otp',
      'passcode',
      'credential',
    ]) {
      expect(isCredentialName(name)).toBe(true);
    }
    for (const name of ['page_size', 'pageToken', 'next_token', 'sortKey', 'idempotency_key']) {
      expect(isCredentialName(name)).toBe(false);
    }
  });
});

describe('request headers forwarded upstream', () => {
  it('forwards only the allow-list, with billfold request id, and drops anything the client named in Connection', () => {
    const forwarded = forwardRequestHeaders(
      {
        accept: 'application/json',
        'content-type': 'application/json',
        'accept-language': 'sv',
        connection: 'keep-alive, accept-language',
        cookie: 'billfold=s:abc',
        authorization: 'Bearer stolen',
        sessionid: 'planted',
        devkey: 'planted',
        apikey: 'planted',
        'x-csrf': '1',
        'x-forwarded-for': '1.2.3.4',
        'x-forwarded-host': 'evil',
        host: 'evil',
        'transfer-encoding': 'chunked',
        'x-request-id': 'client-given',
      },
      'req-1',
    );
    expect(forwarded).toEqual({
      accept: 'application/json',
      'content-type': 'application/json',
      'x-request-id': 'req-1',
    });
  });
});

/** Every header family an upstream may answer with, and what the client gets of it. */
const HEADER_FATES: Array<{ family: string; headers: Record<string, string>; fate: 'passes' | 'dropped' }> = [
  {
    family: 'representation',
    headers: {
      'content-type': 'application/json',
      'content-length': '12',
      'content-encoding': 'gzip',
      'content-language': 'sv',
      'content-range': 'bytes 0-11/12',
      'accept-ranges': 'bytes',
    },
    fate: 'passes',
  },
  {
    family: 'validators',
    headers: { etag: '"v1"', 'last-modified': 'Tue, 01 Dec 2026 08:00:00 GMT' },
    fate: 'passes',
  },
  {
    family: 'pacing and time',
    headers: { 'retry-after': '3', date: 'Tue, 01 Dec 2026 08:00:00 GMT' },
    fate: 'passes',
  },
  {
    family: 'paging',
    headers: {
      'x-total-count': '40',
      'x-total': '40',
      'x-total-pages': '2',
      'x-page': '1',
      'x-per-page': '20',
      'x-next-page': '2',
      'x-prev-page': '',
    },
    fate: 'passes',
  },
  {
    family: 'rate-limit state',
    headers: {
      ratelimit: 'limit=10, remaining=9',
      'ratelimit-policy': '10;w=1',
      'x-ratelimit-limit': '10',
      'x-ratelimit-remaining': '9',
      'x-ratelimit-reset': '1',
    },
    fate: 'passes',
  },
  { family: 'cookies', headers: { 'set-cookie': 'JSESSIONID=1', 'set-cookie2': 'a=1' }, fate: 'dropped' },
  {
    family: 'auth challenges',
    headers: { 'www-authenticate': 'Basic realm="x"', 'proxy-authenticate': 'Basic' },
    fate: 'dropped',
  },
  {
    family: 'hop-by-hop',
    headers: {
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      te: 'trailers',
      trailer: 'x',
      upgrade: 'h2c',
      'proxy-connection': 'keep-alive',
    },
    fate: 'dropped',
  },
  {
    family: 'CORS',
    headers: {
      'access-control-allow-origin': '*',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': '*',
    },
    fate: 'dropped',
  },
  {
    family: 'security policy (billfold sets its own)',
    headers: {
      'strict-transport-security': 'max-age=0',
      'content-security-policy': 'default-src *',
      'content-security-policy-report-only': 'x',
      'x-content-type-options': 'none',
      'x-frame-options': 'ALLOW',
      'cross-origin-opener-policy': 'unsafe-none',
      'cross-origin-resource-policy': 'cross-origin',
      'cross-origin-embedder-policy': 'unsafe-none',
      'origin-agent-cluster': '?0',
      'referrer-policy': 'unsafe-url',
      'permissions-policy': 'camera=*',
      'x-xss-protection': '1',
      'x-dns-prefetch-control': 'on',
      'x-download-options': 'x',
      'x-permitted-cross-domain-policies': 'all',
    },
    fate: 'dropped',
  },
  {
    family: 'caching (billfold answers no-store)',
    headers: {
      'cache-control': 'public, max-age=600',
      expires: 'Tue, 01 Dec 2027 08:00:00 GMT',
      pragma: 'cache',
      age: '5',
      'surrogate-control': 'max-age=600',
    },
    fate: 'dropped',
  },
  {
    family: 'reporting',
    headers: {
      nel: '{"report_to":"x"}',
      'report-to': '{"group":"x"}',
      'reporting-endpoints': 'x="https://evil"',
    },
    fate: 'dropped',
  },
  {
    family: 'client hints',
    headers: {
      'accept-ch': 'Sec-CH-UA-Model',
      'critical-ch': 'Sec-CH-UA-Model',
      'accept-ch-lifetime': '86400',
    },
    fate: 'dropped',
  },
  {
    family: 'links and navigation',
    headers: {
      link: '<https://evil/x.js>; rel=preload',
      location: 'https://evil/',
      'content-location': 'https://evil/',
      refresh: '0;url=https://evil/',
    },
    fate: 'dropped',
  },
  {
    family: 'downloads and site data',
    headers: {
      'content-disposition': 'attachment; filename=x.html',
      'clear-site-data': '"cookies"',
      'alt-svc': 'h3=":443"',
    },
    fate: 'dropped',
  },
  {
    family: 'server identity',
    headers: { server: 'nginx/1.2', 'x-powered-by': 'PHP', via: '1.1 proxy' },
    fate: 'dropped',
  },
  {
    family: 'request ids and billfold’s own marker',
    headers: { 'x-request-id': 'forged', 'x-billfold-error': 'upstream_session_expired' },
    fate: 'dropped',
  },
  {
    family: 'credential-named',
    headers: { sessionid: 'x', 'x-auth-token': 'x', 'x-api-key': 'x' },
    fate: 'dropped',
  },
  {
    family: 'whatever a provider adds next',
    headers: { 'x-new-feature': '1', 'sec-new': '1' },
    fate: 'dropped',
  },
];

/**
 * A relayed answer's headers as an object; `own` are billfold's (its X-Request-Id and Vary per
 * request, the rest fixed). Fails if any name would be sent twice.
 */
function relayed(
  upstream: Record<string, string | string[]>,
  secrets: string[],
  own: Record<string, string> = {},
): Record<string, string | string[]> {
  const perRequest = Object.entries(own)
    .filter(([name]) => name === 'vary' || name === 'x-request-id')
    .flat();
  const fixed = Object.entries(own).filter(([name]) => !perRequest.includes(name));
  const list = relayedResponseHeaders(upstream, secrets, relayFixedHeaders(fixed), perRequest);
  const names = list.filter((_, i) => i % 2 === 0).map(String);
  expect(names.length, 'a header sent twice').toBe(new Set(names).size);
  return Object.fromEntries(names.map((name, i) => [name, list[2 * i + 1] ?? '']));
}

describe('response headers returned to the client', () => {
  for (const { family, headers, fate } of HEADER_FATES) {
    it(`${fate === 'passes' ? 'passes' : 'drops'} ${family}`, () => {
      const kept = relayed(headers, []);
      for (const [name, value] of Object.entries(headers)) {
        if (fate === 'passes') expect(kept[name], name).toBe(value);
        else expect(kept[name] === value && !(name in RELAY_RESPONSE_HEADERS), name).toBe(false);
      }
    });
  }

  it('drops an allow-listed header that echoes a credential, and any header the upstream names in Connection', () => {
    const kept = relayed(
      { etag: '"upstream-secret-value"', 'x-total-count': '3', connection: 'x-total-count' },
      ['upstream-secret-value'],
    );
    expect(kept.etag).toBeUndefined();
    expect(kept['x-total-count']).toBeUndefined();
  });

  it('merges an upstream Vary into billfold’s Vary: Origin instead of replacing it', () => {
    expect(relayed({ vary: 'Accept-Encoding, origin' }, [], { vary: 'Origin' }).vary).toBe(
      'Origin, Accept-Encoding',
    );
    expect(relayed({ vary: '*' }, [], { vary: 'Origin' }).vary).toBe('*');
    expect(mergeVary('Origin', ['Accept', 'Accept-Language, bad header'])).toBe(
      'Origin, Accept, Accept-Language',
    );
  });

  it('keeps billfold’s security headers and no-store over the upstream’s, and passes the validators', () => {
    const upstream = { 'cache-control': 'private, max-age=60', etag: '"v2"', 'last-modified': 'x' };
    expect(relayed(upstream, [], { 'cache-control': 'no-store' })).toMatchObject({
      ...RELAY_RESPONSE_HEADERS,
      etag: '"v2"',
      'last-modified': 'x',
    });
  });

  it('sends each upstream header once: a list joined, a second copy of anything else dropped', () => {
    const kept = relayed(
      {
        'content-type': ['text/html', 'application/json'],
        etag: ['"a"', '"b"'],
        'retry-after': ['1', '2'],
        'content-language': ['en', 'sv'],
      },
      [],
    );
    expect(kept).toMatchObject({
      'content-type': 'text/html',
      etag: '"a"',
      'retry-after': '1',
      'content-language': 'en, sv',
    });
  });

  it('drops a header that echoes a credential in another case, hex, percent- or base64-encoded', () => {
    const secret = 'Session-ID-0123456789abcdef';
    const echoes = [
      secret.toUpperCase(),
      secret.toLowerCase(),
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret).toString('base64url'),
      `W/"${Buffer.from(secret).toString('base64').replace(/=+$/, '')}"`,
    ];
    const hex = Buffer.from(secret).toString('hex');
    const percent = Buffer.from(secret)
      .toString('hex')
      .replace(/../g, (byte) => `%${byte}`);
    echoes.push(
      hex,
      hex.toUpperCase(),
      percent,
      percent.replaceAll('%', '%25'),
      `%${secret.charCodeAt(0).toString(16)}${secret.slice(1)}`,
      // Inside a longer encoded value, at each of the three alignments.
      ...['', 'x', 'xy'].map((lead) => Buffer.from(`${lead}${secret}:tail`).toString('base64')),
      Buffer.from(JSON.stringify({ realm: 'r', token: secret })).toString('base64url'),
    );
    for (const echo of echoes) {
      expect(relayed({ etag: echo, 'x-total': '3' }, [secret]), echo).toEqual(
        expect.not.objectContaining({ etag: expect.anything() }),
      );
    }
    expect(relayed({ etag: '"unrelated"' }, [secret]).etag).toBe('"unrelated"');
    // A password that is not ASCII, percent-escaped as UTF-8 and upper-cased.
    const password = 'Café-Passwörd-42';
    expect(relayed({ etag: encodeURIComponent(password.toUpperCase()) }, [password]).etag).toBeUndefined();
  });
});

describe('response headers under hostile upstreams (property)', () => {
  const PASSED = new Set(
    HEADER_FATES.filter(({ fate }) => fate === 'passes').flatMap(({ headers }) => Object.keys(headers)),
  );
  const base = { 'strict-transport-security': 'max-age=31536000', vary: 'Origin', 'x-request-id': 'ours' };
  const headerName = fc.oneof(
    fc.constantFrom(
      ...HEADER_FATES.flatMap(({ headers }) => Object.keys(headers)),
      'vary',
      'x-billfold-error',
    ),
    fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,20}$/),
  );
  const headerValue = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constant('upstream-secret'),
    fc.constant('*'),
  );

  it('never passes an unlisted header, a credential echo or a forged mark, and never loses billfold’s own', () => {
    fc.assert(
      fc.property(
        fc.dictionary(headerName, fc.oneof(headerValue, fc.array(headerValue, { maxLength: 3 }))),
        (upstream) => {
          const out = relayed(upstream, ['upstream-secret'], base);
          for (const [name, value] of Object.entries(out)) {
            const ours = name in base || name in RELAY_RESPONSE_HEADERS;
            expect(ours || PASSED.has(name), name).toBe(true);
            if (!ours) expect(String(value)).not.toContain('upstream-secret');
          }
          expect(out['x-billfold-error']).toBeUndefined();
          expect(out['x-request-id']).toBe('ours');
          expect(out['strict-transport-security']).toBe('max-age=31536000');
          expect(out['content-security-policy']).toBe(RELAY_RESPONSE_HEADERS['content-security-policy']);
          expect(String(out.vary)).toMatch(/^(\*|Origin(, .+)?)$/);
          expect(out['cache-control']).toBe('no-store');
        },
      ),
      { numRuns: 500 },
    );
  });
});
