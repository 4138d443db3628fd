import { describe, expect, it } from 'vitest';
import { ConfigError, compileRelayPattern, loadConfig, parseByteSize } from '../../src/config.js';
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
