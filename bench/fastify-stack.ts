// A baseline: the fastify stack for a session-holding relay, from each plugin's own README. fastify,
// @fastify/cookie and @fastify/session on connect-redis (node-redis), @fastify/http-proxy. No CSRF,
// CORS, sealing, policy checks or metrics: only what the plugins do for a session and a proxy, and,
// given `logged`, fastify's own request log (`logger: true`, as fastify's README starts a server).
// `POST /login` stores an upstream session id in the session; `/api/billingplatform/*` relays with it.
import fastifyCookie from '@fastify/cookie';
import fastifyHttpProxy from '@fastify/http-proxy';
import fastifySession from '@fastify/session';
import { RedisStore } from 'connect-redis';
import Fastify, { type FastifyRequest } from 'fastify';
import { createClient } from 'redis';

// What this stack keeps in its session.
type BenchSession = { upstreamSession?: string };
const held = (request: Pick<FastifyRequest, 'session'>) => request.session as unknown as BenchSession;

const [upstreamOrigin, upstreamBase, redisUrl, port, prefix, logging] = process.argv.slice(2);
if (
  !upstreamOrigin ||
  !upstreamBase ||
  !redisUrl ||
  !port ||
  !prefix ||
  !['logged', 'quiet'].includes(logging ?? '')
) {
  throw new Error(
    'usage: fastify-stack <upstream origin> <upstream base path> <redis url> <port> <key prefix> logged|quiet',
  );
}

const redisClient = createClient({ url: redisUrl });
await redisClient.connect();

const server = Fastify({ logger: logging === 'logged' });
await server.register(fastifyCookie);
await server.register(fastifySession, {
  // connect-redis is an express-session store, which @fastify/session accepts; only billfold's own
  // typing of express-session's SessionData tells them apart.
  store: new RedisStore({ client: redisClient, prefix }) as unknown as fastifySession.SessionStore,
  secret: 'bench-fastify-secret-0123456789abcdefghijklmnopqrstuvwxyz',
  saveUninitialized: false,
  cookie: { secure: false },
});
server.post('/login', (request, reply) => {
  held(request).upstreamSession = String((request.body as { sessionId?: unknown }).sessionId);
  return reply.code(204).send();
});
await server.register(fastifyHttpProxy, {
  upstream: upstreamOrigin,
  prefix: '/api/billingplatform',
  rewritePrefix: upstreamBase,
  preHandler: (request, reply, done) => {
    if (held(request).upstreamSession) done();
    else void reply.code(401).send();
  },
  replyOptions: {
    rewriteRequestHeaders: (request, headers) => ({
      ...headers,
      sessionid: held(request).upstreamSession ?? '',
    }),
  },
});
await server.listen({ port: Number(port), host: '127.0.0.1' });
process.stdout.write('ready\n');
