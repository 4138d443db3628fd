import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, environmentVariables, loadConfig, type Config } from '../../src/config.js';
import { compileTrust, isSecureRequest } from '../../src/middleware/request-guards.js';
import { TLS_PROFILE } from '../../src/tls-credentials.js';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import type { RunningBillfold } from '../support/billfold-harness.js';
import type { BillfoldProcess } from '../support/billfold-process.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { freePort } from '../support/redis-server.js';
import { useStack } from '../support/stack.js';
import { TEST_SECRETS } from '../support/test-config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const readText = (path: string) => readFileSync(join(ROOT, path), 'utf8');

// ---------------------------------------------------------------------------------------------------
// Readers for the three files, small enough to trust and strict enough to fail loudly on drift.

type Yaml = string | null | Yaml[] | { [key: string]: Yaml };

/**
 * Reads the block-style YAML subset docker-compose.yml is written in (mappings, sequences of scalars
 * or of mappings, flow sequences of scalars, quoted and plain scalars). Anything else throws rather
 * than misreads.
 */
function readYaml(text: string, file: string): Yaml {
  const lines = text.split('\n').flatMap((raw, index) => {
    const content = raw.trimEnd();
    const body = content.trimStart();
    return body === '' || body.startsWith('#')
      ? []
      : [{ indent: content.length - body.length, body, number: index + 1 }];
  });
  const fail = (line: { number: number; body: string } | undefined): never => {
    throw new Error(
      `${file}:${line?.number ?? 'end'}: outside the YAML subset these checks read: ${line?.body ?? ''}`,
    );
  };
  const scalar = (text: string, line: (typeof lines)[number]): Yaml => {
    if (text.startsWith("'"))
      return text.endsWith("'") ? text.slice(1, -1).replaceAll("''", "'") : fail(line);
    if (text.startsWith('"')) return JSON.parse(text) as string;
    if (text.startsWith('[')) {
      if (!text.endsWith(']')) fail(line);
      const items = text.slice(1, -1).match(/'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^,\s][^,]*/g) ?? [];
      return items.map((item) => scalar(item.trim(), line));
    }
    if (/^[{&*!|>]/.test(text)) fail(line);
    return text.replace(/\s+#.*$/, '');
  };
  let next = 0;
  const block = (indent: number): Yaml => {
    const items: Yaml[] = [];
    while (lines[next]?.indent === indent && lines[next]!.body.startsWith('- ')) {
      const line = lines[next++]!;
      const item = line.body.slice(2).trim();
      if (/^[\w.-]+:(\s|$)/.test(item)) {
        // A mapping as an item: its first key on the dash's line, the others aligned below it.
        lines[--next] = { ...line, indent: indent + 2, body: item };
        items.push(block(indent + 2));
      } else {
        items.push(scalar(item, line));
      }
    }
    if (items.length > 0) return items;
    const map: Record<string, Yaml> = {};
    while (lines[next]?.indent === indent) {
      const line = lines[next++]!;
      const match = /^([\w.-]+):(?:\s+(.*))?$/.exec(line.body) ?? fail(line);
      const [, key = '', rest] = match;
      const child = lines[next];
      map[key] =
        rest !== undefined ? scalar(rest, line) : child && child.indent > indent ? block(child.indent) : null;
    }
    return map;
  };
  const document = block(0);
  if (next < lines.length) fail(lines[next]);
  return document;
}

function mapAt(value: Yaml | undefined, where: string): Record<string, Yaml> {
  if (value === null || value === undefined || typeof value === 'string' || Array.isArray(value)) {
    throw new Error(`${where}: expected a mapping`);
  }
  return value;
}

function stringsAt(value: Yaml | undefined, where: string): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new Error(`${where}: expected a list of strings`);
  }
  return value;
}

function stringAt(value: Yaml | undefined, where: string): string {
  if (typeof value !== 'string') throw new Error(`${where}: expected a string`);
  return value;
}

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions, continuation lines joined, grouped into build stages. */
function readDockerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match || line.trimStart().startsWith('#')) continue;
    const instruction = { keyword: match[1]!.toUpperCase(), args: match[2]!.trim() };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

/** The JSON (exec) form of CMD or HEALTHCHECK ... CMD. */
function execForm(args: string): string[] {
  const json = /(\[.*\])\s*$/.exec(args)?.[1];
  if (json === undefined) throw new Error(`not in exec form: ${args}`);
  return JSON.parse(json) as string[];
}

/** The names the configuration schema declares (billfold's own and each provider's): the variables billfold reads. */
function configVariables(): Set<string> {
  return environmentVariables();
}

const composeText = readText('docker-compose.yml');
const compose = mapAt(readYaml(composeText, 'docker-compose.yml'), 'docker-compose.yml');
const services = mapAt(compose.services, 'services');
const billfoldService = mapAt(services.billfold, 'services.billfold');
const billfoldEnvironment = mapAt(billfoldService.environment, 'services.billfold.environment');
const stages = readDockerfile(readText('Dockerfile'));
const runtime = stages.at(-1) ?? [];
const packageJson = JSON.parse(readText('package.json')) as { scripts: Record<string, string> };

