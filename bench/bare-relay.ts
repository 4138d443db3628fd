// The floor billfold is measured against (docs/performance.md): node:http, an undici pool and one Redis
// GET per request, with no framework, no security checks and no decryption. It relays
// /api/<provider>/<path> to one upstream with a session id read from the cookie.
import http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { createClient } from 'redis';
import { Pool } from 'undici';

const [upstreamOrigin, upstreamBase, redisUrl, port, cookieName] = process.argv.slice(2);
if (!upstreamOrigin || !upstreamBase || !redisUrl || !port || !cookieName) {
  throw new Error(
    'usage: bare-relay <upstream origin> <upstream base path> <redis url> <port> <cookie name>',
  );
}

const redis = createClient({ url: redisUrl });
await redis.connect();
const pool = new Pool(upstreamOrigin, { connections: 256, pipelining: 1 });
const prefix = `${cookieName}=`;

const server = http.createServer((req, res) => {
  const cookie = req.headers.cookie ?? '';
  const start = cookie.indexOf(prefix);
  const sessionId = start === -1 ? '' : (cookie.slice(start + prefix.length).split(';')[0] ?? '');
  redis
    .get(`bare:${sessionId}`)
    .then(async (upstreamSession) => {
      if (!upstreamSession) {
        res.writeHead(401).end();
        return;
      }
      const path = (req.url ?? '/').replace(/^\/api\/[^/]+/, upstreamBase);
      const answer = await pool.request({ method: 'GET', path, headers: { sessionid: upstreamSession } });
      res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? '') });
      await pipeline(answer.body, res);
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
// Exits rather than dying on the signal, so that a `--cpu-prof` profile is written.
process.once('SIGTERM', () => process.exit(0));
