import http, { type RequestListener, type Server } from 'node:http';
import https from 'node:https';
import { SERVER_OPTIONS, serveBillfold } from './app.js';
import { createBillfold } from './billfold.js';
import { systemClock } from './clock.js';
import { ConfigError, loadConfig, type LoadedConfig } from './config.js';
import { createLogDestination, createLogger } from './logger.js';
import type { Sandbox } from './sandbox/sandbox.js';
import { PROVIDER_MODULES } from './upstream/provider-modules.js';
import { readTlsCredentials, type TlsCredentials } from './tls-credentials.js';
import { tracesRequested } from './tracing.js';

const SHUTDOWN_GRACE_MS = 10_000;
const CERTIFICATE_WARNING_MS = 14 * 86_400_000;
const EXIT_FLUSH_MS = 2000;

/** Stops the process with every configuration problem in one message. */
function refuseToStart(problems: string[]): never {
  process.stderr.write(`billfold: ${new ConfigError(problems).message}\n`);
  process.exit(1);
}

/** What is wrong with the TLS files the environment names, so one message lists it with the rest. */
function tlsProblems(env: Record<string, string | undefined>): string[] {
  const certFile = env.TLS_CERT_FILE?.trim();
  const keyFile = env.TLS_KEY_FILE?.trim();
  if (!certFile || !keyFile) return [];
  try {
    readTlsCredentials({ certFile, keyFile });
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

function loadOrRefuse(env: Record<string, string | undefined>): LoadedConfig {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) refuseToStart([...error.problems, ...tlsProblems(env)]);
    throw error;
  }
}

