import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { checkQuery, isCredentialName } from '../../src/upstream/relay-policy.js';
import { expectDocumentedError } from '../support/security-expect.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../support/scripted-upstream.js';
import { useStack } from '../support/stack.js';

describe('secret_in_query on every route', () => {
  let upstream: ScriptedUpstream;
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    // Closed after the stack's instances.
    return () => upstream.close();
  });
  const stack = useStack({
    sandbox: false,
    store: 'embedded',
    env: () => ({
      ...upstream.env,
      ADMIN_PORT: '0',
      ADMIN_TOKEN: 'admin-token-0123456789abcdefghijklmnopqrstuvwxyz',
    }),
  });

  it('refuses POST /auth/billingplatform/login?password=… before signing in, and the upstream never hears of it', async () => {
    const client = stack.client();
    const before = upstream.logins.length;
    const answer = await client.post(`/auth/billingplatform/login?password=${upstream.password}`, {
      username: 'someone',
      password: upstream.password,
    });
    expectDocumentedError(answer, 400, 'secret_in_query');
    expect(answer.setCookies).toEqual([]);
    expect(upstream.logins.length).toBe(before);
  });

  it.each([
    ['GET', '/auth/session?token=abc'],
    ['GET', '/auth/sessions?apiKey=bb_x'],
    ['POST', '/auth/logout?sessionId=abc'],
    ['DELETE', '/auth/sessions?others=true&access_token=x'],
    ['GET', '/healthz?devKey=x'],
    ['GET', '/readyz?PASSWORD=x'],
    ['GET', '/?pass%77ord=x'],
    ['GET', '/index.html?a=1;refresh_token=x'],
    ['GET', '/auth/session?%EF%BD%90%EF%BD%81%EF%BD%93%EF%BD%93%EF%BD%97%EF%BD%8F%EF%BD%92%EF%BD%84=x'],
    ['GET', '/auth/session?p%D0%B0ssword=x'],
    ['POST', '/auth/billbora/organization?supabase_token=x'],
  ])('refuses %s %s', async (method, path) => {
    const client = stack.client();
    expectDocumentedError(await client.request(method, path), 400, 'secret_in_query');
  });

  it('lets ordinary query strings through', async () => {
    const client = stack.client();
    expect((await client.get('/auth/session?touch=true')).status).toBe(200);
    expect((await client.get('/healthz?verbose=1')).status).toBe(200);
  });
});

/** Ways a name might be spelled so a server still reads it as the credential name. */
const spelled = (name: string) =>
  fc
    .tuple(
      fc.array(fc.constantFrom('upper', 'lower', 'percent', 'double', 'fullwidth', 'underscore'), {
        minLength: name.length,
        maxLength: name.length,
      }),
      fc.constantFrom('', '[]', '_', '-'),
    )
    .map(
      ([styles, suffix]) =>
        Array.from(name)
          .map((character, index) => {
            const style = styles[index] ?? 'lower';
            switch (style) {
              case 'upper':
                return character.toUpperCase();
              case 'percent':
                return `%${character.charCodeAt(0).toString(16).padStart(2, '0')}`;
              case 'double':
                return `%25${character.charCodeAt(0).toString(16).padStart(2, '0')}`;
              case 'fullwidth':
                return encodeURIComponent(String.fromCharCode(character.charCodeAt(0) + 0xfee0));
              case 'underscore':
                return index === 0 ? character : `_${character}`;
              case 'lower':
                return character;
            }
          })
          .join('') + suffix,
    );

const CREDENTIAL_NAMES = [
  'password',
  'sessionid',
  'devkey',
  'token',
  'apikey',
  'accesstoken',
  'refreshtoken',
  'secret',
];
const RUNS = 2000;

describe('the query check, under generated spellings', () => {
  it(`refuses every spelling of a credential name, wherever it sits among other parameters (${RUNS} cases)`, () => {
    let cases = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...CREDENTIAL_NAMES).chain(spelled),
        fc.array(fc.stringMatching(/^[a-z]{1,8}=[a-z0-9]{0,8}$/), { maxLength: 4 }),
        fc.nat(4),
        fc.constantFrom('&', ';'),
        (name, others, at, separator) => {
          cases++;
          const pairs = [...others];
          pairs.splice(Math.min(at, pairs.length), 0, `${name}=value`);
          expect(() => checkQuery(`?${pairs.join(separator)}`)).toThrow(
            expect.objectContaining({ code: 'secret_in_query' }),
          );
        },
      ),
      { numRuns: RUNS },
    );
    expect(cases).toBe(RUNS);
  });

  it(`never throws anything but a documented refusal, whatever the query (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (query) => {
        try {
          checkQuery(`?${query}`);
        } catch (error) {
          expect(error).toBeInstanceOf(AppError);
          expect(['secret_in_query', 'invalid_path']).toContain((error as AppError).code);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it(`passes names that carry no credential (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.stringMatching(/^[a-z]{1,12}$/).filter((name) => !isCredentialName(name)),
          { maxLength: 5 },
        ),
        (names) => {
          expect(() => checkQuery(`?${names.map((name) => `${name}=1`).join('&')}`)).not.toThrow();
        },
      ),
      { numRuns: RUNS },
    );
  });
});
