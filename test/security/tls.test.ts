import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls, { type SecureVersion, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TLS_PROFILE } from '../../src/tls-credentials.js';
import type { BillfoldProcess } from '../support/billfold-process.js';
import { useStack } from '../support/stack.js';
import { createTestCertificate, type TestCertificate } from '../support/tls-files.js';

interface Handshake {
  ok: boolean;
  protocol?: string | null;
  cipher?: string;
  fingerprint?: string | undefined;
  error?: string;
}

/** One TLS handshake with what the client offers; the socket is closed after. */
function handshake(
  port: number,
  offer: { minVersion?: SecureVersion; maxVersion?: SecureVersion; ciphers?: string } = {},
): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      rejectUnauthorized: false,
      ...offer,
    });
    socket.once('secureConnect', () => {
      resolve({
        ok: true,
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().standardName,
        fingerprint: socket.getPeerX509Certificate()?.fingerprint256,
      });
      socket.destroy();
    });
    socket.once('error', (error) => resolve({ ok: false, error: error.message }));
  });
}

/** `openssl s_client` offering only `cipher` over TLS 1.2; its exit code and what it printed. */
function opensslClient(port: number, cipher: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-cipher', cipher, '-servername', 'localhost'],
      { timeout: 10_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
    child.stdin?.end('Q\n');
  });
}

/** A kept-open TLS connection speaking HTTP/1.1, to show a reload leaves it alone. */
async function openConnection(port: number) {
  const socket: TLSSocket = await new Promise((resolve, reject) => {
    const created = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      rejectUnauthorized: false,
    });
    created.once('secureConnect', () => resolve(created));
    created.once('error', reject);
  });
  const get = (path: string) =>
    new Promise<string>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer) => {
        text += chunk.toString();
        const head = text.indexOf('\r\n\r\n');
        const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? NaN);
        if (head !== -1 && text.length >= head + 4 + length) {
          socket.off('data', onData);
          resolve(text);
        }
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    });
  return { socket, get, fingerprint: socket.getPeerX509Certificate()?.fingerprint256 };
}

