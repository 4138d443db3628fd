import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createSessionCodec } from '../../src/session/session-codec.js';
import type { SessionRecord } from '../../src/session/session-record.js';
import { randomEncryptionKey } from '../support/test-config.js';

const keysOf = (value: string) =>
  loadConfig({ SESSION_ENCRYPTION_KEYS: value }).config.session.encryptionKeys;
const record: SessionRecord = {
  createdAt: 1,
  lastSeenAt: 2,
  providers: { billingplatform: { sessionId: 'upstream-secret-session-id', user: 'demo', connectedAt: 1 } },
};

describe('session encryption at rest', () => {
  const oldKey = randomEncryptionKey('old');
  const newKey = randomEncryptionKey('new');

  it('stores ciphertext only: no field name or value of the record is readable', () => {
    const sealed = createSessionCodec(keysOf(oldKey)).seal('sid-1', record);
    expect(sealed).toMatch(/^old\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain('upstream-secret-session-id');
    expect(Buffer.from(sealed.slice(4), 'base64url').toString('latin1')).not.toContain('upstream-secret');
  });

  it('opens what it sealed, and uses a fresh IV every time', () => {
    const codec = createSessionCodec(keysOf(oldKey));
    const a = codec.seal('sid-1', record);
    expect(codec.seal('sid-1', record)).not.toBe(a);
    expect(codec.open('sid-1', a)).toEqual(record);
  });

  it('keeps old sessions readable after key rotation and marks them for re-sealing', () => {
    const sealedUnderOld = createSessionCodec(keysOf(oldKey)).seal('sid-1', record);
    const rotated = createSessionCodec(keysOf(`${newKey},${oldKey}`));
    expect(rotated.open('sid-1', sealedUnderOld)).toEqual(record);
    expect(rotated.isStale(sealedUnderOld)).toBe(true);
    expect(rotated.seal('sid-1', record)).toMatch(/^new\./);
    expect(rotated.isStale(rotated.seal('sid-1', record))).toBe(false);
  });

  it('rejects a tampered record, a record under an unknown key, and a record moved to another session id', () => {
    const codec = createSessionCodec(keysOf(oldKey));
    const sealed = codec.seal('sid-1', record);
    const body = Buffer.from(sealed.slice(4), 'base64url');
    body[20] = (body[20] ?? 0) ^ 1;
    expect(codec.open('sid-1', `old.${body.toString('base64url')}`)).toBeUndefined();
    expect(codec.open('sid-2', sealed)).toBeUndefined();
    expect(createSessionCodec(keysOf(newKey)).open('sid-1', sealed)).toBeUndefined();
    expect(codec.open('sid-1', 'garbage')).toBeUndefined();
    expect(codec.open('sid-1', 'old.AAAA')).toBeUndefined();
  });
});
