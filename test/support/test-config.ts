import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config.js';

/** Fixed secrets for tests, so a second billfold instance can read the first one's sessions. */
export const TEST_SECRETS = {
  SESSION_SECRETS: 'test-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  // A fixed key that looks random: production refuses all-zero and low-entropy keys.
  SESSION_ENCRYPTION_KEYS: 'k1:FJKuUASd5SNidhK2ylvpPNEVtFFDnzE3fsNH-eWWzOU',
};

/** A random encryption key entry, `kid:base64url`. */
export function randomEncryptionKey(id: string): string {
  return `${id}:${randomBytes(32).toString('base64url')}`;
}

/** Loads a configuration from test defaults plus `env`. */
export function testConfig(env: Record<string, string | undefined> = {}): Config {
  return loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...TEST_SECRETS, ...env }).config;
}
