# syntax=docker/dockerfile:1

# Build: the full toolchain compiles src/ into dist/ and stays behind.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies and compiled output only, owned by root and run by `node`, so a
# compromised process cannot rewrite billfold.
FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY public ./public
USER node
EXPOSE 3000
# Slim images have no curl. /healthz answers over plain HTTP even in production; with TLS_CERT_FILE
# set billfold speaks only HTTPS, and its certificate names the public host, not 127.0.0.1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const h=process.env.TLS_CERT_FILE?require('node:https'):require('node:http');const q=h.get({host:'127.0.0.1',port:process.env.PORT||3000,path:'/healthz',rejectUnauthorized:false,timeout:4000},(r)=>process.exit(r.statusCode===200?0:1));q.on('timeout',()=>q.destroy());q.on('error',()=>process.exit(1))"]
# Not `npm start`: it compiles first, and the runtime has no TypeScript. node is PID 1 here and
# billfold handles SIGTERM itself, draining in-flight requests before it exits.
CMD ["node", "dist/main.js"]
