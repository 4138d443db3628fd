import { createHmac } from 'node:crypto';

/**
 * Names store keys after personal values (client addresses, usernames, upstream identities, session
 * ids) without putting those values, or an unkeyed hash a dictionary could reverse, in the store. Each
 * name is an HMAC-SHA256 under a key derived from a signing secret: whoever reads the store but not
 * the configuration can neither read nor confirm a guess.
 */
export interface StoreKeyNames {
  /** The name of `value` (of one `kind`) under the first signing secret: what is written. */
  current(kind: string, value: string): string;
  /**
   * Its names under every configured secret, the current one first: what is read, so the keys
   * written before a rotation are still found until the retired secret is removed.
   */
  all(kind: string, value: string): string[];
}

// A key of its own per secret, derived with a label, so a name never equals a cookie signature (the
// HMAC of a session id under the bare secret).
const deriveKey = (secret: string) =>
  createHmac('sha256', secret).update('billfold store key names').digest();

export function createStoreKeyNames(secrets: readonly string[]): StoreKeyNames {
  const keys = secrets.map(deriveKey);
  const nameUnder = (key: Buffer, kind: string, value: string) =>
    createHmac('sha256', key).update(`${kind}\n${value}`).digest('base64url').slice(0, 22);
  return {
    current: (kind, value) => (keys[0] ? nameUnder(keys[0], kind, value) : ''),
    all: (kind, value) => [...new Set(keys.map((key) => nameUnder(key, kind, value)))],
  };
}