const healthchecks = {
  // Docker's `HEALTHCHECK ... CMD [...]` is compose's `test: [CMD, ...]`.
  Dockerfile: [
    'CMD',
    ...execForm(
      /\bCMD\s+(\[.*\])$/.exec(runtime.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '')?.[1] ?? '',
    ),
  ],
  'docker-compose.yml': stringsAt(
    mapAt(billfoldService.healthcheck, 'billfold.healthcheck').test,
    'billfold.healthcheck.test',
  ),
};

/** Runs a healthcheck's command (`CMD node -e ...`) the way Docker would, with `env`. */
function runHealthcheck(test: string[], env: Record<string, string>): Promise<number> {
  const [form, command, ...args] = test;
  expect(form).toBe('CMD');
  expect(command).toBe('node');
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env, timeout: 10_000 }, (error) =>
      resolve(error ? Number(error.code ?? 1) : 0),
    );
  });
}

/** What compose hands billfold's container: the image's ENV, then the service's environment, interpolated. */
function containerEnvironment(
  operator: Record<string, string>,
  environment: Record<string, Yaml> = billfoldEnvironment,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of runtime.filter((i) => i.keyword === 'ENV')) {
    for (const [, name, value] of args.matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g)) env[name!] = value!;
  }
  for (const [name, value] of Object.entries(environment)) {
    env[name] = stringAt(value, `environment.${name}`).replace(
      /\$\{(\w+)(?::([?-])([^}]*))?\}/g,
      (_whole, variable: string, operator_: string | undefined, text: string | undefined) => {
        const given = operator[variable];
        if (given) return given;
        if (operator_ === '?') throw new Error(`compose refuses to start: ${text}`);
        return operator_ === '-' ? (text ?? '') : '';
      },
    );
  }
  return env;
}

const OPERATOR = { ...TEST_SECRETS, PUBLIC_ORIGIN: 'https://billfold.example.com' };

