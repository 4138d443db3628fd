import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  compileRelayPattern,
  estimateEntropyBits,
  isLoopbackHost,
  loadConfig,
  parseByteSize,
} from '../../src/config.js';
import { TEST_SECRETS } from '../support/test-config.js';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

describe('configuration', () => {
  it('runs in development with nothing set: embedded store, random secrets with warnings, plain-HTTP loopback cookie', () => {
    const { config, warnings } = loadConfig({});
    expect(config.production).toBe(false);
    expect(config.store.kind).toBe('memory');
    expect(config.publicOrigin).toBe('http://localhost:3000');
    expect(config.session.cookieName).toBe('billfold');
    expect(config.session.cookieSecure).toBe(false);
    expect(config.session.idleTimeoutMs).toBe(1_800_000);
    expect(config.session.absoluteTimeoutMs).toBe(43_200_000);
    expect(config.bodyLimitBytes).toBe(1024 * 1024);
    expect(warnings.join('\n')).toMatch(/SESSION_SECRETS/);
    expect(warnings.join('\n')).toMatch(/SESSION_ENCRYPTION_KEYS/);
  });

  it('lists every problem of an invalid production configuration in one error', () => {
    const problems = problemsOf({
      NODE_ENV: 'production',
      BILLINGPLATFORM_BASE_URL: 'http://billing.example.com/rest/2.0',
      SESSION_SECRETS: 'short',
      PORT: 'eighty',
    });
    const text = problems.join('\n');
    expect(text).toMatch(/PORT: must be a whole number/);
    expect(text).toMatch(/PUBLIC_ORIGIN: required in production/);
    expect(text).toMatch(/SESSION_SECRETS: every secret must be at least 32 characters/);
    expect(text).toMatch(/SESSION_ENCRYPTION_KEYS: required in production/);
    expect(text).toMatch(/SESSION_STORE: production needs REDIS_URL/);
    expect(text).toMatch(/BILLINGPLATFORM_BASE_URL: must be https/);
  });

  it('accepts the embedded store in production only when SESSION_STORE=memory says so knowingly', () => {
    const env = { NODE_ENV: 'production', PUBLIC_ORIGIN: 'https://app.example.com', ...TEST_SECRETS };
    expect(problemsOf(env).join()).toMatch(/SESSION_STORE/);
    const { config } = loadConfig({ ...env, SESSION_STORE: 'memory' });
    expect(config.store.kind).toBe('memory');
    expect(config.session.cookieName).toBe('__Host-billfold');
    expect(config.session.cookieSecure).toBe(true);
  });

  it('accepts http:// upstreams only on loopback and only with ALLOW_INSECURE_UPSTREAMS=true', () => {
    expect(problemsOf({ BILLINGPLATFORM_BASE_URL: 'http://127.0.0.1:4000/bp' }).join()).toMatch(
      /must be https/,
    );
    expect(
      problemsOf({ BILLINGPLATFORM_BASE_URL: 'http://10.0.0.5/bp', ALLOW_INSECURE_UPSTREAMS: 'true' }).join(),
    ).toMatch(/must be https/);
    const { config } = loadConfig({
      BILLINGPLATFORM_BASE_URL: 'http://127.0.0.1:4000/bp/',
      ALLOW_INSECURE_UPSTREAMS: 'true',
    });
    expect(config.providers.billingplatform?.baseUrl.href).toBe('http://127.0.0.1:4000/bp');
  });

  it('refuses malformed encryption keys, duplicate key ids and short secrets', () => {
    const problems = problemsOf({
      SESSION_ENCRYPTION_KEYS: `a:${Buffer.alloc(16).toString('base64url')},b:${Buffer.alloc(32).toString('base64url')},b:${Buffer.alloc(32).toString('base64url')}`,
      SESSION_SECRETS: 'x'.repeat(31),
    }).join('\n');
    expect(problems).toMatch(/kid:base64url of 32 bytes/);
    expect(problems).toMatch(/key id "b" appears twice/);
    expect(problems).toMatch(/at least 32 characters/);
  });

  it('needs BILL_DEV_KEY with BILL_BASE_URL, and a Supabase anon key with SUPABASE_URL', () => {
    const problems = problemsOf({
      BILL_BASE_URL: 'https://api-stage.bill.com/api/v2',
      BILLBORA_BASE_URL: 'https://api.billbora.com/api/v1',
      SUPABASE_URL: 'https://project.supabase.co',
    }).join('\n');
    expect(problems).toMatch(/BILL_DEV_KEY/);
    expect(problems).toMatch(/SUPABASE_ANON_KEY/);
  });

  it('speaks BILL v2 unless BILL_API_VERSION=v3, and refuses a base URL of the other version', () => {
    const bill = { BILL_DEV_KEY: 'key' };
    const v2 = loadConfig({ ...bill, BILL_BASE_URL: 'https://api-stage.bill.com/api/v2' }).config;
    expect(v2.providers.bill?.apiVersion).toBe('v2');
    const v3 = loadConfig({
      ...bill,
      BILL_API_VERSION: 'v3',
      BILL_BASE_URL: 'https://gateway.stage.bill.com/connect/v3',
    }).config;
    expect(v3.providers.bill?.apiVersion).toBe('v3');
    expect(problemsOf({ ...bill, BILL_BASE_URL: 'https://gateway.stage.bill.com/connect/v3' })).toEqual([
      expect.stringMatching(/^BILL_BASE_URL: .*BILL_API_VERSION=v3/),
    ]);
    expect(
      problemsOf({
        ...bill,
        BILL_API_VERSION: 'v2',
        BILL_BASE_URL: 'https://gateway.stage.bill.com/Connect/V3/',
      }),
    ).toHaveLength(1);
    expect(
      problemsOf({ ...bill, BILL_API_VERSION: 'v3', BILL_BASE_URL: 'https://api-stage.bill.com/api/v2' }),
    ).toEqual([expect.stringMatching(/^BILL_BASE_URL: .*v2/)]);
    expect(
      problemsOf({ ...bill, BILL_API_VERSION: 'v4', BILL_BASE_URL: 'https://api-stage.bill.com/api/v2' }),
    ).toEqual([expect.stringMatching(/^BILL_API_VERSION/)]);
  });

  it('reads origins exactly and refuses ones with a path', () => {
    expect(problemsOf({ CORS_ORIGINS: 'https://app.example.com/path' }).join()).toMatch(/must be an origin/);
    expect(problemsOf({ CORS_ORIGINS: 'https://*.example.com' }).join()).toMatch(/is a pattern/);
    const { config } = loadConfig({
      CORS_ORIGINS: 'https://app.example.com, https://admin.example.com:8443',
    });
    expect(config.corsOrigins).toEqual(['https://app.example.com', 'https://admin.example.com:8443']);
  });

  it('parses sizes, trust-proxy values and relay path patterns', () => {
    expect(parseByteSize('512kb')).toBe(524_288);
    expect(parseByteSize('2MB')).toBe(2_097_152);
    expect(parseByteSize('lots')).toBeUndefined();
    expect(loadConfig({ TRUST_PROXY: '1' }).config.trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).config.trustProxy).toEqual([
      'loopback',
      '10.0.0.0/8',
    ]);
    expect(problemsOf({ TRUST_PROXY: 'yes please' }).join()).toMatch(/TRUST_PROXY/);
    expect(compileRelayPattern('ACCOUNT/*').test('account/42')).toBe(true);
    expect(compileRelayPattern('ACCOUNT/*').test('ACCOUNT/42/notes')).toBe(false);
    expect(compileRelayPattern('invoices/**').test('invoices/1/lines/')).toBe(true);
  });

  it('turns the operator API on only with ADMIN_PORT and ADMIN_TOKEN, and checks both tokens and every port', () => {
    const token = 'x'.repeat(32);
    expect(loadConfig({}).config.admin).toBeUndefined();
    expect(loadConfig({}).config.metrics).toEqual({ port: undefined, token: undefined });
    expect(loadConfig({ ADMIN_PORT: '9100', ADMIN_TOKEN: token }).config.admin).toEqual({
      port: 9100,
      token,
    });
    expect(loadConfig({ METRICS_PORT: '9200', METRICS_TOKEN: token }).config.metrics).toEqual({
      port: 9200,
      token,
    });
    // Every problem at once, with the others.
    const text = problemsOf({
      ADMIN_PORT: '9100',
      METRICS_TOKEN: 'short',
      METRICS_PORT: '70000',
      SESSION_SECRETS: 'short',
    }).join('\n');
    expect(text).toMatch(/ADMIN_PORT and ADMIN_TOKEN: set both or neither/);
    expect(text).toMatch(/METRICS_TOKEN: must be at least 32 characters/);
    expect(text).toMatch(/METRICS_PORT: /);
    expect(text).toMatch(/SESSION_SECRETS: /);
    expect(problemsOf({ ADMIN_TOKEN: 'short', ADMIN_PORT: '1' }).join()).toMatch(
      /ADMIN_TOKEN: must be at least 32/,
    );
    expect(problemsOf({ PORT: '9100', ADMIN_PORT: '9100', ADMIN_TOKEN: token }).join()).toMatch(
      /ADMIN_PORT: must differ from PORT/,
    );
    expect(problemsOf({ METRICS_PORT: '9100', ADMIN_PORT: '9100', ADMIN_TOKEN: token }).join()).toMatch(
      /ADMIN_PORT: must differ from METRICS_PORT/,
    );
    expect(problemsOf({ PORT: '0', METRICS_PORT: '0', ADMIN_PORT: '0', ADMIN_TOKEN: token })).toEqual([]);
  });

  it('returns a frozen configuration', () => {
    const { config } = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.session)).toBe(true);
  });
});

