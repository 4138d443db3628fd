import { describe, expect, it } from 'vitest';
import {
  checkQuery,
  checkRelayPath,
  filterResponseHeaders,
  forwardRequestHeaders,
  isCredentialName,
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
  ])('refuses %s with invalid_path', (_name, path) => {
    expect(code(() => checkRelayPath(path))).toBe('invalid_path');
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
    ]) {
      expect(isCredentialName(name)).toBe(true);
    }
    expect(isCredentialName('page_size')).toBe(false);
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

describe('response headers returned to the client', () => {
  it('drops cookies, auth challenges, hop-by-hop, upstream CORS and security headers, and credential echoes', () => {
    const kept = filterResponseHeaders(
      {
        'content-type': 'application/json',
        'content-length': '12',
        etag: '"v1"',
        'set-cookie': ['JSESSIONID=1'],
        'www-authenticate': 'Basic realm="x"',
        connection: 'keep-alive, x-hop',
        'x-hop': 'gone',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'access-control-allow-origin': '*',
        'content-security-policy': 'default-src *',
        server: 'nginx/1.2',
        sessionid: 'leak',
        'x-auth-token': 'leak',
        'x-echo': 'your session is upstream-secret-value',
      },
      ['upstream-secret-value'],
    );
    expect(kept).toEqual({ 'content-type': 'application/json', 'content-length': '12', etag: '"v1"' });
  });
});
