import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a test can see and change of the fake bank. */
export interface FakeBankControl {
  /** Every request as it arrived: method, path, Authorization header. */
  readonly requests: Array<{ method: string; path: string; authorization: string | undefined }>;
  /** Ends every access token (refresh tokens keep working), as an upstream's expiry would. */
  expireAccessTokens(): void;
}

/** The fake bank on a loopback port. */
export interface FakeBankEmulator {
  readonly url: string;
  readonly control: FakeBankControl;
  close(): Promise<void>;
}

const USERS = new Map([['ada@example.com', 'ada-password']]);

/**
 * A small upstream of a kind billfold does not ship: `POST /login {user, password}` answers an
 * access and a single-use refresh token, `POST /refresh {refresh}` rotates them, `POST /logout`
 * ends the access token's session, and `GET /accounts` wants `Authorization: Bearer <access>`.
 */
export async function startFakeBankEmulator(): Promise<FakeBankEmulator> {
  const access = new Map<string, string>();
  const refresh = new Map<string, string>();
  const requests: FakeBankControl['requests'] = [];
  const issue = (user: string) => {
    const tokens = {
      access: `fa_${randomBytes(12).toString('hex')}`,
      refresh: `fr_${randomBytes(12).toString('hex')}`,
    };
    access.set(tokens.access, user);
    refresh.set(tokens.refresh, user);
    return tokens;
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
      const reply = (status: number, body?: unknown) => {
        res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
        res.end(body === undefined ? undefined : JSON.stringify(body));
      };
      let body: Record<string, unknown> = {};
      try {
        body =
          chunks.length > 0 ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>) : {};
      } catch {
        reply(400, { error: 'bad_json' });
        return;
      }
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const user = bearer === undefined ? undefined : access.get(bearer);
      if (req.method === 'POST' && path === '/login') {
        const { user: name, password } = body;
        if (typeof name === 'string' && USERS.get(name) === password) reply(200, issue(name));
        else reply(401, { error: 'invalid_credentials' });
      } else if (req.method === 'POST' && path === '/refresh') {
        const owner = typeof body.refresh === 'string' ? refresh.get(body.refresh) : undefined;
        if (owner === undefined) {
          reply(401, { error: 'invalid_refresh' });
          return;
        }
        refresh.delete(body.refresh as string);
        reply(200, issue(owner));
      } else if (req.method === 'POST' && path === '/logout') {
        if (bearer !== undefined) access.delete(bearer);
        reply(204);
      } else if (req.method === 'GET' && path === '/accounts') {
        if (user === undefined) reply(401, { error: 'expired' });
        else reply(200, { owner: user, accounts: [{ id: 'acc_1', balance: 42 }] });
      } else {
        reply(404, { error: 'not_found' });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    control: {
      requests,
      expireAccessTokens: () => access.clear(),
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
