import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type SparticuzChromium from '@sparticuz/chromium';
import { chromium, type Browser } from 'playwright-core';

/** Where a system Chromium or Chrome usually sits: Debian's package first. */
const SYSTEM_CHROMIUMS = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
];

/** The one sentence the browser tests fail with when no Chromium can be had. */
export const NO_CHROMIUM =
  'No Chromium for the browser tests: run `npm install` (the @sparticuz/chromium dev dependency ' +
  'ships one for Linux x64), set CHROMIUM_PATH to a Chromium or Chrome binary, or ' +
  '`apt-get install -y chromium`.';

/** Headless, and quiet: no background calls to Google that could hang or flake a test run. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** What a source of Chromium offers: a binary to run, or why it has none. */
export type Found = { path: string } | { missing: string };

/**
 * The Chromium that @sparticuz/chromium ships brotli-compressed in its tarball, unpacked once per
 * version into the temp folder. The package unpacks into `os.tmpdir()` and takes any `chromium` it
 * finds there as finished, so each process unpacks into a fresh folder of its own and renames it
 * into place: parallel test files never run a half-written binary, nor another version's.
 */
export async function packagedChromium(): Promise<Found> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return {
      missing: `@sparticuz/chromium ships Chromium for Linux x64 only, not ${process.platform} ${process.arch}`,
    };
  }
  let Chromium: typeof SparticuzChromium;
  let version: string;
  try {
    Chromium = (await import('@sparticuz/chromium')).default;
    // The package exports no package.json; its manifest sits two folders above its entry.
    const entry = createRequire(import.meta.url).resolve('@sparticuz/chromium');
    const manifest = join(dirname(entry), '..', '..', 'package.json');
    version = (JSON.parse(await readFile(manifest, 'utf8')) as { version: string }).version;
  } catch {
    return { missing: '@sparticuz/chromium is not installed' };
  }
  const home = join(tmpdir(), `billfold-chromium-${version}`);
  const binary = join(home, 'chromium');
  if (await isExecutable(binary)) return { path: binary };
  const staging = await mkdtemp(join(tmpdir(), 'billfold-chromium-unpacking-'));
  const tmp = process.env.TMPDIR;
  process.env.TMPDIR = staging;
  let unpacking: Promise<string>;
  try {
    // The package reads the temp folder synchronously, when the call starts.
    unpacking = Chromium.executablePath();
  } finally {
    if (tmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmp;
  }
  try {
    await unpacking;
    await rename(staging, home);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // Another process renamed its copy into place first.
    if (!(await isExecutable(binary))) {
      return { missing: `@sparticuz/chromium could not be unpacked (${String(error)})` };
    }
  }
  return { path: binary };
}

/** Where `findChromium` looks; tests pass others. */
export interface ChromiumSources {
  env?: NodeJS.ProcessEnv;
  systemPaths?: readonly string[];
  packaged?: () => Promise<Found>;
}

/**
 * The Chromium the browser tests drive, first found wins: `CHROMIUM_PATH`, the system's, then the
 * one the @sparticuz/chromium dev dependency ships. Nothing is downloaded. A `CHROMIUM_PATH` that
 * names no executable is an error, never passed over.
 */
export async function findChromium({
  env = process.env,
  systemPaths = SYSTEM_CHROMIUMS,
  packaged = packagedChromium,
}: ChromiumSources = {}): Promise<string> {
  const chosen = env.CHROMIUM_PATH;
  if (chosen !== undefined && chosen !== '') {
    if (await isExecutable(chosen)) return chosen;
    throw new Error(`CHROMIUM_PATH=${chosen} is not an executable file. ${NO_CHROMIUM}`);
  }
  for (const path of systemPaths) if (await isExecutable(path)) return path;
  const found = await packaged();
  if ('path' in found) return found.path;
  throw new Error(`${NO_CHROMIUM} (${found.missing}.)`);
}

/** Starts headless Chromium, found by `findChromium`; fails with how to get one when there is none. */
export async function launchChromium(sources?: ChromiumSources): Promise<Browser> {
  const executablePath = await findChromium(sources);
  try {
    return await chromium.launch({
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      // Cold starts on a loaded 2-core machine take seconds.
      timeout: 60_000,
    });
  } catch (error) {
    throw new Error(`${executablePath} did not start (${String(error)}). ${NO_CHROMIUM}`);
  }
}

/** A throwaway self-signed certificate for `localhost` and 127.0.0.1. */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  remove(): Promise<void>;
}

export async function createSelfSignedCertificate(): Promise<TestCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'billfold-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return {
    certFile,
    keyFile,
    cert: await readFile(certFile),
    key: await readFile(keyFile),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** An HTTPS origin on another localhost port that serves one plain page, as a third-party SPA host would. */
export interface OtherOrigin {
  origin: string;
  close(): Promise<void>;
}

export async function startOtherOrigin(tls: TestCertificate, title: string): Promise<OtherOrigin> {
  const server = https.createServer({ cert: tls.cert, key: tls.key }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>${title}</title><link rel="icon" href="data:,"><p>${title}</p>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `https://localhost:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