const waitForLine = async (billfold: BillfoldProcess, text: string, after: number) => {
  for (let i = 0; i < 200; i++) {
    if (billfold.lines.slice(after).some((line) => line.includes(text))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no log line "${text}"`);
};

// Its own processes, on the embedded store, and no upstream: nothing here calls one.
const stack = useStack({
  sandbox: false,
  store: 'embedded',
  instances: 0,
  env: { BILLINGPLATFORM_BASE_URL: 'https://billing.example.com/rest/2.0' },
});

describe('billfold serving TLS itself', () => {
  let dir: string;
  let first: TestCertificate;
  let second: TestCertificate;
  let live: { certFile: string; keyFile: string };
  let billfold: BillfoldProcess;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'billfold-tls-'));
    [first, second] = await Promise.all([
      createTestCertificate(dir, 'first'),
      createTestCertificate(dir, 'second'),
    ]);
    live = { certFile: join(dir, 'live-cert.pem'), keyFile: join(dir, 'live-key.pem') };
    await copyFile(first.certFile, live.certFile);
    await copyFile(first.keyFile, live.keyFile);
    billfold = await stack.spawn({ TLS_CERT_FILE: live.certFile, TLS_KEY_FILE: live.keyFile });
    port = Number(new URL(billfold.url).port);
  }, 60_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('refuses TLS 1.2 suites without forward secrecy, which a server on Node’s defaults negotiates', async () => {
    // The control: the same certificate on Node's defaults agrees to RSA key exchange.
    const defaults = https.createServer({
      cert: await readFile(first.certFile),
      key: await readFile(first.keyFile),
    });
    await new Promise<void>((resolve) => defaults.listen(0, '127.0.0.1', resolve));
    try {
      const controlPort = (defaults.address() as AddressInfo).port;
      for (const cipher of ['AES128-SHA', 'AES256-SHA', 'AES128-GCM-SHA256']) {
        expect((await handshake(controlPort, { maxVersion: 'TLSv1.2', ciphers: cipher })).ok, cipher).toBe(
          true,
        );
        const refused = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: cipher });
        expect(refused.ok, cipher).toBe(false);
      }
      for (const cipher of ['DHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES128-SHA256']) {
        expect((await handshake(port, { maxVersion: 'TLSv1.2', ciphers: cipher })).ok, cipher).toBe(false);
      }
    } finally {
      defaults.close();
    }
  });

  it('refuses the same with openssl s_client, and agrees to an ECDHE suite', async () => {
    const refused = await opensslClient(port, 'AES128-SHA');
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/handshake failure|no cipher|alert/i);
    const agreed = await opensslClient(port, 'ECDHE-RSA-AES128-GCM-SHA256');
    expect(agreed.output).toMatch(/Cipher is ECDHE-RSA-AES128-GCM-SHA256/);
  });

  it('speaks TLS 1.3 and TLS 1.2 with ECDHE AEAD suites, and nothing older', async () => {
    expect(await handshake(port)).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
    for (const cipher of [
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-RSA-CHACHA20-POLY1305',
    ]) {
      expect(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: cipher })).toMatchObject({
        ok: true,
        protocol: 'TLSv1.2',
      });
    }
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const old = await handshake(port, {
        minVersion: version,
        maxVersion: version,
        ciphers: 'DEFAULT@SECLEVEL=0',
      });
      expect(old.ok, version).toBe(false);
    }
    expect(TLS_PROFILE.minVersion).toBe('TLSv1.2');
  });

  it('warns that a certificate ends within 14 days (these last two)', () => {
    const warning = billfold.lines.find((line) => line.includes('TLS certificate expires within 14 days'));
    expect(JSON.parse(warning!)).toMatchObject({ level: 'warn', fingerprint: first.fingerprint });
  });

  it('takes up a certificate swapped on disk at SIGHUP: new connections see it, open ones carry on', async () => {
    const open = await openConnection(port);
    expect(open.fingerprint).toBe(first.fingerprint);
    expect(await open.get('/healthz')).toMatch(/^HTTP\/1\.1 200/);

    // Renewed the way certbot and friends do it: the new files written beside, then renamed over.
    await copyFile(second.certFile, `${live.certFile}.new`);
    await copyFile(second.keyFile, `${live.keyFile}.new`);
    await rename(`${live.keyFile}.new`, live.keyFile);
    await rename(`${live.certFile}.new`, live.certFile);
    expect((await handshake(port)).fingerprint).toBe(first.fingerprint);
    const before = billfold.lines.length;
    billfold.child.kill('SIGHUP');
    await waitForLine(billfold, 'TLS certificate reloaded', before);

    expect((await handshake(port)).fingerprint).toBe(second.fingerprint);
    expect((await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA' })).ok).toBe(false);
    // The connection opened before the reload was not dropped.
    expect(await open.get('/healthz')).toMatch(/^HTTP\/1\.1 200/);
    open.socket.destroy();
    expect(billfold.child.exitCode).toBeNull();
  });

  it('keeps the certificate in service when the renewed files do not load, and says so', async () => {
    await writeFile(
      live.certFile,
      '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n',
    );
    const before = billfold.lines.length;
    billfold.child.kill('SIGHUP');
    await waitForLine(billfold, 'TLS certificate not reloaded', before);
    expect((await handshake(port)).fingerprint).toBe(second.fingerprint);
    // A certificate that does not match the key is refused the same way.
    await copyFile(first.certFile, live.certFile);
    const again = billfold.lines.length;
    billfold.child.kill('SIGHUP');
    await waitForLine(billfold, 'TLS certificate not reloaded', again);
    expect((await handshake(port)).fingerprint).toBe(second.fingerprint);
    expect(billfold.child.exitCode).toBeNull();
  });
});

describe('TLS files that cannot be used', () => {
  it('stop start-up with the problem in the one configuration message, beside any other', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'billfold-tls-'));
    try {
      const failure = await stack
        .spawn({
          TLS_CERT_FILE: join(dir, 'missing-cert.pem'),
          TLS_KEY_FILE: join(dir, 'missing-key.pem'),
        })
        .then(
          () => 'started',
          (error: unknown) => (error as Error).message,
        );
      expect(failure).toMatch(/exited with 1/);
      expect(failure).toMatch(
        /Invalid configuration:\n\s+- TLS_CERT_FILE: cannot read .*missing-cert\.pem \(ENOENT\)/,
      );
      // With other problems, in the same message.
      const both = await stack
        .spawn({
          SESSION_SECRETS: 'short',
          TLS_CERT_FILE: join(dir, 'missing-cert.pem'),
          TLS_KEY_FILE: join(dir, 'missing-key.pem'),
        })
        .then(
          () => 'started',
          (error: unknown) => (error as Error).message,
        );
      expect(both).toMatch(/- SESSION_SECRETS: every secret must be at least 32 characters/);
      expect(both).toMatch(/- TLS_CERT_FILE: cannot read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // Two processes to start, on a machine that may be busy.
  }, 60_000);
});
