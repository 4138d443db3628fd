import { Ajv2020 } from 'ajv/dist/2020.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS, type ErrorCode } from '../../src/errors.js';
import { SANDBOX_DEMO_CREDENTIALS as demo } from '../../src/sandbox/sandbox-demo.js';
import { RedisSessionStore } from '../../src/session/redis-session-store.js';
import { createCookieClient, type Answer } from '../support/billfold-harness.js';
import { sendRaw, type RawAnswer } from '../support/raw-http.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { freePort } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdefghijklmnopqrstuvwxyz';
const METRICS_TOKEN = 'metrics-token-0123456789abcdefghijklmnopqrstuvwxyz';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is read as plain JSON
type Json = any;

/** What one answer is checked by: its status, its headers and its body, whichever client read it. */
interface Seen {
  status: number;
  header(name: string): string | undefined;
  text: string;
}

const fromClient = (answer: Answer): Seen => ({
  status: answer.status,
  header: (name) => answer.headers.get(name) ?? undefined,
  text: answer.text,
});
const fromFetch = async (response: Response): Promise<Seen> => {
  const text = await response.text();
  return { status: response.status, header: (name) => response.headers.get(name) ?? undefined, text };
};
const fromRaw = (answer: RawAnswer): Seen => ({
  status: answer.status,
  header: (name) => answer.header(name),
  text: answer.text,
});

/** A JSON pointer token. */
const pointer = (token: string) => token.replaceAll('~', '~0').replaceAll('/', '~1');

