import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/**
 * Mozilla's "intermediate" server profile without its DHE suites: TLS 1.3, and TLS 1.2 with ECDHE
 * AEAD suites only, so every connection has forward secrecy. The client picks among them (they are
 * all strong, and a phone without AES hardware prefers ChaCha20).
 */
export const TLS_PROFILE = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  honorCipherOrder: false,
} as const satisfies SecureContextOptions;

/** The certificate and key, read and checked, with the profile: what an HTTPS server is given. */
export interface TlsCredentials {
  options: SecureContextOptions;
  /** The certificate's SHA-256 fingerprint and end of validity, for the log. */
  fingerprint: string;
  validTo: string;
}

/**
 * Reads TLS_CERT_FILE and TLS_KEY_FILE and checks them together (readable PEM, the key matching the
 * certificate) before anything uses them, so a bad file stops start-up, and a bad renewal leaves the
 * certificate in service in place. Throws with a message naming the problem.
 */
export function readTlsCredentials(files: {
  readonly certFile: string;
  readonly keyFile: string;
}): TlsCredentials {
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const options = {
    ...TLS_PROFILE,
    cert: read('TLS_CERT_FILE', files.certFile),
    key: read('TLS_KEY_FILE', files.keyFile),
  };
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(options.cert);
    createSecureContext(options);
  } catch (error) {
    throw new Error(
      `TLS_CERT_FILE and TLS_KEY_FILE: not a usable PEM certificate and matching key (${(error as Error).message})`,
    );
  }
  return { options, fingerprint: certificate.fingerprint256, validTo: certificate.validTo };
}
