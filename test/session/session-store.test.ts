import type session from 'express-session';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createMemoryBackend } from '../../src/session/memory-backend.js';
import { createSessionCodec } from '../../src/session/session-codec.js';
import { createSessionRepository } from '../../src/session/session-repository.js';
import { RepositorySessionStore } from '../../src/session/session-store.js';
import { TEST_SECRETS } from '../support/test-config.js';
import { createTestClock } from '../support/test-clock.js';
import { createStoreKeyNames } from '../../src/session/store-key-names.js';

const call = (run: (done: (error?: unknown) => void) => void) =>
  new Promise<void>((resolve, reject) =>
    run((error) =>
      error
        ? reject(error instanceof Error ? error : new Error('session store failed', { cause: error }))
        : resolve(),
    ),
  );

function setup() {
  const clock = createTestClock();
  const repository = createSessionRepository({
    keyNames: createStoreKeyNames([TEST_SECRETS.SESSION_SECRETS]),
    backend: createMemoryBackend({ clock, maxEntries: 10, sweepIntervalMs: 0 }),
    codec: createSessionCodec(loadConfig(TEST_SECRETS).config.session.encryptionKeys),
    clock,
    limits: { idleTimeoutMs: 1_800_000, absoluteTimeoutMs: 43_200_000 },
    timeoutMs: 1000,
    onStoreError: () => undefined,
  });
  const store = new RepositorySessionStore(repository, { path: '/', httpOnly: true });
  const data = {
    cookie: { originalMaxAge: null },
    createdAt: clock.now(),
    lastSeenAt: clock.now(),
    providers: {},
  } as unknown as session.SessionData;
  return { repository, store, data };
}

describe('the express-session store over the repository', () => {
  it('treats express-session’s closing save of a new session as done, so a revocation in between stands', async () => {
    const { repository, store, data } = setup();
    await call((done) => store.set('sid-new', data, done));
    expect(await repository.load('sid-new')).toBeDefined();
    // Revoked (another device, an operator) before the login's response ended...
    await repository.destroy('sid-new');
    // ...then express-session saves the same session object once more as the response ends.
    await call((done) => store.set('sid-new', data, done));
    expect(await repository.load('sid-new')).toBeUndefined();
  });

  it('refuses to write a session over an existing one: changes go through the repository only', async () => {
    const { store, data } = setup();
    await call((done) => store.set('sid-taken', data, done));
    const other = { ...data };
    await expect(call((done) => store.set('sid-taken', other, done))).rejects.toMatchObject({
      code: 'internal_error',
    });
  });
});