// In order, whatever the run's shuffle: the last test totals what the ones before it saw.
describe(
  'GET /openapi.json against real answers of every route and every error code',
  { shuffle: false },
  () => {
    // The first instance is the one under test; the others are started for the codes one
    // configuration cannot produce.
    const stack = useStack({ instances: 0, store: 'embedded', sandbox: { billApiVersion: 'v3' } });
    let document: Json;
    let ajv: Ajv2020;
    const operationsSeen = new Set<string>();
    const codesSeen = new Set<ErrorCode>();

    /**
     * Asserts that `answer` is what the document says `method template` answers: a documented status
     * (or the operation's `default`), a documented content type, a body its schema accepts, and
     * X-Billfold-Error exactly where the document declares it, with a code it lists.
     */
    function expectDocumented(method: string, template: string, answer: Seen): void {
      const operation = document.paths[template]?.[method];
      expect(operation, `${method.toUpperCase()} ${template} is in the document`).toBeDefined();
      operationsSeen.add(`${method} ${template}`);
      const status = String(answer.status);
      const code = answer.header('x-billfold-error');
      // The relay passes on whatever an upstream answers: without billfold's mark, that is the answer.
      const relayed = code === undefined && operation.responses.default !== undefined;
      const key = operation.responses[status] && !relayed ? status : 'default';
      const response = operation.responses[key];
      expect(response, `${method.toUpperCase()} ${template} documents ${status}`).toBeDefined();
      const mark = response.headers?.['X-Billfold-Error'];
      const declared = mark?.schema?.enum as string[] | undefined;
      // billfold's own errors carry the header, and only they: a relayed answer never does.
      if (code !== undefined) expect(declared, `${status} declares X-Billfold-Error`).toContain(code);
      if (mark?.required === true) expect(code, `${status} carries X-Billfold-Error`).toBeDefined();
      if (code !== undefined) codesSeen.add(code as ErrorCode);
      if (!response.content) {
        if (key !== 'default') expect(answer.text).toBe('');
        return;
      }
      const type = answer.header('content-type') ?? '';
      const media = Object.keys(response.content).find(
        (name) => type.split(';')[0]?.trim() === name.split(';')[0]?.trim(),
      );
      expect(media, `${type} is a documented content type of ${status}`).toBeDefined();
      if (media !== 'application/json') return;
      const path = ['#', 'paths', template, method, 'responses', key, 'content', media, 'schema']
        .map((token, index) => (index === 0 ? token : pointer(token)))
        .join('/');
      const validate = ajv.getSchema(`openapi.json${path}`);
      if (!validate) throw new Error(`no schema at ${path}`);
      const body: unknown = JSON.parse(answer.text);
      expect(
        validate(body),
        `${method.toUpperCase()} ${template} ${status}: ${ajv.errorsText(validate.errors)}`,
      ).toBe(true);
    }

    beforeAll(async () => {
      const billfold = await stack.start({
        ADMIN_PORT: '0',
        ADMIN_TOKEN,
        METRICS_TOKEN,
        BODY_LIMIT: '2kb',
        UPSTREAM_TIMEOUT_MS: '300',
        OPERATOR_AUTH_MAX_FAILURES: '2',
      });
      const response = await fetch(`${billfold.url}/openapi.json`);
      const seen = await fromFetch(response);
      document = JSON.parse(seen.text);
      ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
      ajv.addSchema(document, 'openapi.json');
      expectDocumented('get', '/openapi.json', seen);
    }, 60_000);

    it('is OpenAPI 3.1 naming every error code of billfold, each under its status', () => {
      expect(document.openapi).toBe('3.1.0');
      expect(document.components.schemas.ErrorCode.enum).toEqual(Object.keys(ERROR_STATUS));
      const declared = new Map<string, Set<string>>();
      for (const item of Object.values<Json>(document.paths)) {
        for (const operation of Object.values<Json>(item)) {
          for (const [status, response] of Object.entries<Json>(operation.responses ?? {})) {
            for (const code of response.headers?.['X-Billfold-Error']?.schema?.enum ?? []) {
              declared.set(code, (declared.get(code) ?? new Set()).add(status));
            }
          }
        }
      }
      for (const [code, status] of Object.entries(ERROR_STATUS)) {
        expect(declared.get(code), code).toContain(String(status));
      }
    });

    it('describes the answers of the signed-out, signed-in and signed-off routes', async () => {
      const client = stack.client();
      const check = async (method: string, template: string, answer: Promise<Answer>) => {
        const seen = fromClient(await answer);
        expectDocumented(method, template, seen);
        return seen;
      };
      await check('get', '/healthz', client.get('/healthz'));
      await check('get', '/readyz', client.get('/readyz'));
      await check('get', '/auth/session', client.get('/auth/session'));
      for (const provider of ['billingplatform', 'bill', 'billogram', 'billbora'] as const) {
        const login = await check(
          'post',
          `/auth/${provider}/login`,
          client.post(`/auth/${provider}/login`, demo[provider]),
        );
        expect(login.status).toBe(200);
      }
      await check('get', '/auth/session', client.get('/auth/session?touch=true'));
      await check('get', '/api/{provider}/{path}', client.get('/api/billingplatform/ACCOUNT/1001'));
      for (const method of ['post', 'put', 'patch', 'delete']) {
        await check(
          method,
          '/api/{provider}/{path}',
          client.request(method.toUpperCase(), '/api/billbora/invoices/', { json: {} }),
        );
      }
      const payment = await check(
        'post',
        '/api/{provider}/{path}',
        client.post('/api/bill/payments', { vendorId: '00901DEMOVEND01', amount: 42 }),
      );
      expect(payment.header('x-billfold-error')).toBe('mfa_required');
      const challenge = await client.post('/auth/bill/mfa/challenge');
      expectDocumented('post', '/auth/bill/mfa/challenge', fromClient(challenge));
      await check(
        'post',
        '/auth/bill/mfa/validate',
        client.post('/auth/bill/mfa/validate', { challengeId: 'not-the-challenge', token: demo.billMfaCode }),
      );
      await check(
        'post',
        '/auth/bill/mfa/validate',
        client.post('/auth/bill/mfa/validate', {
          challengeId: challenge.body.challengeId,
          token: demo.billMfaCode,
        }),
      );
      await check(
        'post',
        '/auth/billbora/organization',
        client.post('/auth/billbora/organization', { organizationId: 'org_other' }),
      );
      await check(
        'post',
        '/auth/billbora/organization',
        client.post('/auth/billbora/organization', { organizationId: 'org_nobody' }),
      );
      const phone = stack.client();
      await phone.post('/auth/billingplatform/login', demo.billingplatform);
      const listed = await check('get', '/auth/sessions', client.get('/auth/sessions'));
      expect(JSON.parse(listed.text).sessions.length).toBeGreaterThan(1);
      await check('delete', '/auth/sessions', client.request('DELETE', '/auth/sessions?others=true'));
      await check('delete', '/auth/sessions', client.request('DELETE', '/auth/sessions'));
      await check('delete', '/auth/sessions/{id}', client.request('DELETE', '/auth/sessions/no-such-handle'));
      await check('post', '/auth/billogram/logout', client.post('/auth/billogram/logout'));
      await check('get', '/api/{provider}/{path}', client.get('/api/billogram/customer'));
      for (const provider of ['billingplatform', 'bill', 'billbora'] as const) {
        await check('post', `/auth/${provider}/logout`, client.post(`/auth/${provider}/logout`));
      }
      await check('post', '/auth/billingplatform/logout', client.post('/auth/billingplatform/logout'));
      const own = await client.get('/auth/sessions');
      expectDocumented('get', '/auth/sessions', fromClient(own));
      await phone.post('/auth/billingplatform/login', demo.billingplatform);
      const mine = await phone.get('/auth/sessions');
      await check(
        'delete',
        '/auth/sessions/{id}',
        phone.request('DELETE', `/auth/sessions/${mine.body.sessions[0].id}`),
      );
      await check('post', '/auth/logout', client.post('/auth/logout'));
    });

    it('describes the refusals at the edge, the relay’s and the upstreams’ failures', async () => {
      const client = stack.client();
      const check = async (method: string, template: string, answer: Promise<Answer>) =>
        expectDocumented(method, template, fromClient(await answer));
      await check('post', '/auth/billingplatform/login', client.post('/auth/billingplatform/login', {}));
      await check(
        'post',
        '/auth/billingplatform/login',
        client.post('/auth/billingplatform/login', { ...demo.billingplatform, password: 'wrong' }),
      );
      await check(
        'post',
        '/auth/billingplatform/login',
        client.post('/auth/billingplatform/login', { username: 'x'.repeat(4000), password: 'x' }),
      );
      await check(
        'post',
        '/auth/billingplatform/login',
        client.request('POST', '/auth/billingplatform/login', {
          body: 'username=demo',
          headers: { 'content-type': 'text/plain' },
        }),
      );
      await check('post', '/auth/logout', client.post('/auth/logout', undefined, { 'x-csrf': '' }));
      await check(
        'post',
        '/auth/logout',
        client.post('/auth/logout', undefined, { origin: 'https://evil.example' }),
      );
      await check('get', '/auth/session', client.get('/auth/session?sid=abc'));
      await check('get', '/api/{provider}/{path}', client.get('/api/billingplatform/ACCOUNT/1001'));
      await check('get', '/api/{provider}/{path}', client.get('/api/nobody/x'));
      await client.post('/auth/billingplatform/login', demo.billingplatform);
      await check('get', '/api/{provider}/{path}', client.get('/api/billingplatform/%2e%2e/admin'));
      await check('get', '/api/{provider}/{path}', client.get('/api/billogram/customer'));
      await check('post', '/api/{provider}/{path}', client.post('/api/billingplatform/login', {}));
      await check(
        'get',
        '/api/{provider}/{path}',
        client.request('TRACE', '/api/billingplatform/ACCOUNT/1001'),
      );
      stack.sandbox.billingplatform.hangNext();
      await check('get', '/api/{provider}/{path}', client.get('/api/billingplatform/ACCOUNT/1001'));
      stack.sandbox.billingplatform.expireAllSessions();
      await check('get', '/api/{provider}/{path}', client.get('/api/billingplatform/ACCOUNT/1001'));
      const expect417 = await sendRaw(stack.billfold.url, {
        target: '/auth/session',
        headers: [['Expect', 'later']],
      });
      expectDocumented('get', '/auth/session', fromRaw(expect417));
      const huge = await sendRaw(stack.billfold.url, {
        target: '/healthz',
        headers: [['X-Padding', 'x'.repeat(20_000)]],
      });
      expectDocumented('get', '/healthz', fromRaw(huge));

      const partial = await stack.start({
        BILL_BASE_URL: undefined,
        BILLINGPLATFORM_BASE_URL: `http://127.0.0.1:${await freePort()}/bp`,
      });
      const partialClient = createCookieClient(partial.url, partial.config.session.cookieName);
      await check('post', '/auth/bill/login', partialClient.post('/auth/bill/login', demo.bill));
      await check('post', '/auth/bill/mfa/challenge', partialClient.post('/auth/bill/mfa/challenge'));
      await check(
        'post',
        '/auth/billingplatform/login',
        partialClient.post('/auth/billingplatform/login', demo.billingplatform),
      );
    });

    it('describes the operator endpoints and their refusals', async () => {
      const operator = async (origin: string, method: string, target: string, token: string) =>
        fromFetch(
          await fetch(`${origin}${target}`, { method, headers: { authorization: `Bearer ${token}` } }),
        );
      const { url, adminUrl = '' } = stack.billfold;
      const query = `?provider=billingplatform&user=${demo.billingplatform.username}`;
      // In order (the DELETE revokes what the first GET listed): what is called, then the operation
      // of the document its answer must match.
      const calls: Array<
        [origin: string, method: string, target: string, token: string, documented: string]
      > = [
        [adminUrl, 'GET', `/admin/sessions${query}`, ADMIN_TOKEN, 'get /admin/sessions'],
        [adminUrl, 'DELETE', `/admin/sessions${query}`, ADMIN_TOKEN, 'delete /admin/sessions'],
        [adminUrl, 'GET', '/admin/sessions?provider=x', ADMIN_TOKEN, 'get /admin/sessions'],
        [
          adminUrl,
          'GET',
          '/admin/sessions?provider=billogram&user=someone',
          ADMIN_TOKEN,
          'get /admin/sessions',
        ],
        [url, 'GET', '/metrics', METRICS_TOKEN, 'get /metrics'],
        [url, 'POST', '/metrics', METRICS_TOKEN, 'get /metrics'],
        [adminUrl, 'POST', `/admin/sessions${query}`, ADMIN_TOKEN, 'get /admin/sessions'],
        [adminUrl, 'GET', '/admin/elsewhere', ADMIN_TOKEN, 'get /admin/sessions'],
        // Wrong tokens, three in a row.
        ...Array.from(
          { length: 3 },
          () =>
            [
              adminUrl,
              'GET',
              `/admin/sessions${query}`,
              'wrong',
              'get /admin/sessions',
            ] as (typeof calls)[number],
        ),
      ];
      for (const [origin, method, target, token, documented] of calls) {
        const [documentedMethod = '', documentedPath = ''] = documented.split(' ');
        expectDocumented(documentedMethod, documentedPath, await operator(origin, method, target, token));
      }
    });

    it('describes the answers of a store that is gone, and of billfold failing itself', async () => {
      const gone = await stack.start({
        REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
        REDIS_KEY_PREFIX: uniquePrefix(),
      });
      const goneClient = createCookieClient(gone.url, gone.config.session.cookieName);
      expectDocumented('get', '/readyz', fromClient(await goneClient.get('/readyz')));
      expectDocumented(
        'post',
        '/auth/billingplatform/login',
        fromClient(await goneClient.post('/auth/billingplatform/login', demo.billingplatform)),
      );

      // A store that throws what no store should: billfold answers its last-resort error.
      class BrokenStore extends RedisSessionStore {
        override get(_sid: string, callback: (error?: unknown) => void): Promise<void> {
          callback(new TypeError('a defect'));
          return Promise.resolve();
        }
      }
      const broken = await stack.start(
        { REDIS_URL, REDIS_KEY_PREFIX: uniquePrefix() },
        { redisStore: (options) => new BrokenStore(options) },
      );
      const brokenClient = createCookieClient(broken.url, broken.config.session.cookieName);
      await brokenClient.post('/auth/billingplatform/login', demo.billingplatform);
      expectDocumented('get', '/auth/session', fromClient(await brokenClient.get('/auth/session')));

      const production = await stack.start({
        NODE_ENV: 'production',
        SESSION_STORE: 'memory',
        PUBLIC_ORIGIN: 'https://billfold.example.com',
      });
      const plain = createCookieClient(production.url, production.config.session.cookieName);
      expectDocumented('get', '/auth/session', fromClient(await plain.get('/auth/session')));
    });

    it('was checked against every documented operation and every error code', () => {
      const documented = Object.entries(document.paths as Record<string, Json>).flatMap(([template, item]) =>
        Object.keys(item)
          .filter((method) => method !== 'parameters' && method !== 'servers')
          .map((method) => `${method} ${template}`),
      );
      expect(documented.filter((operation) => !operationsSeen.has(operation))).toEqual([]);
      expect(Object.keys(ERROR_STATUS).filter((code) => !codesSeen.has(code as ErrorCode))).toEqual([]);
    });
  },
);
