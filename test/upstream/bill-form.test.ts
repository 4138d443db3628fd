import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { AppError } from '../../src/errors.js';
import {
  createBillAdapter,
  MAX_FORM_FIELDS,
  type BillCredential,
} from '../../src/upstream/bill/bill-adapter.js';
import type { RelayCall } from '../../src/upstream/provider-adapter.js';
import type { UpstreamClient } from '../../src/upstream/upstream-client.js';

const DEV_KEY = 'billfold-dev-key';
const adapter = createBillAdapter({
  config: {
    baseUrl: new URL('https://api.bill.test/api/v2'),
    relayAllow: [],
    devKey: DEV_KEY,
    apiVersion: 'v2',
    loginsPerHour: 200,
    loginsPerHourPerIp: 20,
  },
  // `authorize` makes no call.
  client: {} as UpstreamClient,
  clock: systemClock,
});
const credential: BillCredential = {
  sessionId: 'upstream-session',
  user: 'ada@example.com',
  orgId: 'org',
  connectedAt: 0,
  lastUsedAt: 0,
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const isHex = (byte: number | undefined) =>
  byte !== undefined && /^[0-9A-Fa-f]$/.test(String.fromCharCode(byte));

/**
 * The form's fields as its bytes say, per the URL standard's urlencoded parser read byte by byte:
 * `+` is a space, `%XX` its byte; undefined when the body or a field's bytes are not UTF-8, or a `%`
 * starts no escape (a form no encoder writes, and which Node's URLSearchParams can misread).
 */
function fieldsOf(body: Buffer): Array<[string, string]> | undefined {
  // The body is text before it is a form.
  if (!isUtf8(body)) return undefined;
  const fields: Array<[string, string]> = [];
  for (const pair of body.toString('latin1').split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    const parts = at === -1 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
    const decoded: string[] = [];
    for (const part of parts) {
      const bytes = Buffer.from(part.replaceAll('+', ' '), 'latin1');
      const out: number[] = [];
      for (let i = 0; i < bytes.length; i++) {
        if (bytes[i] !== 0x25) out.push(bytes[i]!);
        else if (isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
          out.push(Number.parseInt(String.fromCharCode(bytes[i + 1]!, bytes[i + 2]!), 16));
          i += 2;
        } else return undefined;
      }
      try {
        decoded.push(utf8.decode(Uint8Array.from(out)));
      } catch {
        return undefined;
      }
    }
    fields.push([decoded[0]!, decoded[1]!]);
  }
  return fields;
}

// A name no reading makes a credential: letters and digits only, and not one of the two.
const isPlainName = (name: string) => /^[A-Za-z0-9]+$/.test(name) && !/^(devkey|sessionid)$/i.test(name);
// Whether a name reads as a credential once stripped of everything but ASCII letters and digits.
const readsAsCredential = (name: string) =>
  /^(devkey|sessionid)$/.test(
    name
      .normalize('NFKC')
      .toLowerCase()
      .split('[', 1)[0]!
      .replace(/[^a-z0-9]/g, ''),
  );

const FORM_CALL = {
  method: 'POST',
  url: new URL('https://api.bill.test/api/v2/List/Vendor.json'),
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
};
// As the relay asks: the request's method and type first, then its body.
const authorize = (call: Partial<RelayCall>) => {
  const relayed: RelayCall = {
    ...FORM_CALL,
    body: undefined,
    ...call,
    headers: { ...(call.headers ?? FORM_CALL.headers) },
  };
  const hasBody = relayed.body !== undefined && relayed.body.length > 0;
  adapter.checkRequest?.(relayed.method, relayed.headers['content-type'], hasBody);
  return adapter.authorize(relayed, credential);
};
const refusal = (call: Partial<RelayCall>) => {
  try {
    authorize(call);
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return (error as AppError).code;
  }
  return undefined;
};
const fieldsSent = (call: Partial<RelayCall>) => [
  ...new URLSearchParams(Buffer.from(authorize(call).body as Buffer).toString('utf8')),
];

// Pieces of a hostile form: plain text, `+`, escapes of any byte, malformed escapes, raw bytes of any
// value, separators, and the credential names in other spellings.
const piece = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.constantFrom('+', '%', '%2', '%zz', '%%41', '=', '&', ';', 'data', 'Data2', 'x', 'devKeys', '[', ']'),
  fc.constantFrom('devKey', 'SESSIONID', ' devkey', '%64evKey', '%2564evKey', 'devKey[]', 'dev\u200bKey'),
  fc.constantFrom('ｄｅｖＫｅｙ', 'dеvKey' /* Cyrillic е */, 'dev\u212Aey' /* Kelvin sign */, '%00devKey'),
  fc.integer({ min: 0, max: 255 }).map((byte) => `%${byte.toString(16).padStart(2, '0')}`),
  fc.integer({ min: 0, max: 255 }).map((byte) => String.fromCharCode(byte)),
  fc.constantFrom('é', '✓', '日本', '\u{1F600}'),
);
// Each piece as UTF-8 bytes, except a one-character piece below 0x100, which stands for that raw byte.
const body = fc
  .array(piece, { maxLength: 24 })
  .map((pieces) =>
    Buffer.concat(
      pieces.map((text) =>
        text.length === 1 && text.charCodeAt(0) < 0x100 ? Buffer.from(text, 'latin1') : Buffer.from(text),
      ),
    ),
  );