describe('configuration that fails safe', () => {
  const PRODUCTION = {
    NODE_ENV: 'production',
    PUBLIC_ORIGIN: 'https://billfold.example.com',
    SESSION_STORE: 'memory',
    ...TEST_SECRETS,
  };
  const TOKEN = 'Qz7hV2mK9pXw4sLc8RbT1nYe6uJa3dFg';
  const key = (bytes: Buffer) => `k1:${bytes.toString('base64url')}`;

  it('decides production from the parsed value, whatever whitespace surrounds it, and refuses other spellings', () => {
    for (const spelling of ['production ', ' production', '\tproduction\n']) {
      const { config } = loadConfig({ ...PRODUCTION, NODE_ENV: spelling });
      expect(config.production).toBe(true);
      expect(config.nodeEnv).toBe('production');
    }
    for (const spelling of ['Production', 'PRODUCTION', 'prod', 'productio\u0301n', 'ｐｒｏｄｕｃｔｉｏｎ']) {
      expect(problemsOf({ ...PRODUCTION, NODE_ENV: spelling }).join(), spelling).toMatch(/NODE_ENV/);
    }
  });

  it('refuses development mode on a non-loopback HOST unless ALLOW_DEVELOPMENT_ON_NETWORK=true says it knowingly', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'billfold.internal', '[::]']) {
      for (const nodeEnv of ['development', 'test', '']) {
        const problems = problemsOf({ HOST: host, NODE_ENV: nodeEnv }).join('\n');
        expect(problems, `${nodeEnv} ${host}`).toMatch(/ALLOW_DEVELOPMENT_ON_NETWORK=true/);
        expect(problems).toContain(host);
      }
      expect(loadConfig({ HOST: host, ALLOW_DEVELOPMENT_ON_NETWORK: 'true' }).config.host).toBe(host);
      expect(loadConfig({ ...PRODUCTION, HOST: host }).config.host).toBe(host);
    }
    for (const host of ['127.0.0.1', '127.3.4.5', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) {
      expect(problemsOf({ HOST: host }), host).toEqual([]);
    }
    // The operator ports' own address counts too.
    expect(problemsOf({ OPERATOR_HOST: '0.0.0.0', METRICS_PORT: '9100' }).join()).toMatch(
      /OPERATOR_HOST=0.0.0.0 is reachable/,
    );
    expect(problemsOf({ OPERATOR_HOST: '0.0.0.0' })).toEqual([]);
  });

  it('puts BODY_LIMIT under a 64 MiB ceiling and refuses sizes that parse to nothing or to Infinity', () => {
    expect(loadConfig({ BODY_LIMIT: '64mb' }).config.bodyLimitBytes).toBe(64 * 1024 * 1024);
    expect(loadConfig({ BODY_LIMIT: String(64 * 1024 * 1024) }).config.bodyLimitBytes).toBe(67_108_864);
    for (const size of [
      '100gb',
      '64.01mb',
      String(64 * 1024 * 1024 + 1),
      '9'.repeat(400),
      `${'9'.repeat(400)}gb`,
    ]) {
      expect(problemsOf({ BODY_LIMIT: size }).join(), size).toMatch(/BODY_LIMIT: .*(ceiling|not a size)/);
    }
    for (const size of ['0', '0.5b', 'Infinity', '1e9', '-1mb', '1 tb']) {
      expect(problemsOf({ BODY_LIMIT: size }).join(), size).toMatch(/BODY_LIMIT: .* is not a size/);
    }
  });

  it('refuses in production a TRUST_PROXY that trusts every peer, and names the fix', () => {
    for (const value of ['true', '0.0.0.0/0', '::/0', '10.0.0.7, 0.0.0.0/0']) {
      const problems = problemsOf({ ...PRODUCTION, TRUST_PROXY: value }).join('\n');
      expect(problems, value).toMatch(/TRUST_PROXY: in production it must name the proxy's own address/);
    }
    expect(loadConfig({ TRUST_PROXY: 'true' }).config.trustProxy).toBe(true);
    expect(loadConfig({ ...PRODUCTION, TRUST_PROXY: '10.0.0.7' }).config.trustProxy).toEqual(['10.0.0.7']);
    // Trusting a hop count or a whole private range is accepted, with a warning.
    expect(loadConfig({ ...PRODUCTION, TRUST_PROXY: '1' }).warnings.join()).toMatch(/TRUST_PROXY=1 trusts/);
    expect(loadConfig({ ...PRODUCTION, TRUST_PROXY: 'uniquelocal' }).warnings.join()).toMatch(
      /whole private range/,
    );
  });

  it('refuses in production all-zero and low-entropy keys, secrets and tokens, all in one message', () => {
    const problems = problemsOf({
      ...PRODUCTION,
      SESSION_SECRETS: `${'a'.repeat(32)},${'abcdefghijklmnop'.repeat(2)},${TEST_SECRETS.SESSION_SECRETS}`,
      SESSION_ENCRYPTION_KEYS: `${key(Buffer.alloc(32))},k2:${Buffer.alloc(32, 7).toString('base64url')},k3:${Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64url')}`,
      ADMIN_PORT: '9100',
      ADMIN_TOKEN: '0'.repeat(40),
      METRICS_TOKEN: 'abababababababababababababababab',
      OPERATOR_HOST: '127.0.0.1',
      BODY_LIMIT: '100gb',
    });
    const text = problems.join('\n');
    expect(problems.filter((p) => p.startsWith('SESSION_SECRETS:'))).toHaveLength(2);
    expect(problems.filter((p) => p.startsWith('SESSION_ENCRYPTION_KEYS:'))).toHaveLength(3);
    expect(text).toMatch(/SESSION_ENCRYPTION_KEYS: a value is all zeros/);
    expect(text).toMatch(/ADMIN_TOKEN: a value is low-entropy/);
    expect(text).toMatch(/METRICS_TOKEN: a value is low-entropy/);
    expect(text).toMatch(/BODY_LIMIT/);
    // Outside production the same values start, with a warning each.
    const { warnings } = loadConfig({
      SESSION_ENCRYPTION_KEYS: key(Buffer.alloc(32)),
      SESSION_SECRETS: 'z'.repeat(40),
    });
    expect(warnings.join('\n')).toMatch(/SESSION_ENCRYPTION_KEYS: a value is all zeros/);
    expect(warnings.join('\n')).toMatch(/SESSION_SECRETS: a value is low-entropy/);
  });

  it('never refuses a randomly generated key, secret or token of the documented sizes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16, maxLength: 48 }),
        (bytes, secret) => {
          // Secrets as the README generates them (base64url) and as hex, the shortest accepted length.
          const base64 = Buffer.from(secret).toString('base64url').padEnd(32, 'x');
          const hex = Buffer.from(secret).toString('hex').slice(0, 32).padEnd(32, 'f');
          expect(estimateEntropyBits([...bytes])).toBeGreaterThan(64);
          if (secret.length >= 24)
            expect(estimateEntropyBits(Array.from(base64, (c) => c.charCodeAt(0)))).toBeGreaterThan(64);
          if (secret.length >= 16)
            expect(estimateEntropyBits(Array.from(hex, (c) => c.charCodeAt(0)))).toBeGreaterThan(64);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses operator ports in production that would listen on the network in clear', () => {
    const operator = {
      ADMIN_PORT: '9100',
      ADMIN_TOKEN: TOKEN,
      METRICS_PORT: '9200',
      METRICS_TOKEN: `${TOKEN}x`,
    };
    for (const host of ['0.0.0.0', '10.0.0.5', '::']) {
      const problems = problemsOf({ ...PRODUCTION, ...operator, HOST: host }).join('\n');
      expect(problems, host).toMatch(
        /ADMIN_PORT: in production an operator port needs TLS .* or a loopback OPERATOR_HOST/,
      );
      expect(problems, host).toMatch(/METRICS_PORT: in production an operator port needs TLS/);
    }
    // Either fix is enough: a loopback bind, or TLS.
    expect(problemsOf({ ...PRODUCTION, ...operator, HOST: '0.0.0.0', OPERATOR_HOST: '127.0.0.1' })).toEqual(
      [],
    );
    const tls = { TLS_CERT_FILE: '/run/tls/cert.pem', TLS_KEY_FILE: '/run/tls/key.pem' };
    expect(problemsOf({ ...PRODUCTION, ...operator, ...tls, HOST: '0.0.0.0' })).toEqual([]);
    // On the network, the metrics port needs its token too, TLS or not.
    const { METRICS_TOKEN: _token, ...withoutToken } = operator;
    expect(problemsOf({ ...PRODUCTION, ...withoutToken, ...tls, HOST: '0.0.0.0' }).join()).toMatch(
      /METRICS_TOKEN: required in production/,
    );
    expect(problemsOf({ ...PRODUCTION, ...withoutToken, HOST: '0.0.0.0', OPERATOR_HOST: '::1' })).toEqual([]);
    const { config } = loadConfig({
      ...PRODUCTION,
      ...operator,
      HOST: '0.0.0.0',
      OPERATOR_HOST: '127.0.0.1',
    });
    expect({ host: config.host, operatorHost: config.operatorHost }).toEqual({
      host: '0.0.0.0',
      operatorHost: '127.0.0.1',
    });
    expect(loadConfig({}).config.operatorHost).toBe('127.0.0.1');
  });

  it('refuses one token for both operator ports, or a session secret as a token', () => {
    expect(problemsOf({ ADMIN_PORT: '9100', ADMIN_TOKEN: TOKEN, METRICS_TOKEN: TOKEN }).join()).toMatch(
      /ADMIN_TOKEN: must differ from METRICS_TOKEN/,
    );
    const secret = TEST_SECRETS.SESSION_SECRETS;
    for (const env of [{ ADMIN_PORT: '9100', ADMIN_TOKEN: secret }, { METRICS_TOKEN: secret }]) {
      expect(problemsOf({ ...TEST_SECRETS, ...env }).join()).toMatch(
        /must differ from every SESSION_SECRETS entry/,
      );
    }
    expect(problemsOf({ ADMIN_PORT: '9100', ADMIN_TOKEN: TOKEN, METRICS_TOKEN: `${TOKEN}x` })).toEqual([]);
  });

  it('recognises loopback listen addresses and nothing else', () => {
    for (const host of [
      '127.0.0.1',
      '127.255.255.254',
      'localhost',
      'LOCALHOST',
      '::1',
      '[::1]',
      '::ffff:127.0.0.1',
    ])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of [
      '0.0.0.0',
      '::',
      '',
      '128.0.0.1',
      '127.0.0.1.example.com',
      'localhost.example.com',
      '::ffff:10.0.0.1',
      '1.127.0.0',
    ])
      expect(isLoopbackHost(host), host).toBe(false);
  });
});
