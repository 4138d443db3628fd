import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback upstream with the identities the sandbox does not have: a BillingPlatform look-alike
 * (`<url>/bp`) whose login takes `loginDelayMs` and accepts `password` for any username, and a
 * Billbora look-alike (`<url>/bb`) whose exchange accepts any Supabase token it can read (its `sub`
 * and `email` are whatever the test put in it) and any API key starting `bb_`.
 */
export interface ScriptedUpstream {
  url: string;
  env: Record<string, string>;
  password: string;
  loginDelayMs: number;
  /** Every BillingPlatform login attempt, in arrival order. */
  logins: Array<{ username: string; password: string }>;
  /** The SessionIDs BillingPlatform's logout was called with. */
  logouts: string[];
  /** The SessionIDs BillingPlatform's login granted. */
  granted: string[];
  /** The Supabase tokens Billbora's exchange was called with. */
  exchanges: string[];
  close(): Promise<void>;
}

/** An unsigned JWT whose payload is `claims` (what billfold reads of a Supabase token before the exchange). */
export function supabaseToken(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ aud: 'authenticated', ...claims })}.c2ln`;
}

export async function startScriptedUpstream(): Promise<ScriptedUpstream> {
  const upstream: ScriptedUpstream = {
    url: '',
    env: {},
    password: 'right-password',
    loginDelayMs: 0,
    logins: [],
    logouts: [],
    granted: [],
    exchanges: [],
    close: () => Promise.resolve(),
  };
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
      const route = `${req.method} ${req.url?.split('?')[0]}`;
      switch (route) {
        case 'POST /bp/login': {
          const attempt = { username: String(body.username), password: String(body.password) };
          upstream.logins.push(attempt);
          setTimeout(() => {
            if (attempt.password !== upstream.password) {
              send(res, 401, { loginResponse: [{ SessionID: '', ErrorCode: '1', ErrorText: ['Invalid'] }] });
              return;
            }
            const SessionID = `bp-${randomBytes(9).toString('base64url')}`;
            upstream.granted.push(SessionID);
            send(res, 200, { loginResponse: [{ SessionID, ErrorCode: '0', ErrorText: [] }] });
          }, upstream.loginDelayMs);
          return;
        }
        case 'POST /bp/logout':
          upstream.logouts.push(String(req.headers.sessionid));
          send(res, 200, { logoutResponse: [{ ErrorCode: '0' }] });
          return;
        case 'POST /bb/users/auth/exchange/': {
          upstream.exchanges.push(String(body.supabase_token));
          const organization = typeof body.organization_id === 'string' ? body.organization_id : 'org_a';
          send(res, 200, {
            access: `acc-${randomBytes(9).toString('base64url')}`,
            refresh: `ref-${randomBytes(9).toString('base64url')}`,
            organization: { id: organization, name: organization },
          });
          return;
        }
        case 'GET /bb/invoices/': {
          const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
          send(res, key.startsWith('bb_') ? 200 : 401, key.startsWith('bb_') ? { results: [] } : {});
          return;
        }
        default:
          send(res, 200, {});
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  upstream.env = {
    BILLINGPLATFORM_BASE_URL: `${upstream.url}/bp`,
    BILLBORA_BASE_URL: `${upstream.url}/bb`,
    ALLOW_INSECURE_UPSTREAMS: 'true',
  };
  upstream.close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return upstream;
}
