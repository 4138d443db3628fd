import { readFileSync } from 'node:fs';
import http, { type RequestListener, type Server } from 'node:http';
import https from 'node:https';
import { createClientErrorHandler } from './app.js';
import { createBillfold } from './billfold.js';
import { systemClock } from './clock.js';
import { ConfigError, loadConfig } from './config.js';
import { pino } from 'pino';
import { createLogger } from './logger.js';
import type { Sandbox } from './sandbox/sandbox.js';

const UPSTREAM_VARIABLES = [
  'BILLINGPLATFORM_BASE_URL',
  'BILL_BASE_URL',
  'BILLOGRAM_BASE_URL',
  'BILLBORA_BASE_URL',
];
const SHUTDOWN_GRACE_MS = 10_000;

/** The only place that reads the environment, listens, and handles signals. */
async function main(): Promise<void> {
  const env: Record<string, string | undefined> = { ...process.env };
  // With nothing configured in development, billfold runs against its bundled sandbox upstreams.
  let sandbox: Sandbox | undefined;
  let banner = '';
  if ((env.NODE_ENV ?? 'development') !== 'production' && !UPSTREAM_VARIABLES.some((name) => env[name])) {
    // Loaded only here, so a production start never touches the emulators.
    const { formatSandboxBanner, startSandbox } = await import('./sandbox/sandbox.js');
    sandbox = await startSandbox({ billApiVersion: env.BILL_API_VERSION === 'v3' ? 'v3' : 'v2' });
    banner = formatSandboxBanner(sandbox);
    Object.assign(env, sandbox.env);
  }

  let loaded;
  try {
    loaded = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`billfold: ${error.message}\n`);
    await sandbox?.close();
    process.exit(1);
  }
  const { config, warnings } = loaded;
  // Log lines are written asynchronously in batches, so a slow stdout never stalls a request and a busy
  // instance does not pay a write per line; the batch is flushed every second and on exit.
  const logger = createLogger(config.logLevel, pino.destination({ sync: false, minLength: 4096 }));
  let flushing = false;
  setInterval(() => {
    // One flush at a time: a busy stdout must not collect a drain listener per second.
    if (flushing) return;
    flushing = true;
    logger.flush(() => (flushing = false));
  }, 1000).unref();
  for (const warning of warnings) logger.warn(warning);

  const billfold = createBillfold(config, { clock: systemClock, logger });
  const tls = config.tls && {
    cert: readFileSync(config.tls.certFile),
    key: readFileSync(config.tls.keyFile),
  };
  // Signals are handled from before the first listen, so a SIGTERM during start-up still stops cleanly.
  const servers: Server[] = [];
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'billfold stopping: finishing in-flight requests');
    // Stop accepting; in-flight requests finish; idle keep-alive sockets close now, busy ones after the grace.
    const closed = servers.map((each) => new Promise((resolve) => each.close(resolve)));
    void Promise.all(closed).then(() =>
      Promise.all([billfold.close(), sandbox?.close()]).finally(() => {
        logger.info('billfold stopped');
        logger.flush(() => process.exit(0));
      }),
    );
    // A keep-alive socket whose last request just finished is closed at the next sweep.
    const closeIdle = () => servers.forEach((each) => each.closeIdleConnections());
    setInterval(closeIdle, 100).unref();
    closeIdle();
    setTimeout(() => servers.forEach((each) => each.closeAllConnections()), SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // The operator ports (admin, metrics) are served like the main one: on HOST, over TLS when configured.
  const serve = async (handler: RequestListener, listenPort: number) => {
    const created = tls ? https.createServer(tls, handler) : http.createServer(handler);
    servers.push(created);
    created.on('clientError', createClientErrorHandler(logger));
    created.keepAliveTimeout = 65_000;
    created.headersTimeout = 66_000;
    created.requestTimeout = config.upstreamTimeoutMs + 30_000;
    await new Promise<void>((resolve) => created.listen(listenPort, config.host, resolve));
    const address = created.address();
    return { server: created, port: typeof address === 'object' && address ? address.port : listenPort };
  };
  const main = await serve(billfold.handler, config.port);
  const admin =
    billfold.adminHandler && config.admin ? await serve(billfold.adminHandler, config.admin.port) : undefined;
  const metrics =
    billfold.metricsHandler && config.metrics.port !== undefined
      ? await serve(billfold.metricsHandler, config.metrics.port)
      : undefined;
  const { port } = main;
  logger.info(
    {
      port,
      adminPort: admin?.port,
      metricsPort: metrics?.port,
      host: config.host,
      store: config.store.kind,
      production: config.production,
      providers: Object.keys(config.providers),
    },
    'billfold listening',
  );
  // Supervisors and tests wait for this line; it should not sit in the batch.
  logger.flush();
  if (sandbox) {
    const origin = `${config.tls ? 'https' : 'http'}://localhost:${port}`;
    process.stdout.write(`\n${banner}\nDemo page: ${origin}/\n\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `billfold: failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
