import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createCookieClient, type Answer, type RunningBillfold } from '../support/billfold-harness.js';
import { startHostileUpstream, type HostileUpstream } from '../support/hostile-upstream.js';
import { createSecretLedger, exerciseEveryProvider } from '../support/secret-ledger.js';
import { expectDocumentedError } from '../support/security-expect.js';
import { useStack } from '../support/stack.js';

const demo = SANDBOX_DEMO_CREDENTIALS;
const ledger = createSecretLedger();

const stack = useStack({ store: 'embedded' });
const expectNoLeak = () => {
  ledger.collect(stack.sandbox);
  // Every instance's lines, the one a describe started for itself included.
  expect(ledger.leaks(stack.logs())).toEqual([]);
};
// Each test answers for what its own calls got back and logged.
afterEach(expectNoLeak);

it('puts no secret it handled into any answer or log line, whatever ran before', async () => {
  await exerciseEveryProvider(stack.billfold);
  expectNoLeak();
});

/** What a caller can observe of a refused login: everything but the request id and the date. */
function observable(answer: Answer) {
  const { requestId: _requestId, ...error } = answer.body.error;
  return {
    status: answer.status,
    error,
    headers: [...answer.headers.keys()].filter((name) => !['date', 'x-request-id'].includes(name)).sort(),
    length: answer.text.length - answer.body.error.requestId.length,
    cookies: answer.setCookies,
  };
}

async function login(url: string, provider: string, body: object): Promise<Answer> {
  return createCookieClient(url, 'billfold').post(`/auth/${provider}/login`, body);
}

describe('unknown user and wrong password', () => {
  it.each([
    [
      'billingplatform',
      { username: 'nobody-at-all', password: 'whatever-1' },
      { ...demo.billingplatform, password: 'wrong-1' },
    ],
    [
      'bill',
      { ...demo.bill, userName: 'nobody@example.com', password: 'whatever-2' },
      { ...demo.bill, password: 'wrong-2' },
    ],
    [
      'billogram',
      { apiUserId: 'nobody-at-all', apiPassword: 'whatever-3' },
      { ...demo.billogram, apiPassword: 'wrong-3' },
    ],
    [
      'billbora',
      { email: 'nobody@example.com', password: 'whatever-4' },
      { ...demo.billbora, password: 'wrong-4' },
    ],
  ] as [string, object, object][])(
    '%s: answer alike, 401 invalid_credentials with no cookie',
    async (provider, unknown, wrong) => {
      const byUnknown = await login(stack.billfold.url, provider, unknown);
      const byWrong = await login(stack.billfold.url, provider, wrong);
      expectDocumentedError(byUnknown, 401, 'invalid_credentials');
      expect(observable(byUnknown)).toEqual(observable(byWrong));
      expect(byUnknown.setCookies).toEqual([]);
    },
  );

  describe('when the upstream itself tells them apart', () => {
    let hostile: HostileUpstream;
    let telling: RunningBillfold;
    beforeAll(async () => {
      hostile = await startHostileUpstream();
      // An upstream that says which half was wrong, with different statuses, bodies and headers.
      hostile.login = (request) =>
        request.body.includes('nobody')
          ? { status: 404, headers: { 'x-reason': 'no-such-user' }, body: '{"error":"no such user: nobody"}' }
          : {
              status: 401,
              headers: { 'www-authenticate': 'Basic' },
              body: '{"error":"wrong password for demo"}',
            };
      telling = await stack.start({ BILLINGPLATFORM_BASE_URL: hostile.baseUrl });
      return async () => {
        await telling.close();
        await hostile.close();
      };
    });

    it('billfold still answers both alike and passes none of the upstream’s difference on', async () => {
      const byUnknown = await login(telling.url, 'billingplatform', {
        username: 'nobody',
        password: 'whatever-5',
      });
      const byWrong = await login(telling.url, 'billingplatform', { username: 'demo', password: 'wrong-5' });
      expectDocumentedError(byUnknown, 401, 'invalid_credentials');
      expect(observable(byUnknown)).toEqual(observable(byWrong));
      expect(byUnknown.text + byWrong.text).not.toMatch(/no such user|wrong password|nobody/);
      expect(byUnknown.headers.get('x-reason')).toBeNull();
    });
  });
});
