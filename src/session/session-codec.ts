import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { SessionRecord } from './session-record.js';

/** One key of the session encryption keyring. */
export interface EncryptionKey {
  id: string;
  key: Buffer;
}

/** Seals session records for the store and opens them again. */
export interface SessionCodec {
  /** AES-256-GCM under the first key, bound to the session id: `kid.base64url(iv|ciphertext|tag)`. */
  seal(sessionId: string, record: SessionRecord): string;
  /** The record, or undefined for anything tampered, foreign, or sealed under an unknown key. */
  open(sessionId: string, sealed: string): SessionRecord | undefined;
  /** Whether the value was sealed under a key other than the current one (re-seal on next write). */
  isStale(sealed: string): boolean;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The session id is the additional authenticated data, so a record copied under another session's
 * key fails to open: whoever can write to the store still cannot move a session to their cookie.
 */
export function createSessionCodec(keys: readonly EncryptionKey[]): SessionCodec {
  const current = keys[0];
  if (!current) throw new Error('at least one session encryption key is required');
  const byId = new Map(keys.map((k) => [k.id, k.key]));
  const aad = (kid: string, sessionId: string) => Buffer.from(`billfold.v1.${kid}.${sessionId}`);

  return {
    seal(sessionId, record) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current.key, iv);
      cipher.setAAD(aad(current.id, sessionId));
      const body = Buffer.concat([
        iv,
        cipher.update(JSON.stringify(record), 'utf8'),
        cipher.final(),
        cipher.getAuthTag(),
      ]);
      return `${current.id}.${body.toString('base64url')}`;
    },
    open(sessionId, sealed) {
      const dot = sealed.indexOf('.');
      const kid = sealed.slice(0, dot);
      const key = dot > 0 ? byId.get(kid) : undefined;
      if (!key) return undefined;
      const body = Buffer.from(sealed.slice(dot + 1), 'base64url');
      if (body.length <= IV_BYTES + TAG_BYTES) return undefined;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, IV_BYTES));
        decipher.setAAD(aad(kid, sessionId));
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        const plain = Buffer.concat([
          decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)),
          decipher.final(),
        ]);
        return parseRecord(plain.toString('utf8'));
      } catch {
        return undefined;
      }
    },
    isStale(sealed) {
      return !sealed.startsWith(`${current.id}.`);
    },
  };
}

function parseRecord(json: string): SessionRecord | undefined {
  const value: unknown = JSON.parse(json);
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as { createdAt?: unknown; lastSeenAt?: unknown; providers?: unknown };
  if (typeof record.createdAt !== 'number' || typeof record.lastSeenAt !== 'number') return undefined;
  if (typeof record.providers !== 'object' || record.providers === null) return undefined;
  return record as SessionRecord;
}
