import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A self-signed RSA certificate for localhost and its key, made by openssl into `dir`. */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
  /** SHA-256 fingerprint, as Node's X509Certificate and a TLS peer certificate give it. */
  fingerprint: string;
}

export async function createTestCertificate(dir: string, name: string): Promise<TestCertificate> {
  const certFile = join(dir, `${name}-cert.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  // RSA, so the key-exchange suites a profile must refuse are possible at all with this certificate.
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    `/CN=localhost/O=${name}`,
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  return { certFile, keyFile, fingerprint: new X509Certificate(await readFile(certFile)).fingerprint256 };
}
