import { createClient as createSupabaseClient } from '@supabase/supabase-js';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { WebSocket } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SANDBOX_DEMO_CREDENTIALS } from '../../src/sandbox/sandbox-demo.js';
import { createTestClock } from '../support/test-clock.js';
import { startTestSandbox, type TestSandbox } from './sandbox-test-client.js';

const demo = SANDBOX_DEMO_CREDENTIALS.billbora;
const APIKEY = { apikey: SANDBOX_DEMO_CREDENTIALS.supabaseAnonKey };
const VERSION = { 'x-supabase-api-version': '2024-01-01' };

describe('Supabase emulator', () => {
  let t: TestSandbox;
  // Near real time, because @supabase/supabase-js judges expiry by Date.now(). A refresh waits 300 ms
  // (not GoTrue's 5 s) for a concurrent one before its 409, to keep the suite quick.
  beforeAll(async () => {
    t = await startTestSandbox({ clock: createTestClock(Date.now()), supabaseConcurrentRefreshWaitMs: 300 });
  });
  afterAll(() => t.sandbox.close());
  beforeEach(() => t.sandbox.reset());

  const token = (grant: string, json: unknown, headers: Record<string, string> = APIKEY) =>
    t.call('POST', `/supabase/auth/v1/token?grant_type=${grant}`, { headers, json });
  const signIn = async () => {
    const session: { access_token: string; refresh_token: string; user: { id: string } } = (
      await token('password', demo)
    ).body;
    return session;
  };

  describe('POST /auth/v1/token?grant_type=password', () => {
    it('answers a session whose access token is an HS256 JWT with the documented claims', async () => {
      const answer = await token('password', demo);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        access_token: expect.any(String),
        token_type: 'bearer',
        expires_in: 3600,
        expires_at: Math.floor(t.clock.now() / 1000) + 3600,
        refresh_token: expect.any(String),
        user: expect.objectContaining({ id: expect.any(String), email: demo.email, aud: 'authenticated' }),
      });
      expect(decodeProtectedHeader(answer.body.access_token).alg).toBe('HS256');
      const claims = decodeJwt(answer.body.access_token);
      expect(claims).toEqual({
        sub: answer.body.user.id,
        email: demo.email,
        aud: 'authenticated',
        role: 'authenticated',
        session_id: expect.any(String),
        iat: Math.floor(t.clock.now() / 1000),
        exp: answer.body.expires_at,
      });
      expect(t.sandbox.supabase.sessions()).toContain(claims.session_id);
    });

    it('answers 401 without an apikey header, or with a wrong one', async () => {
      expect((await token('password', demo, {})).status).toBe(401);
      expect((await token('password', demo, { apikey: 'wrong' })).status).toBe(401);
    });

    it('answers wrong credentials with 400 and the newer body, echoing X-Supabase-Api-Version, when the request sends it', async () => {
      const answer = await token('password', { ...demo, password: 'wrong' }, { ...APIKEY, ...VERSION });
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({ code: 'invalid_credentials', message: expect.any(String) });
      expect(answer.headers.get('x-supabase-api-version')).toBe('2024-01-01');
    });

    it('answers wrong credentials with the older body, and no version header, when the request sends none', async () => {
      const answer = await token('password', { ...demo, password: 'wrong' });
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({ code: 400, error_code: 'invalid_credentials', msg: expect.any(String) });
      expect(answer.headers.get('x-supabase-api-version')).toBeNull();
    });
  });

  describe('POST /auth/v1/token?grant_type=refresh_token', () => {
    it('rotates the refresh token; the just-rotated one reused within the reuse interval answers the current pair', async () => {
      const session = await signIn();
      const refreshed = await token('refresh_token', { refresh_token: session.refresh_token });
      expect(refreshed.status).toBe(200);
      expect(refreshed.body.refresh_token).not.toBe(session.refresh_token);
      expect(decodeJwt(refreshed.body.access_token).session_id).toBe(
        decodeJwt(session.access_token).session_id,
      );
      t.clock.advance(9_000);
      const reused = await token('refresh_token', { refresh_token: session.refresh_token });
      expect(reused.status).toBe(200);
      expect(reused.body.refresh_token).toBe(refreshed.body.refresh_token);
      expect(t.sandbox.supabase.revokedSessions()).toEqual([]);
      expect((await token('refresh_token', { refresh_token: refreshed.body.refresh_token })).status).toBe(
        200,
      );
    });

    it('revokes the whole token family when the just-rotated token comes back after the reuse interval', async () => {
      const session = await signIn();
      const refreshed = await token('refresh_token', { refresh_token: session.refresh_token });
      t.clock.advance(10_001);
      const reused = await token(
        'refresh_token',
        { refresh_token: session.refresh_token },
        { ...APIKEY, ...VERSION },
      );
      expect(reused.status).toBe(400);
      expect(reused.body.code).toBe('refresh_token_already_used');
      const sessionId = String(decodeJwt(session.access_token).session_id);
      expect(t.sandbox.supabase.revokedSessions()).toEqual([sessionId]);
      expect(t.sandbox.supabase.sessions()).not.toContain(sessionId);
      // The newest token of the family is dead too.
      expect((await token('refresh_token', { refresh_token: refreshed.body.refresh_token })).status).toBe(
        400,
      );
    });

    it('revokes the family when an older token than the just-rotated one comes back, even within the interval', async () => {
      const session = await signIn();
      const second = await token('refresh_token', { refresh_token: session.refresh_token });
      const third = await token('refresh_token', { refresh_token: second.body.refresh_token });
      expect(third.status).toBe(200);
      const reused = await token(
        'refresh_token',
        { refresh_token: session.refresh_token },
        { ...APIKEY, ...VERSION },
      );
      expect(reused.status).toBe(400);
      expect(reused.body.code).toBe('refresh_token_already_used');
      expect((await token('refresh_token', { refresh_token: third.body.refresh_token })).status).toBe(400);
    });

    it('serialises concurrent refreshes of one session: one waits its turn, one held past the wait answers 409', async () => {
      const session = await signIn();
      t.sandbox.supabase.setRefreshDelay(100);
      // Within the wait: the second runs after the first and, reusing the just-rotated token, gets the same pair.
      const [a, b] = await Promise.all([
        token('refresh_token', { refresh_token: session.refresh_token }),
        token('refresh_token', { refresh_token: session.refresh_token }),
      ]);
      expect([a.status, b.status]).toEqual([200, 200]);
      expect(a.body.refresh_token).toBe(b.body.refresh_token);
      // Held longer than the wait: the late one is refused with 409, and nothing is revoked.
      t.sandbox.supabase.setRefreshDelay(600);
      const [c, d] = await Promise.all([
        token('refresh_token', { refresh_token: a.body.refresh_token }),
        token('refresh_token', { refresh_token: a.body.refresh_token }, { ...APIKEY, ...VERSION }),
      ]);
      expect(c.status).toBe(200);
      expect(d.status).toBe(409);
      expect(d.body).toEqual({
        code: 'conflict',
        message: 'Too many concurrent token refresh requests on the same session or refresh token',
      });
      expect(t.sandbox.supabase.revokedSessions()).toEqual([]);
    });

    it('accepts a used refresh token again, answering its successor, while single use is switched off', async () => {
      const session = await signIn();
      const first = await token('refresh_token', { refresh_token: session.refresh_token });
      t.sandbox.supabase.setSingleUseRefreshTokens(false);
      t.clock.advance(60_000);
      const again = await token('refresh_token', { refresh_token: session.refresh_token });
      expect(again.status).toBe(200);
      expect(again.body.refresh_token).toBe(first.body.refresh_token);
      t.sandbox.reset();
      expect((await token('refresh_token', { refresh_token: session.refresh_token })).status).toBe(400);
    });

    it('answers an unknown refresh token, or one of an ended session, with 400 refresh_token_not_found', async () => {
      const unknown = await token('refresh_token', { refresh_token: 'nope' }, { ...APIKEY, ...VERSION });
      expect(unknown.body).toEqual({ code: 'refresh_token_not_found', message: expect.any(String) });
      const session = await signIn();
      t.sandbox.supabase.expireSession(String(decodeJwt(session.access_token).session_id));
      const ended = await token(
        'refresh_token',
        { refresh_token: session.refresh_token },
        { ...APIKEY, ...VERSION },
      );
      expect(ended.body.code).toBe('refresh_token_not_found');
    });

    it('refuses another grant type', async () => {
      expect((await token('client_credentials', {})).status).toBe(400);
    });
  });

  describe('GET /auth/v1/user and POST /auth/v1/logout', () => {
    it('answers the user for a valid access token, 401 without one and 403 bad_jwt for an expired one', async () => {
      const session = await signIn();
      const bearer = { ...APIKEY, ...VERSION, authorization: `Bearer ${session.access_token}` };
      const user = await t.call('GET', '/supabase/auth/v1/user', { headers: bearer });
      expect(user.body).toMatchObject({ id: session.user.id, email: demo.email });
      expect((await t.call('GET', '/supabase/auth/v1/user', { headers: APIKEY })).status).toBe(401);
      t.clock.advance(3600_000);
      const expired = await t.call('GET', '/supabase/auth/v1/user', { headers: bearer });
      expect(expired.status).toBe(403);
      expect(expired.body.code).toBe('bad_jwt');
    });

    it('logout ends the session: its refresh token stops working', async () => {
      const session = await signIn();
      const logout = await t.call('POST', '/supabase/auth/v1/logout?scope=local', {
        headers: { ...APIKEY, authorization: `Bearer ${session.access_token}` },
      });
      expect(logout.status).toBe(204);
      expect((await token('refresh_token', { refresh_token: session.refresh_token })).status).toBe(400);
      expect(t.sandbox.supabase.sessions()).not.toContain(decodeJwt(session.access_token).session_id);
    });

    it('expireAllSessions ends every session', async () => {
      const session = await signIn();
      t.sandbox.supabase.expireAllSessions();
      expect(t.sandbox.supabase.sessions()).toEqual([]);
      expect((await token('refresh_token', { refresh_token: session.refresh_token })).status).toBe(400);
    });
  });

  describe('with the real @supabase/supabase-js client', () => {
    const createClient = () =>
      createSupabaseClient(t.sandbox.env.SUPABASE_URL!, t.sandbox.env.SUPABASE_ANON_KEY!, {
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        // Node 20 has no global WebSocket; the client wants one for realtime even though auth never uses it.
        realtime: { transport: WebSocket as never },
      }).auth;

    it('signs in, refreshes, reads the user and signs out', async () => {
      const client = createClient();
      const signedIn = await client.signInWithPassword(demo);
      expect(signedIn.error).toBeNull();
      const session = signedIn.data.session!;
      expect(session.user.email).toBe(demo.email);

      const refreshed = await client.refreshSession();
      expect(refreshed.error).toBeNull();
      expect(refreshed.data.session!.refresh_token).not.toBe(session.refresh_token);

      const user = await client.getUser();
      expect(user.error).toBeNull();
      expect(user.data.user!.email).toBe(demo.email);

      expect((await client.signOut()).error).toBeNull();
      const refused = await token('refresh_token', { refresh_token: refreshed.data.session!.refresh_token });
      expect(refused.status).toBe(400);
    });

    it('reads invalid_credentials as the error code of a wrong password', async () => {
      const { data, error } = await createClient().signInWithPassword({ ...demo, password: 'wrong' });
      expect(data.session).toBeNull();
      expect(error?.status).toBe(400);
      expect(error?.code).toBe('invalid_credentials');
    });

    it('reads refresh_token_already_used as the error code of a reused refresh token', async () => {
      const client = createClient();
      const session = (await client.signInWithPassword(demo)).data.session!;
      await token('refresh_token', { refresh_token: session.refresh_token });
      t.clock.advance(10_001);
      const { error } = await client.refreshSession(session);
      expect(error?.code).toBe('refresh_token_already_used');
    });

    it('meets the 409 when another refresh of the same session holds it past the wait', async () => {
      const client = createClient();
      const session = (await client.signInWithPassword(demo)).data.session!;
      t.sandbox.supabase.setRefreshDelay(600);
      const elsewhere = token('refresh_token', { refresh_token: session.refresh_token });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const { data, error } = await client.refreshSession(session);
      expect(data.session).toBeNull();
      expect(error?.status).toBe(409);
      expect(error?.code).toBe('conflict');
      expect((await elsewhere).status).toBe(200);
      expect(t.sandbox.supabase.revokedSessions()).toEqual([]);
    });
  });
});