describe('BILL v2 form bodies', () => {
  it('reach BILL with billfold’s devKey and sessionId and no other, every other field as sent, or are refused when not well formed', () => {
    fc.assert(
      fc.property(body, (sent) => {
        const expected = fieldsOf(sent);
        const code = refusal({ body: sent });
        // Refused only when the form is not one whose fields can be read as sent.
        if (code !== undefined) {
          expect(code).toBe('invalid_request');
          expect(expected).toBeUndefined();
          return;
        }
        expect(expected).toBeDefined();
        const forwarded = fieldsSent({ body: sent });
        expect(forwarded.slice(-2)).toEqual([
          ['devKey', DEV_KEY],
          ['sessionId', credential.sessionId],
        ]);
        const kept = forwarded.slice(0, -2);
        // What is kept is the client's fields in their order, each as sent...
        let at = 0;
        for (const field of kept) {
          while (at < expected!.length && JSON.stringify(expected![at]) !== JSON.stringify(field)) at++;
          expect(at, `${JSON.stringify(field)} was not sent so`).toBeLessThan(expected!.length);
          at++;
        }
        // ...none of them a credential however read, and none an ordinary field dropped.
        for (const [name] of kept) expect(readsAsCredential(name), name).toBe(false);
        for (const field of expected!.filter(([name]) => isPlainName(name)))
          expect(kept).toContainEqual(field);
      }),
      {
        numRuns: 3000,
        // Forms Node's URLSearchParams would change: a leading `?` dropped, `✓` cut to `\u0013`
        // beside a stray `%`, a raw byte read as U+FFFD.
        examples: [
          Buffer.from('?x=1'),
          Buffer.from('%41✓%zz'),
          Buffer.from('data=Caf%E9'),
          Buffer.from([0x25, 0x63, 0x32, 0x80]), // %c2, then a raw 0x80
          Buffer.from('devKey=a&x=%2'),
        ].map((example) => [example]),
      },
    );
  });

  it('drop a devKey or sessionId however its name is spelled, and keep the fields named otherwise', () => {
    const spellings = [
      'DEVKEY',
      'devKey%20',
      '%C2%A0devKey',
      'devKey%C2%A0',
      '%EF%BB%BFdevKey',
      'devKey%00',
      '%1FdevKey',
      'dev%E2%80%8BKey',
      '%EF%BD%84%EF%BD%85%EF%BD%96%EF%BC%AB%EF%BD%85%EF%BD%99',
      'dev%E2%84%AAey',
      'd%D0%B5vKey',
      'devKey[]',
      '%3FdevKey',
      '%2564evKey',
      'sessionId[x]',
      'Session%49d',
      'session+id',
      'session_id',
      'dev-key',
    ];
    const others = [
      'data',
      'developer',
      'session',
      'devKeys',
      'devKeyX',
      'xdevKey',
      'sessionIdentifier',
      'sessionId2',
      'devKey.x',
      'data[devKey]',
    ];
    const form = [...spellings.map((name) => `${name}=planted`), ...others.map((name) => `${name}=1`)].join(
      '&',
    );
    expect(fieldsSent({ body: Buffer.from(form) })).toEqual([
      ...others.map((name) => [name, '1']),
      ['devKey', DEV_KEY],
      ['sessionId', credential.sessionId],
    ]);
  });

  it('hold at most 1,000 fields: a larger form is refused before it is read', () => {
    const fields = Array.from({ length: MAX_FORM_FIELDS - 2 }, (_, n) => [`f${n}`, String(n)]);
    const form = (extra: string) =>
      Buffer.from([...fields.map(([name, value]) => `${name}=${value}`), extra].join('&'));
    expect(fieldsSent({ body: form('de%76Key=e&data={}') })).toEqual([
      ...fields,
      ['data', '{}'],
      ['devKey', DEV_KEY],
      ['sessionId', credential.sessionId],
    ]);
    expect(refusal({ body: form('de%76Key=e&data={}&x') })).toBe('payload_too_large');
    // Forms that once held the event loop for seconds: 90,000 look-alikes (990 KB), 524,288 empty fields.
    for (const body of [`${'de%76Key=e&'.repeat(90_000)}data={}`, 'a&'.repeat(524_288)]) {
      const started = performance.now();
      expect(refusal({ body: Buffer.from(body) })).toBe('payload_too_large');
      expect(performance.now() - started).toBeLessThan(1000); // generous: it takes milliseconds
    }
  });

  it('are POSTs only, of the form type in UTF-8: any other method or body is refused, not relayed without billfold’s fields', () => {
    const form = Buffer.from('devKey=evil&data={}');
    for (const method of ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE']) {
      expect(refusal({ method }), method).toBe('method_not_allowed');
      expect(refusal({ method, body: form }), method).toBe('method_not_allowed');
    }
    for (const type of [
      undefined,
      '',
      'text/plain',
      'application/json',
      'multipart/form-data; boundary=XX',
      'application/octet-stream',
      'text/plain, application/x-www-form-urlencoded',
      'application/x-www-form-urlencodedx',
      '"application/x-www-form-urlencoded"',
      'application/x-www-form-urlencoded; charset=utf-16le',
      'application/x-www-form-urlencoded; charset=iso-8859-1',
    ]) {
      const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
      expect(refusal({ body: form, headers }), String(type)).toBe('unsupported_media_type');
    }
    for (const type of [
      'application/x-www-form-urlencoded',
      'Application/X-WWW-Form-Urlencoded',
      'application/x-www-form-urlencoded; charset=UTF-8',
      'application/x-www-form-urlencoded;charset="utf-8";',
      '\tapplication/x-www-form-urlencoded ',
    ]) {
      expect(fieldsSent({ body: form, headers: { 'content-type': type } }), type).toEqual([
        ['data', '{}'],
        ['devKey', DEV_KEY],
        ['sessionId', credential.sessionId],
      ]);
    }
    // A POST without a body, of any declared type, is billfold's fields alone.
    expect(fieldsSent({ headers: { 'content-type': 'text/plain' } })).toEqual([
      ['devKey', DEV_KEY],
      ['sessionId', credential.sessionId],
    ]);
  });
});