// ---------------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('runs Redis with a ping healthcheck and an append-only file, so sessions survive its restart or crash', () => {
    const redis = mapAt(services.redis, 'services.redis');
    expect(redis.image).toMatch(/^redis:7/);
    expect(stringsAt(mapAt(redis.healthcheck, 'redis.healthcheck').test, 'redis.healthcheck.test')).toEqual([
      'CMD',
      'redis-cli',
      'ping',
    ]);
    expect(stringsAt(redis.command, 'redis.command').join(' ')).toMatch(/--appendonly yes/);
    // Fsynced before each reply, so a crash loses no session write (docs/operations.md).
    expect(stringsAt(redis.command, 'redis.command').join(' ')).toMatch(/--appendfsync always/);
    expect(stringsAt(redis.volumes, 'redis.volumes').some((v) => v.endsWith(':/data'))).toBe(true);
  });

  it('starts billfold only once Redis is healthy, and stores sessions in that Redis service', () => {
    const dependsOn = mapAt(billfoldService.depends_on, 'billfold.depends_on');
    expect(mapAt(dependsOn.redis, 'billfold.depends_on.redis').condition).toBe('service_healthy');
    const redisUrl = new URL(stringAt(billfoldEnvironment.REDIS_URL, 'billfold.environment.REDIS_URL'));
    expect(redisUrl.protocol).toBe('redis:');
    expect(Object.keys(services)).toContain(redisUrl.hostname);
    expect(redisUrl.port).toBe('6379');
  });

  it('leaves the secrets to billfold, which refuses production without each and names it', () => {
    const passed = Object.entries(billfoldEnvironment).filter(
      ([, v]) => typeof v === 'string' && v.startsWith('${'),
    );
    for (const name of ['PUBLIC_ORIGIN', 'SESSION_ENCRYPTION_KEYS', 'SESSION_SECRETS']) {
      expect(billfoldEnvironment[name]).toBe(`\${${name}:-}`);
      const environment = containerEnvironment({ ...OPERATOR, [name]: '' });
      expect(environment[name]).toBe('');
      try {
        loadConfig(environment);
        expect.fail(`billfold started in production without ${name}`);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems.join('\n')).toContain(name);
      }
    }
    expect(passed.length).toBeGreaterThanOrEqual(3);
  });

  it('requires no variable of any profile, since compose checks every service whatever the profile', () => {
    expect(composeText).not.toMatch(/\$\{\w+:?\?/);
    for (const [name, service] of Object.entries(services)) {
      const environment = mapAt(service, name).environment;
      if (environment) expect(() => containerEnvironment({}, mapAt(environment, name))).not.toThrow();
    }
    // Only Redis runs outside a profile: each way of running billfold is asked for by name.
    const unprofiled = Object.entries(services).filter(([, service]) => !mapAt(service, 'service').profiles);
    expect(unprofiled.map(([name]) => name)).toEqual(['redis']);
    expect(stringsAt(billfoldService.profiles, 'billfold.profiles')).toEqual(['single']);
  });

  it('gives billfold, once the operator supplies the secrets, a valid production configuration on Redis', () => {
    const { config } = loadConfig(containerEnvironment(OPERATOR));
    expect(config.production).toBe(true);
    expect(config.store.kind).toBe('redis');
    expect(config.host).toBe('0.0.0.0');
    expect(config.port).toBe(3000);
    expect(config.publicOrigin).toBe(OPERATOR.PUBLIC_ORIGIN);
  });

  it('trusts only the address Docker’s port forwarding connects from, never a whole private range', () => {
    const network = mapAt(mapAt(compose.networks, 'networks').default, 'networks.default');
    const [pool] = mapAt(network.ipam, 'networks.default.ipam').config as Yaml[];
    const gateway = stringAt(mapAt(pool, 'networks.default.ipam.config[0]').gateway, 'gateway');
    const { config } = loadConfig(containerEnvironment(OPERATOR));
    expect(config.trustProxy).toEqual([gateway]);
    expect(believesHttps(config.trustProxy, gateway)).toBe(true);
    // The other containers on the network, and every other private address, claim nothing.
    for (const other of [
      '172.29.0.2',
      '172.29.0.254',
      '172.17.0.1',
      '10.0.0.5',
      '192.168.1.10',
      'fd00::1',
      'fe80::1',
    ]) {
      expect(believesHttps(config.trustProxy, other), other).toBe(false);
    }
    for (const service of Object.values(services)) {
      const environment = mapAt(service, 'service').environment;
      const trust = environment ? mapAt(environment, 'environment').TRUST_PROXY : undefined;
      if (typeof trust === 'string')
        expect(trust).not.toMatch(/uniquelocal|linklocal|loopback|\/|true|^\$\{[^}]*:-\d+\}$/);
    }
  });

  it('names only environment variables billfold reads, in its settings and its comments alike', () => {
    const known = configVariables();
    expect(known.size).toBeGreaterThan(20);
    const named = new Set([
      ...Object.keys(billfoldEnvironment),
      ...[...composeText.matchAll(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g)].map((m) => m[0]),
    ]);
    expect(named).toContain('TLS_CERT_FILE');
    expect([...named].filter((name) => !known.has(name))).toEqual([]);
  });

  it('probes billfold on /healthz with node, the way the image does', () => {
    expect(healthchecks['docker-compose.yml']).toEqual(healthchecks.Dockerfile);
  });

  describe('the demo profile', () => {
    const demo = mapAt(services.demo, 'services.demo');
    const demoEnvironment = mapAt(demo.environment, 'services.demo.environment');
    // No sandbox and no store of the stack's: the environment under test says what runs.
    const stack = useStack({ sandbox: false, store: 'embedded', instances: 0 });
    let running: BillfoldProcess | undefined;
    afterEach(async () => {
      await running?.stop();
      running = undefined;
    });

    it('is billfold’s image as it starts, in development, on Redis, published on the host’s loopback only', () => {
      expect(stringsAt(demo.profiles, 'demo.profiles')).toEqual(['demo']);
      expect(demo.build).toBe(billfoldService.build);
      // The image's own command, the one the production services run.
      expect(demo.command).toBeUndefined();
      expect(stringsAt(demo.ports, 'demo.ports')).toEqual(['127.0.0.1:3000:3000']);
      const dependsOn = mapAt(demo.depends_on, 'demo.depends_on');
      expect(mapAt(dependsOn.redis, 'demo.depends_on.redis').condition).toBe('service_healthy');
      const { config } = loadConfig(containerEnvironment({}, demoEnvironment));
      expect(config.production).toBe(false);
      expect(config.store.kind).toBe('redis');
      expect(config.host).toBe('0.0.0.0');
      expect(config.port).toBe(3000);
      // No upstream configured: main.ts starts the bundled sandbox in its place.
      expect(Object.keys(config.providers)).toEqual([]);
    });

    it('serves the demo page and signs in to the sandbox, with nothing set by the operator', async () => {
      const environment = containerEnvironment({}, demoEnvironment);
      running = await stack.spawn({
        ...environment,
        // The container's addresses, on this machine: loopback, a free port, the test Redis.
        HOST: '127.0.0.1',
        PORT: String(await freePort()),
        REDIS_URL,
        REDIS_KEY_PREFIX: uniquePrefix(),
        SESSION_SECRETS: '',
        SESSION_ENCRYPTION_KEYS: '',
      });
      const page = await fetch(`${running.url}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await page.text()).toContain('demo.js');
      const origin = running.url.replace('127.0.0.1', 'localhost');
      const login = await fetch(`${running.url}/auth/billogram/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf': '1', origin },
        body: JSON.stringify(SANDBOX_DEMO_CREDENTIALS.billogram),
      });
      expect(login.status).toBe(200);
      const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0]!;
      const relayed = await fetch(`${running.url}/api/billogram/customer/1`, {
        headers: { cookie, 'x-csrf': '1', origin },
      });
      expect(relayed.status).toBe(200);
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// The `scale` profile: two replicas behind nginx, and nginx's configuration.

interface NginxDirective {
  name: string;
  args: string[];
  block?: NginxDirective[];
}

/** Reads nginx's configuration syntax: directives, their arguments, quoted strings and blocks. */
function readNginx(text: string, file: string): NginxDirective[] {
  const tokens = [
    ...text.matchAll(/#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([{};])|([^\s{};#"']+)/g),
  ].flatMap((m): { word?: string; mark?: string }[] => {
    if (m[0].startsWith('#')) return [];
    if (m[3] !== undefined) return [{ mark: m[3] }];
    return [{ word: m[1] ?? m[2] ?? m[4]! }];
  });
  let next = 0;
  const directives = (closing: boolean): NginxDirective[] => {
    const list: NginxDirective[] = [];
    for (;;) {
      const token = tokens[next++];
      if (token === undefined) {
        if (closing) throw new Error(`${file}: a block is not closed`);
        return list;
      }
      if (token.mark === '}') {
        if (!closing) throw new Error(`${file}: unexpected }`);
        return list;
      }
      if (token.word === undefined) throw new Error(`${file}: unexpected ${token.mark}`);
      const args: string[] = [];
      while (tokens[next]?.word !== undefined) args.push(tokens[next++]!.word!);
      const end = tokens[next++]?.mark;
      if (end === ';') list.push({ name: token.word, args });
      else if (end === '{') list.push({ name: token.word, args, block: directives(true) });
      else throw new Error(`${file}: ${token.word} is not ended by ; or {`);
    }
  };
  return directives(false);
}

const nginxConf = readNginx(readText('deploy/nginx.conf'), 'deploy/nginx.conf');
const each = (list: NginxDirective[] | undefined, name: string) =>
  (list ?? []).filter((d) => d.name === name);
const one = (list: NginxDirective[] | undefined, name: string, ...args: string[]): NginxDirective => {
  const found = each(list, name).filter((d) => args.every((arg, i) => d.args[i] === arg));
  if (found.length !== 1) throw new Error(`expected one ${[name, ...args].join(' ')}, found ${found.length}`);
  return found[0]!;
};
const headersSet = (location: NginxDirective) =>
  Object.fromEntries(
    each(location.block, 'proxy_set_header').map((d) => [d.args[0]!.toLowerCase(), d.args[1]]),
  );
/** nginx sizes and times as numbers: `2m` in bytes, `60s` in milliseconds. */
const nginxSize = (value: string) => {
  const [, digits, unit = ''] = /^(\d+)([km]?)$/i.exec(value) ?? [];
  return Number(digits) * ({ '': 1, k: 1024, m: 1024 ** 2 } as Record<string, number>)[unit.toLowerCase()]!;
};
const nginxMs = (value: string) => Number(/^(\d+)s$/.exec(value)![1]) * 1000;

const replicaService = mapAt(services['billfold-replica'], 'services.billfold-replica');
const replicaEnvironment = mapAt(replicaService.environment, 'services.billfold-replica.environment');
const proxyService = mapAt(services.proxy, 'services.proxy');
const http = one(nginxConf, 'http');
const tlsServer = each(http.block, 'server').find((server) =>
  each(server.block, 'listen').some((l) => l.args.includes('ssl')),
);
const proxiedRoot = tlsServer && one(tlsServer.block, 'location', '/');

/** Whether billfold, trusting `trustProxy`, takes a request from `address` saying `https` as secure. */
function believesHttps(trustProxy: Config['trustProxy'], address: string): boolean {
  const request = { socket: { remoteAddress: address }, headers: { 'x-forwarded-proto': 'https' } };
  return isSecureRequest(request as unknown as IncomingMessage, compileTrust(trustProxy));
}

describe('docker-compose.yml: two replicas behind a TLS-terminating proxy (profile scale)', () => {
  const proxyAddress = () =>
    stringAt(
      mapAt(mapAt(proxyService.networks, 'proxy.networks').edge, 'proxy.networks.edge').ipv4_address,
      'proxy.networks.edge.ipv4_address',
    );

  it('runs two replicas of billfold’s image, on the shared Redis, publishing no port of their own', () => {
    expect(stringsAt(replicaService.profiles, 'billfold-replica.profiles')).toEqual(['scale']);
    expect(mapAt(replicaService.deploy, 'billfold-replica.deploy').replicas).toBe('2');
    expect(replicaService.build).toBe(billfoldService.build);
    expect(replicaService.ports).toBeUndefined();
    const dependsOn = mapAt(replicaService.depends_on, 'billfold-replica.depends_on');
    expect(mapAt(dependsOn.redis, 'billfold-replica.depends_on.redis').condition).toBe('service_healthy');
    expect(replicaEnvironment.REDIS_URL).toBe(billfoldEnvironment.REDIS_URL);
    expect(stringsAt(replicaService.networks, 'billfold-replica.networks').sort()).toEqual([
      'default',
      'edge',
    ]);
  });

  it('configures the replicas as the single billfold is, except that they trust the proxy alone', () => {
    const { TRUST_PROXY: trusted, ...rest } = replicaEnvironment;
    const { TRUST_PROXY: _single, ...singleRest } = billfoldEnvironment;
    expect(rest).toEqual(singleRest);
    expect(trusted).toBe(proxyAddress());
    const { config } = loadConfig(containerEnvironment(OPERATOR, replicaEnvironment));
    expect(config.production).toBe(true);
    expect(config.store.kind).toBe('redis');
    expect(believesHttps(config.trustProxy, proxyAddress())).toBe(true);
    // Nothing else on the edge network, nor anything on the host, can claim a request came over TLS.
    for (const other of ['172.30.0.2', '172.30.0.11', '172.17.0.1', '127.0.0.1', '10.0.0.5']) {
      expect(believesHttps(config.trustProxy, other)).toBe(false);
    }
  });

  it('probes the replicas like the image does and gives them time to drain on SIGTERM', () => {
    const test = stringsAt(mapAt(replicaService.healthcheck, 'billfold-replica.healthcheck').test, 'test');
    expect(test).toEqual(healthchecks.Dockerfile);
    expect(replicaService.stop_grace_period).toBe(billfoldService.stop_grace_period);
  });

  it('puts nginx at that address on the edge network, once the replicas are healthy, publishing 443 only', () => {
    expect(stringsAt(proxyService.profiles, 'proxy.profiles')).toEqual(['scale']);
    expect(proxyService.image).toMatch(/^nginx:1\.(2[89]|[3-9]\d)/);
    const dependsOn = mapAt(proxyService.depends_on, 'proxy.depends_on');
    expect(mapAt(dependsOn['billfold-replica'], 'proxy.depends_on.billfold-replica').condition).toBe(
      'service_healthy',
    );
    expect(stringsAt(proxyService.ports, 'proxy.ports')).toEqual(['443:443']);
    const edge = mapAt(mapAt(compose.networks, 'networks').edge, 'networks.edge');
    const [pool] = (mapAt(edge.ipam, 'networks.edge.ipam').config ?? []) as Yaml[];
    const subnet = stringAt(mapAt(pool, 'networks.edge.ipam.config[0]').subnet, 'subnet');
    expect(proxyAddress().startsWith(subnet.replace(/\.0\/24$/, '.'))).toBe(true);
  });

  it('mounts deploy/nginx.conf as nginx’s configuration and the certificate directory, read-only', () => {
    const volumes = stringsAt(proxyService.volumes, 'proxy.volumes');
    expect(volumes).toContain('./deploy/nginx.conf:/etc/nginx/nginx.conf:ro');
    const certificates = volumes.find((v) => v.startsWith('./deploy/tls:'));
    expect(certificates).toMatch(/:ro$/);
    const mountedAt = certificates!.split(':')[1]!;
    for (const name of ['ssl_certificate', 'ssl_certificate_key']) {
      expect(one(tlsServer?.block, name).args[0]).toMatch(new RegExp(`^${mountedAt}/[\\w.-]+\\.pem$`));
    }
  });

  it('keeps the certificate folder, and any key or certificate file, out of git', async () => {
    const ignored = (path: string) =>
      new Promise<boolean>((resolve) =>
        execFile('git', ['check-ignore', '--no-index', '-q', path], { cwd: ROOT }, (error) =>
          resolve(error === null),
        ),
      );
    for (const path of ['deploy/tls/fullchain.pem', 'deploy/tls/privkey.pem', 'tls/server.key']) {
      expect(await ignored(path), path).toBe(true);
    }
    expect(await ignored('deploy/nginx.conf')).toBe(false);
  });

  it('checks the proxy’s health on the loopback listener nginx.conf defines', () => {
    const test = stringsAt(
      mapAt(proxyService.healthcheck, 'proxy.healthcheck').test,
      'proxy.healthcheck.test',
    );
    expect(test.slice(0, 2)).toEqual(['CMD', 'wget']);
    const probe = new URL(test.at(-1)!);
    const listener = each(http.block, 'server').find((server) =>
      each(server.block, 'listen').some((l) => l.args[0] === `${probe.hostname}:${probe.port}`),
    );
    expect(one(listener?.block, 'location', '=', probe.pathname).block).toContainEqual({
      name: 'return',
      args: ['200', 'ok\\n'],
    });
  });
});

describe('deploy/nginx.conf', () => {
  it('terminates TLS 1.2 and 1.3 on 443, TLS 1.2 with the forward-secret suites billfold itself uses', () => {
    expect(each(tlsServer?.block, 'listen').map((l) => l.args)).toEqual([['443', 'ssl']]);
    expect(one(tlsServer?.block, 'ssl_protocols').args).toEqual(['TLSv1.2', 'TLSv1.3']);
    const tls12 = TLS_PROFILE.ciphers.split(':').filter((suite) => !suite.startsWith('TLS_'));
    expect(one(tlsServer?.block, 'ssl_ciphers').args).toEqual([tls12.join(':')]);
    expect(one(tlsServer?.block, 'ssl_prefer_server_ciphers').args).toEqual(['off']);
    expect(one(http.block, 'server_tokens').args).toEqual(['off']);
  });

  it('sends every path to the replicas on billfold’s port, found again through Docker’s DNS as they change', () => {
    const upstreamName = one(proxiedRoot?.block, 'proxy_pass').args[0]!.replace(/^http:\/\//, '');
    const upstream = one(http.block, 'upstream', upstreamName);
    const [server] = each(upstream.block, 'server');
    expect(server?.args).toEqual([`billfold-replica:${containerEnvironment(OPERATOR).PORT}`, 'resolve']);
    expect(Object.keys(services)).toContain('billfold-replica');
    expect(one(upstream.block, 'zone').args[0]).toBeTruthy();
    expect(one(http.block, 'resolver').args[0]).toBe('127.0.0.11');
    // Kept-alive connections to the replicas need HTTP/1.1 and no Connection header passed on.
    expect(one(upstream.block, 'keepalive').args).toHaveLength(1);
    expect(one(proxiedRoot?.block, 'proxy_http_version').args).toEqual(['1.1']);
    expect(headersSet(proxiedRoot!).connection).toBe('');
  });

  it('tells billfold the scheme and replaces any client-sent X-Forwarded-For with the client’s address', () => {
    const headers = headersSet(proxiedRoot!);
    expect(headers['x-forwarded-proto']).toBe('$scheme');
    expect(headers['x-forwarded-for']).toBe('$remote_addr');
    expect(headers.host).toBe('$host');
  });

  it('lets billfold answer oversized bodies and slow upstreams itself, with its own JSON errors', () => {
    const { config } = loadConfig(containerEnvironment(OPERATOR, replicaEnvironment));
    expect(nginxSize(one(tlsServer?.block, 'client_max_body_size').args[0]!)).toBeGreaterThan(
      config.bodyLimitBytes,
    );
    expect(nginxMs(one(proxiedRoot?.block, 'proxy_read_timeout').args[0]!)).toBeGreaterThan(
      config.upstreamTimeoutMs,
    );
  });

  it('logs neither query strings nor cookies', () => {
    const format = one(http.block, 'log_format').args.slice(1).join('');
    expect(format).not.toMatch(/\$(request|request_uri|args|query_string|http_cookie|cookie_\w+)\b/);
    expect(each(http.block, 'access_log').map((d) => d.args[1])).toEqual([
      one(http.block, 'log_format').args[0],
    ]);
  });
});

describe('Dockerfile', () => {
  it('starts billfold the way npm start does: node dist/main.js', () => {
    const cmd = execForm(runtime.findLast((i) => i.keyword === 'CMD')?.args ?? '');
    expect(cmd.join(' ')).toBe(packageJson.scripts.start);
    // dist/main.js is what `npm run build` compiles from src/main.ts.
    const build = JSON.parse(readText('tsconfig.build.json')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    const entry = cmd[1]!;
    expect(entry.startsWith(`${build.compilerOptions.outDir}/`)).toBe(true);
    const source = join(
      build.compilerOptions.rootDir,
      entry.slice(build.compilerOptions.outDir.length + 1),
    ).replace(/\.js$/, '.ts');
    expect(source).toBe(join('src', 'main.ts'));
    expect(existsSync(join(ROOT, source))).toBe(true);
    expect(packageJson.scripts.build).toBe('tsc -p tsconfig.build.json');
  });

  it('builds with the full toolchain and ships production dependencies and the compiled output only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]!.args).toMatch(/^node:20-bookworm-slim\b/);
    const buildRuns = stages[0]!.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(buildRuns).toEqual(expect.arrayContaining(['npm ci', 'npm run build']));
    const runtimeRuns = runtime.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runtimeRuns.some((run) => /\bnpm ci --omit=dev\b/.test(run))).toBe(true);
    expect(runtimeRuns.some((run) => /\bnpm ci(?!\s+--omit=dev)/.test(run))).toBe(false);
    const copies = runtime.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    expect(copies).toEqual(
      expect.arrayContaining([expect.stringMatching(/^--from=\S+ \S*\/dist \.\/dist$/), 'public ./public']),
    );
  });

  it('runs as the unprivileged node user, listening on all interfaces on port 3000 in production', () => {
    const user = runtime.findLast((i) => i.keyword === 'USER');
    expect(user?.args).toBe('node');
    expect(runtime.indexOf(user!)).toBeLessThan(runtime.findIndex((i) => i.keyword === 'CMD'));
    const env = containerEnvironment(OPERATOR);
    expect({ NODE_ENV: env.NODE_ENV, HOST: env.HOST, PORT: env.PORT }).toEqual({
      NODE_ENV: 'production',
      HOST: '0.0.0.0',
      PORT: '3000',
    });
    expect(runtime.find((i) => i.keyword === 'EXPOSE')?.args).toBe('3000');
    const known = configVariables();
    expect(Object.keys(env).filter((name) => !known.has(name))).toEqual([]);
  });
});

describe.each(Object.entries(healthchecks))('the healthcheck in %s', (_file, test) => {
  const stack = useStack({ sandbox: false, store: 'embedded', instances: 0 });
  let billfold: RunningBillfold | undefined;
  afterEach(async () => {
    await billfold?.close();
    billfold = undefined;
  });

  it('passes against billfold in production over plain HTTP on /healthz', async () => {
    expect(test.join(' ')).toContain("path:'/healthz'");
    billfold = await stack.start({
      NODE_ENV: 'production',
      PUBLIC_ORIGIN: OPERATOR.PUBLIC_ORIGIN,
      SESSION_STORE: 'memory',
    });
    expect(billfold.config.production).toBe(true);
    const port = new URL(billfold.url).port;
    expect(await runHealthcheck(test, { PORT: port })).toBe(0);
  });

  it('fails when nothing answers on the port', async () => {
    expect(await runHealthcheck(test, { PORT: String(await freePort()) })).not.toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// .ci/run, driven against stand-ins for npm, apt-get and Redis that record every call.

interface CiMachine {
  dir: string;
  /** What the script called, one line per call: name, arguments, DEBIAN_FRONTEND for apt-get. */
  calls(): string[];
  run(): Promise<{ code: number; output: string }>;
}

const CI_SCRIPT = join(ROOT, '.ci/run');
// A scratch server for the tests: loopback only, nothing written to disk (`--save ""` logs as `--save `).
const REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save  --appendonly no';

async function createCiMachine(state: {
  redisInstalled: boolean;
  redisAnswering: boolean;
  chromiumInstalled: boolean;
  /** The benchmark's load generator; installed unless said otherwise. */
  wrkInstalled?: boolean;
  redisNeverStarts?: boolean;
  testsFail?: boolean;
}): Promise<CiMachine> {
  const dir = await mkdtemp(join(tmpdir(), 'billfold-ci-'));
  const bin = join(dir, 'bin');
  const spare = join(dir, 'spare');
  const chromium = join(dir, 'chromium');
  await Promise.all([mkdir(bin), mkdir(spare)]);
  const log = join(dir, 'calls.log');
  const shellStub = (name: string, body: string) => `#!/bin/sh\necho "${name} $*" >> '${log}'\n${body}\n`;
  const stubs: Record<string, string> = {
    npm: shellStub('npm', `if [ "$1" = test ] && [ -f '${dir}/tests-fail' ]; then exit 1; fi`),
    sleep: shellStub('sleep', ''),
    'redis-cli': shellStub('redis-cli', `if [ -f '${dir}/redis-up' ]; then echo PONG; else exit 1; fi`),
    'redis-server': shellStub('redis-server', `[ -f '${dir}/redis-never-starts' ] || : > '${dir}/redis-up'`),
    wrk: shellStub('wrk', ''),
    // Installing copies a package's stand-ins into place, as apt would put the real binaries there.
    'apt-get': `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, 'apt-get ' + args.join(' ') + ' DEBIAN_FRONTEND=' + process.env.DEBIAN_FRONTEND + '\\n');
if (args[0] === 'install') {
  for (const pkg of args.slice(1).filter((a) => !a.startsWith('-'))) {
    if (pkg === 'redis-server') for (const name of ['redis-server', 'redis-cli']) fs.copyFileSync(${JSON.stringify(spare)} + '/' + name, ${JSON.stringify(bin)} + '/' + name);
    else if (pkg === 'wrk') fs.copyFileSync(${JSON.stringify(spare)} + '/wrk', ${JSON.stringify(bin)} + '/wrk');
    else if (pkg === 'chromium') fs.writeFileSync(${JSON.stringify(chromium)}, '', { mode: 0o755 });
    else process.exit(100);
  }
}
`,
  };
  for (const [name, text] of Object.entries(stubs)) {
    const packaged = name === 'redis-server' || name === 'redis-cli' || name === 'wrk';
    await writeFile(join(packaged ? spare : bin, name), text, { mode: 0o755 });
    const installed = name === 'wrk' ? (state.wrkInstalled ?? true) : state.redisInstalled;
    if (packaged && installed) await copyFile(join(spare, name), join(bin, name));
  }
  await symlink('/bin/bash', join(bin, 'bash'));
  if (state.chromiumInstalled) await writeFile(chromium, '', { mode: 0o755 });
  if (state.redisAnswering) await writeFile(join(dir, 'redis-up'), '');
  if (state.redisNeverStarts) await writeFile(join(dir, 'redis-never-starts'), '');
  if (state.testsFail) await writeFile(join(dir, 'tests-fail'), '');

  return {
    dir,
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trimEnd().split('\n') : []),
    run: () =>
      new Promise((resolve) => {
        // Only the stand-ins are on PATH, so nothing here can reach the real apt, npm or Redis.
        const env = { PATH: bin, CI: 'true', CHROMIUM_PATH: chromium };
        const child = execFile(CI_SCRIPT, [], { env, timeout: 15_000 }, (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
        );
        child.stdin?.end();
      }),
  };
}

// A machine with none of what .ci/run installs and no Redis answering.
const BARE_MACHINE = {
  redisInstalled: false,
  redisAnswering: false,
  chromiumInstalled: false,
  wrkInstalled: false,
} as const;

describe('.ci/run', () => {
  const machines: CiMachine[] = [];
  const machine = async (state: Parameters<typeof createCiMachine>[0]) => {
    const created = await createCiMachine(state);
    machines.push(created);
    return created;
  };
  afterEach(async () => {
    await Promise.all(machines.splice(0).map((m) => rm(m.dir, { recursive: true, force: true })));
  });

  it('is an executable bash script that stops at the first failure', () => {
    expect(() => accessSync(CI_SCRIPT, constants.X_OK)).not.toThrow();
    const text = readText('.ci/run');
    expect(text.split('\n')[0]).toBe('#!/usr/bin/env bash');
    expect(text).toMatch(/^set -euo pipefail$/m);
  });

  it('on a bare machine installs Redis, Chromium and wrk after one package-list update, starts Redis, then tests, smokes the benchmark and soaks for a minute', async () => {
    const ci = await machine(BARE_MACHINE);
    const { code, output } = await ci.run();
    expect(code, output).toBe(0);
    const calls = ci.calls();
    expect(calls[0]).toBe('npm ci');
    expect(calls.slice(-3)).toEqual([
      'npm test',
      'npm run bench -- --smoke',
      'npm run soak -- --minutes 1 --sessions 2000',
    ]);
    expect(calls.filter((c) => c.startsWith('apt-get'))).toEqual([
      'apt-get update DEBIAN_FRONTEND=noninteractive',
      'apt-get install -y redis-server DEBIAN_FRONTEND=noninteractive',
      'apt-get install -y chromium DEBIAN_FRONTEND=noninteractive',
      'apt-get install -y wrk DEBIAN_FRONTEND=noninteractive',
    ]);
    expect(calls.filter((c) => c.startsWith('redis-server'))).toEqual([REDIS_START]);
    expect(calls.indexOf(REDIS_START)).toBeLessThan(calls.indexOf('npm test'));
    expect(output).toMatch(/==== Tests \(npm test\) ====/);
  });

  it('changes nothing on a second run: no apt, no second Redis', async () => {
    const ci = await machine(BARE_MACHINE);
    expect((await ci.run()).code).toBe(0);
    const first = ci.calls().length;
    const { code, output } = await ci.run();
    expect(code, output).toBe(0);
    expect(ci.calls().slice(first)).toEqual([
      'npm ci',
      'redis-cli -h 127.0.0.1 -p 6379 ping',
      'npm test',
      'npm run bench -- --smoke',
      'npm run soak -- --minutes 1 --sessions 2000',
    ]);
  });

  it('uses a Redis that already answers, and still installs redis-server for suites that start their own', async () => {
    const ci = await machine({ redisInstalled: false, redisAnswering: true, chromiumInstalled: true });
    const { code, output } = await ci.run();
    expect(code, output).toBe(0);
    expect(ci.calls().filter((c) => /^(apt-get|redis-server)/.test(c))).toEqual([
      'apt-get update DEBIAN_FRONTEND=noninteractive',
      'apt-get install -y redis-server DEBIAN_FRONTEND=noninteractive',
    ]);
  });

  it('gives up after a bounded wait when Redis does not come up, without running the tests', async () => {
    const ci = await machine({
      redisInstalled: true,
      redisAnswering: false,
      chromiumInstalled: true,
      redisNeverStarts: true,
    });
    const { code, output } = await ci.run();
    expect(code).not.toBe(0);
    expect(output).toMatch(/did not answer/);
    expect(ci.calls().filter((c) => c.startsWith('sleep')).length).toBeLessThanOrEqual(100);
    expect(ci.calls()).not.toContain('npm test');
  });

  it('fails when the tests fail', async () => {
    const ci = await machine({
      redisInstalled: true,
      redisAnswering: true,
      chromiumInstalled: true,
      testsFail: true,
    });
    const { code } = await ci.run();
    expect(code).not.toBe(0);
    expect(ci.calls().at(-1)).toBe('npm test');
  });
});
