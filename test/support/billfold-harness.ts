import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { SERVER_OPTIONS, serveBillfold } from '../../src/app.js';
import { createBillfold, type Billfold, type StoreChoice } from '../../src/billfold.js';
import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { TEST_SECRETS } from './test-config.js';

/** A billfold instance listening on a loopback port, with every log line it wrote. */
export interface RunningBillfold {
  url: string;
  config: Config;
  billfold: Billfold;
  /** The operator API's origin, when ADMIN_PORT and ADMIN_TOKEN are set (listening on an ephemeral port). */
  adminUrl: string | undefined;
  /** The metrics port's origin, when METRICS_PORT is set (listening on an ephemeral port). */
  metricsUrl: string | undefined;
  /** Raw JSON log lines, for asserting that no secret was logged. */
  logs: string[];
  /** Stops it; a second call waits for the first. */
  close(): Promise<void>;
}

/** Starts billfold in-process on an ephemeral port with test secrets and `env` on top. */
export async function startBillfold(
  env: Record<string, string | undefined> = {},
  options: { clock?: Clock } & StoreChoice = {},
): Promise<RunningBillfold> {
  const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', PORT: '0', ...TEST_SECRETS, ...env });
  const logs: string[] = [];
  const logger = createLogger(config.logLevel, { write: (line: string) => void logs.push(line) });
  const billfold = createBillfold(config, {
    clock: options.clock ?? systemClock,
    logger,
    ...(options.backend && { backend: options.backend }),
    ...(options.redisStore && { redisStore: options.redisStore }),
  });
  const servers: http.Server[] = [];
  const listen = async (handler: http.RequestListener) => {
    const server = http.createServer(SERVER_OPTIONS);
    serveBillfold(server, handler, logger);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  let closed: Promise<void> | undefined;
  const close = async () => {
    for (const server of servers) server.closeAllConnections();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    await billfold.close();
  };
  return {
    url: await listen(billfold.handler),
    adminUrl: billfold.adminHandler && (await listen(billfold.adminHandler)),
    metricsUrl: billfold.metricsHandler && (await listen(billfold.metricsHandler)),
    config,
    billfold,
    logs,
    // Once, however many owners (a test and its stack) stop it.
    close: () => (closed ??= close()),
  };
}

/** One answer, read whole. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body (undefined when it is not JSON). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read answers as loosely as a client would
  body: any;
  /** Every Set-Cookie header line. */
  setCookies: string[];
}

/** A client with a one-cookie jar, like a browser or a mobile app's HTTP client. */
export interface CookieClient {
  cookie: string | undefined;
  request(
    method: string,
    path: string,
    options?: { json?: unknown; body?: string | Buffer; headers?: Record<string, string> },
  ): Promise<Answer>;
  get(path: string, headers?: Record<string, string>): Promise<Answer>;
  post(path: string, json?: unknown, headers?: Record<string, string>): Promise<Answer>;
}

/** All responses this process received, for asserting that no secret ever reached a client. */
export const receivedBodies: string[] = [];

/**
 * Drives billfold the way its route-level tests read best: supertest, against the in-process app
 * (`target` is the address of the in-process server, or a request listener supertest serves itself).
 */
export function createCookieClient(target: string | http.RequestListener, cookieName: string): CookieClient {
  const agent = request(target);
  const client: CookieClient = {
    cookie: undefined,
    async request(method, path, options = {}) {
      const headers: Record<string, string> = { 'x-csrf': '1', ...options.headers };
      if (client.cookie && headers.cookie === undefined) headers.cookie = client.cookie;
      let body = options.body;
      if (options.json !== undefined) {
        body = JSON.stringify(options.json);
        headers['content-type'] ??= 'application/json';
      }
      let call = agent[method.toLowerCase() as 'get'](path)
        .redirects(0)
        .ok(() => true)
        .buffer(true)
        // Every answer as text, whatever its type, as a browser's `response.text()` would read it.
        .parse((res, done) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => done(null, Buffer.concat(chunks).toString('utf8')));
        });
      for (const [name, value] of Object.entries(headers)) call = call.set(name, value);
      // Bytes go as they are: superagent would otherwise serialise a Buffer by its content type, and
      // writes what the serialiser returns, a string in its typing.
      if (Buffer.isBuffer(body)) call = call.serialize((bytes: Buffer) => bytes as unknown as string);
      if (body !== undefined) call = call.send(body);
      const response = await call;
      const text = typeof response.body === 'string' ? response.body : '';
      const answerHeaders = new Headers();
      for (const [name, value] of Object.entries(response.headers as Record<string, string | string[]>)) {
        for (const line of Array.isArray(value) ? value : [value]) answerHeaders.append(name, line);
      }
      receivedBodies.push(text, JSON.stringify([...answerHeaders]));
      const setCookies = answerHeaders.getSetCookie();
      for (const line of setCookies) {
        const [pair] = line.split(';');
        const [name, value] = (pair ?? '').split('=');
        if (name === cookieName)
          client.cookie = /expires=Thu, 01 Jan 1970/i.test(line) || value === '' ? undefined : pair;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: response.status, headers: answerHeaders, text, body: parsed, setCookies };
    },
    get: (path, headers) => client.request('GET', path, headers ? { headers } : {}),
    post: (path, json, headers) =>
      client.request('POST', path, { ...(json !== undefined && { json }), ...(headers && { headers }) }),
  };
  return client;
}
