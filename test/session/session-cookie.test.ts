import signature from 'cookie-signature';
import express from 'express';
import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { createErrorHandler } from '../../src/middleware/error-handler.js';
import { beginRequest } from '../../src/middleware/request-context.js';
import { createSessionMiddleware } from '../../src/middleware/session-middleware.js';
import { createSessionIdReader } from '../../src/session/session-cookie.js';
import { createTestMemoryStore, type TestStore } from '../support/session-stores.js';
import { createTestClock } from '../support/test-clock.js';
import { testConfig } from '../support/test-config.js';

// The relay reads the cookie itself; express-session reads it on /auth. Whatever a client sends,
// both must settle on the same session, or none.

const OLD_SECRET = `retired-signing-secret-${'o'.repeat(32)}`;
const config = testConfig({ SESSION_SECRETS: `current-signing-secret-${'c'.repeat(32)},${OLD_SECRET}` });
const name = config.session.cookieName;
const [current = ''] = config.session.secrets;
const logger = createLogger('silent');
const ids = ['sid-alpha', 'sid-beta', 'sid-gamma'] as const;

describe('one cookie verification on both roads', () => {
  let store: TestStore;
  const app = express();
  beforeAll(async () => {
    const clock = createTestClock(Date.now());
    store = createTestMemoryStore({ clock });
    for (const id of ids)
      await store.repository.create(id, { createdAt: clock.now(), lastSeenAt: clock.now(), providers: {} });
    app.use((req, res, next) => {
      beginRequest(req, res, logger);
      next();
    });
    app.use(createSessionMiddleware(config, store));
    app.get('/which', (req, res) => {
      res.json({ sessionId: req.session.createdAt === undefined ? null : req.sessionID });
    });
    app.use(createErrorHandler(logger));
  });
  afterAll(() => store.close());

  const readSessionId = createSessionIdReader(name, config.session.secrets);

  /** One cookie pair as a client might spell it: signed or not, quoted, percent-encoded, tampered. */
  const pair = fc
    .record({
      id: fc.constantFrom(...ids),
      secret: fc.constantFrom(current, OLD_SECRET, 'not-a-secret-of-billfold-at-all-000000000'),
      prefix: fc.constantFrom('s:', '', 's;', 'S:'),
      encode: fc.constantFrom('plain', 'percent', 'percent-all', 'quoted', 'broken-percent'),
      tamper: fc.boolean(),
      cookieName: fc.constantFrom(name, name.toUpperCase(), `${name}x`, ` ${name}`),
    })
    .map(({ id, secret, prefix, encode, tamper, cookieName }) => {
      let value = `${prefix}${signature.sign(id, secret)}`;
      if (tamper) value = `${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`;
      if (encode === 'percent') value = encodeURIComponent(value);
      if (encode === 'percent-all')
        value = Array.from(value)
          .map((char) => `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`)
          .join('');
      if (encode === 'quoted') value = `"${value}"`;
      if (encode === 'broken-percent') value = `${value}%E0%A4%A`;
      return `${cookieName}=${value}`;
    });
  const header = fc
    .array(fc.oneof(pair, fc.constantFrom('other=1', 'theme="dark"', '=', ';', 'x')), {
      minLength: 1,
      maxLength: 4,
    })
    .chain((pairs) => fc.constantFrom('; ', ';', ' ; ').map((separator) => pairs.join(separator)));

  it('settles on the same session as express-session for any Cookie header', async () => {
    await fc.assert(
      fc.asyncProperty(header, async (cookie) => {
        const answer = await request(app).get('/which').set('cookie', cookie);
        expect(answer.status).toBe(200);
        expect(readSessionId(cookie) ?? null).toBe(answer.body.sessionId);
      }),
      { numRuns: 150 },
    );
  });

  it('accepts a cookie signed under a retired secret still listed, and none signed under any other', () => {
    expect(readSessionId(`${name}=s:${encodeURIComponent(signature.sign('sid-alpha', OLD_SECRET))}`)).toBe(
      'sid-alpha',
    );
    expect(readSessionId(`${name}=s:${signature.sign('sid-alpha', 'someone-else')}`)).toBeUndefined();
  });
});
