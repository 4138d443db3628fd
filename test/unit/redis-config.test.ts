import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.join('\n');
    throw error;
  }
  return '';
};

describe('Redis configuration: Sentinel, ACL user, TLS, replica acknowledgement', () => {
  it('reads Sentinel addresses (IPv6 too), the master name, credentials and the acknowledgement count', () => {
    const { config } = loadConfig({
      REDIS_SENTINEL_NODES: '10.0.0.1:26379, [::1]:26380',
      REDIS_SENTINEL_MASTER: 'mymaster',
      REDIS_USERNAME: 'billfold',
      REDIS_PASSWORD: 'secret',
      REDIS_MIN_REPLICAS_ACK: '1',
    });
    expect(config.store.kind).toBe('redis');
    expect(config.store.redis).toMatchObject({
      sentinel: {
        nodes: [
          { host: '10.0.0.1', port: 26379 },
          { host: '::1', port: 26380 },
        ],
        masterName: 'mymaster',
      },
      username: 'billfold',
      password: 'secret',
      tls: false,
      minReplicasAck: 1,
    });
  });

  it('turns TLS on for rediss:// URLs and for a CA file, and defaults to no acknowledgement', () => {
    expect(loadConfig({ REDIS_URL: 'rediss://cache:6380' }).config.store.redis).toMatchObject({
      tls: {},
      minReplicasAck: 0,
    });
    const ca = loadConfig({
      REDIS_SENTINEL_NODES: 'a:1',
      REDIS_SENTINEL_MASTER: 'm',
      REDIS_TLS_CA_FILE: 'package.json',
    }).config.store.redis;
    expect(ca.tls).toMatchObject({ caFile: 'package.json' });
  });

  it.each([
    [{ REDIS_SENTINEL_NODES: 'a:26379' }, /REDIS_SENTINEL_MASTER: required/],
    [{ REDIS_SENTINEL_MASTER: 'm' }, /set REDIS_SENTINEL_NODES too/],
    [{ REDIS_SENTINEL_NODES: 'a:99999', REDIS_SENTINEL_MASTER: 'm' }, /must be host:port/],
    [{ REDIS_SENTINEL_NODES: 'redis://a:1', REDIS_SENTINEL_MASTER: 'm' }, /must be host:port/],
    [
      { REDIS_URL: 'redis://a', REDIS_SENTINEL_NODES: 'a:1', REDIS_SENTINEL_MASTER: 'm' },
      /set one, not several/,
    ],
    [{ REDIS_CLUSTER_NODES: 'redis://a:1,rediss://b:1' }, /redis:\/\/ for every node or rediss:\/\//],
    [{ REDIS_CLUSTER_NODES: 'redis://u:p@a:1,redis://u:q@b:1' }, /same user and password/],
    [{ REDIS_URL: 'redis://u:p@a:1', REDIS_USERNAME: 'v' }, /REDIS_USERNAME: differs/],
    [{ REDIS_URL: 'redis://a:1', REDIS_TLS_CA_FILE: 'package.json' }, /write rediss:\/\/ for TLS/],
    [{ REDIS_URL: 'rediss://a:1', REDIS_TLS: 'false' }, /REDIS_TLS=false: the Redis URLs say rediss/],
    [{ REDIS_URL: 'rediss://a:1', REDIS_TLS_CERT_FILE: 'package.json' }, /set both or neither/],
    [
      { REDIS_URL: 'rediss://a:1', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' },
      /REDIS_TLS_CA_FILE: cannot read/,
    ],
    [{ REDIS_USERNAME: 'u', REDIS_URL: 'redis://a:1' }, /set REDIS_PASSWORD too/],
    [{ REDIS_MIN_REPLICAS_ACK: '1' }, /the embedded store has no replicas/],
    [{ REDIS_URL: 'redis://a:1', REDIS_MIN_REPLICAS_ACK: '-1' }, /REDIS_MIN_REPLICAS_ACK/],
    [{ REDIS_URL: 'redis://a:1', REDIS_MIN_REPLICAS_ACK: '17' }, /REDIS_MIN_REPLICAS_ACK/],
  ])('refuses %o at start', (env, problem) => {
    expect(problemsOf(env)).toMatch(problem);
  });
});
