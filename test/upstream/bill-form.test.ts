import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { AppError } from '../../src/errors.js';
import { createBillAdapter, type BillCredential } from '../../src/upstream/bill/bill-adapter.js';
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

const isCredentialName = (name: string) => ['devkey', 'sessionid'].includes(name.trim().toLowerCase());

// Pieces of a hostile form: plain text, `+`, escapes of any byte, malformed escapes, raw bytes of any
// value, separators, and the credential names in other spellings.
const piece = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.constantFrom('+', '%', '%2', '%zz', '%%41', '=', '&', ';', 'devKey', 'SESSIONID', ' devkey', '%64evKey'),
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
  it('are relayed with every field the client sent unchanged but its credentials, or refused when not well formed', () => {
    fc.assert(
      fc.property(body, (sent) => {
        const call: RelayCall = {
          method: 'POST',
          url: new URL('https://api.bill.test/api/v2/List/Vendor.json'),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: sent,
        };
        const expected = fieldsOf(sent);
        let relayed: RelayCall;
        try {
          relayed = adapter.authorize(call, credential);
        } catch (error) {
          expect(error).toBeInstanceOf(AppError);
          expect((error as AppError).code).toBe('invalid_request');
          // Refused only when the form is not one whose fields can be read as sent.
          expect(expected).toBeUndefined();
          return;
        }
        expect(expected).toBeDefined();
        const forwarded = [...new URLSearchParams(Buffer.from(relayed.body as Buffer).toString('utf8'))];
        expect(forwarded).toEqual([
          ...expected!.filter(([name]) => !isCredentialName(name)),
          ['devKey', DEV_KEY],
          ['sessionId', credential.sessionId],
        ]);
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
});