/** The only place that reads the environment, listens, and handles signals. */
async function main(): Promise<void> {
  const env: Record<string, string | undefined> = { ...process.env };
  // Production is what the parsed configuration says, here as everywhere else.
  let loaded = loadOrRefuse(env);
  // With no upstream configured in development, billfold runs against its bundled sandbox upstreams.
  let sandbox: Sandbox | undefined;
  let banner = '';
  // Every provider module's slice is absent when none is configured.
  if (!loaded.config.production && PROVIDER_MODULES.every((module) => !loaded.config.providers[module.id])) {
    // Loaded only here, so a production start never touches the emulators.
    const { formatSandboxBanner, startSandbox } = await import('./sandbox/sandbox.js');
    sandbox = await startSandbox({ billApiVersion: env.BILL_API_VERSION === 'v3' ? 'v3' : 'v2' });
    banner = formatSandboxBanner(sandbox);
    try {
      loaded = loadConfig({ ...env, ...sandbox.env });
    } catch (error) {
      await sandbox.close();
      if (error instanceof ConfigError) refuseToStart(error.problems);
      throw error;
    }
  }
  const { config, warnings } = loaded;
  // The SDK reads the standard OTEL_* variables itself; billfold's metrics stay Prometheus and its
  // logs stay on stdout, so it exports traces alone. Loaded only when asked for: off costs nothing.
  let telemetry: { shutdown(): Promise<void> } | undefined;
  if (tracesRequested(env)) {
    const { NodeSDK } = await import('@opentelemetry/sdk-node');
    // `billfold` names the service unless the environment does (the SDK would let ours win).
    const named = env.OTEL_SERVICE_NAME || /(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
    const sdk = new NodeSDK({
      ...(!named && { serviceName: 'billfold' }),
      metricReaders: [],
      logRecordProcessors: [],
    });
    sdk.start();
    telemetry = sdk;
  }
  let tls: TlsCredentials | undefined;
  try {
    tls = config.tls && readTlsCredentials(config.tls);
  } catch (error) {
    await sandbox?.close();
    refuseToStart([(error as Error).message]);
  }
  // Lines held for a slow stdout are bounded; what does not fit is dropped and counted in the metrics,
  // once they exist (until then, here). The batch is flushed every second and on exit.
  let droppedEarly = 0;
  let countDropped = (lines: number): void => {
    droppedEarly += lines;
  };
  const logger = createLogger(
    config.logLevel,
    createLogDestination({ maxBytes: config.logBufferBytes, onDrop: (lines) => countDropped(lines) }),
  );
  let flushing = false;
  setInterval(() => {
    // One flush at a time: a busy stdout must not collect a drain listener per second.
    if (flushing) return;
    flushing = true;
    logger.flush(() => (flushing = false));
  }, 1000).unref();
  for (const warning of warnings) logger.warn(warning);

  const billfold = createBillfold(config, { clock: systemClock, logger });
  countDropped = (lines) => billfold.metrics.countDroppedLogLines(lines);
  if (droppedEarly > 0) countDropped(droppedEarly);
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
      // Spans still batched are sent before the process ends.
      Promise.all([billfold.close(), sandbox?.close(), telemetry?.shutdown()]).finally(() => {
        logger.info('billfold stopped');
        // A blocked stdout must not keep a stopped process alive.
        setTimeout(() => process.exit(0), EXIT_FLUSH_MS).unref();
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

  // An ending certificate is worth a line at start and at each reload, while there is time to renew it.
  const warnIfEnding = (credentials: TlsCredentials) => {
    const endsAt = Date.parse(credentials.validTo);
    if (endsAt - Date.now() < CERTIFICATE_WARNING_MS) {
      logger.warn(
        { validTo: credentials.validTo, fingerprint: credentials.fingerprint },
        endsAt < Date.now() ? 'TLS certificate has expired' : 'TLS certificate expires within 14 days',
      );
    }
  };
  if (tls) warnIfEnding(tls);

  // A renewed certificate is taken up on SIGHUP: new connections get it, open ones keep theirs. A file
  // that does not read or match its key leaves the current certificate in service. Without TLS there
  // is nothing to reload, but a SIGHUP (a log rotation's, a closed terminal's) must not stop billfold.
  const httpsServers: https.Server[] = [];
  const files = config.tls;
  process.on('SIGHUP', () => {
    if (!files) {
      logger.info('SIGHUP: no TLS certificate to reload');
      return;
    }
    try {
      const next = readTlsCredentials(files);
      for (const each of httpsServers) each.setSecureContext(next.options);
      logger.info({ fingerprint: next.fingerprint, validTo: next.validTo }, 'TLS certificate reloaded');
      warnIfEnding(next);
    } catch (error) {
      logger.error(
        { message: (error as Error).message },
        'TLS certificate not reloaded; the current one stays in service',
      );
    }
    logger.flush();
  });

  // The operator ports (admin, metrics) are served on OPERATOR_HOST, over TLS when configured.
  const serve = async (handler: RequestListener, listenPort: number, host: string) => {
    let created: Server;
    if (tls) {
      const secure = https.createServer({ ...tls.options, ...SERVER_OPTIONS });
      httpsServers.push(secure);
      created = secure;
    } else {
      created = http.createServer(SERVER_OPTIONS);
    }
    servers.push(created);
    serveBillfold(created, handler, logger);
    created.keepAliveTimeout = 65_000;
    created.headersTimeout = 66_000;
    created.requestTimeout = config.upstreamTimeoutMs + 30_000;
    await new Promise<void>((resolve) => created.listen(listenPort, host, resolve));
    const address = created.address();
    return { server: created, port: typeof address === 'object' && address ? address.port : listenPort };
  };
  const main = await serve(billfold.handler, config.port, config.host);
  const admin =
    billfold.adminHandler && config.admin
      ? await serve(billfold.adminHandler, config.admin.port, config.operatorHost)
      : undefined;
  const metrics =
    billfold.metricsHandler && config.metrics.port !== undefined
      ? await serve(billfold.metricsHandler, config.metrics.port, config.operatorHost)
      : undefined;
  const { port } = main;
  logger.info(
    {
      port,
      adminPort: admin?.port,
      metricsPort: metrics?.port,
      host: config.host,
      operatorHost: admin || metrics ? config.operatorHost : undefined,
      tls: tls && { fingerprint: tls.fingerprint, validTo: tls.validTo },
      store: config.store.kind,
      production: config.production,
      providers: Object.keys(config.providers),
      traces: telemetry !== undefined,
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
