// A baseline: the stack a team would assemble for a session-holding relay from each library's own
// README. Express, express-session on connect-redis (node-redis), http-proxy-middleware. No CSRF,
// CORS, sealing, policy checks, metrics or logs: only what the libraries do for a session and a proxy.
// `POST /login` stores an upstream session id in the session; `/api/billingplatform/*` relays with it.
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { createClient } from 'redis';

// What this stack keeps in its session (billfold's own SessionData is a different record).
type BenchSession = { upstreamSession?: string };
const held = (req: express.Request) => req.session as unknown as BenchSession;

const [upstreamOrigin, upstreamBase, redisUrl, port, prefix] = process.argv.slice(2);
if (!upstreamOrigin || !upstreamBase || !redisUrl || !port || !prefix) {
  throw new Error(
    'usage: express-stack <upstream origin> <upstream base path> <redis url> <port> <key prefix>',
  );
}

const redisClient = createClient({ url: redisUrl });
await redisClient.connect();

const app = express();
app.use(
  session({
    store: new RedisStore({ client: redisClient, prefix }),
    resave: false,
    saveUninitialized: false,
    secret: 'bench-express-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  }),
);
app.post('/login', express.json(), (req, res) => {
  held(req).upstreamSession = String((req.body as { sessionId?: unknown }).sessionId);
  res.status(204).end();
});
app.use(
  '/api/billingplatform',
  (req, res, next) => {
    if (held(req).upstreamSession) next();
    else res.status(401).end();
  },
  createProxyMiddleware<express.Request>({
    target: `${upstreamOrigin}${upstreamBase}`,
    changeOrigin: true,
    on: {
      proxyReq: (proxyReq, req) => {
        proxyReq.setHeader('sessionid', held(req).upstreamSession ?? '');
      },
    },
  }),
);
app.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
