import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request as it passed through the interposer, body read whole. */
export interface InterposedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An upstream answer read whole. */
export interface InterposedAnswer {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

/**
 * A loopback server in front of an emulator: every request is forwarded to `target` as is, unless
 * `respond` answers it itself; it may also forward first and send the emulator's answer its own way
 * (slowly, altered). Used where a test needs an upstream that behaves badly on one path only.
 */
export interface Interposer {
  /** Use in place of the emulator's origin. */
  url: string;
  respond:
    | ((
        request: InterposedRequest,
        forward: () => Promise<InterposedAnswer>,
        res: http.ServerResponse,
      ) => boolean | Promise<boolean>)
    | undefined;
  openSockets(): number;
  close(): Promise<void>;
}

export async function startInterposer(target: string): Promise<Interposer> {
  const sockets = new Set<Socket>();
  const agent = new http.Agent({ keepAlive: true });
  const forwardTo = (request: InterposedRequest) =>
    new Promise<InterposedAnswer>((resolve, reject) => {
      const out = http.request(
        new URL(request.url, target),
        { method: request.method, headers: { ...request.headers, host: new URL(target).host }, agent },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('error', reject);
          answer.on('end', () => {
            const headers: OutgoingHttpHeaders = { ...answer.headers };
            delete headers['transfer-encoding'];
            delete headers.connection;
            delete headers['keep-alive'];
            resolve({ status: answer.statusCode ?? 502, headers, body: Buffer.concat(chunks) });
          });
        },
      );
      out.on('error', reject);
      out.end(request.body);
    });
  const interposer: Interposer = {
    url: '',
    respond: undefined,
    openSockets: () => sockets.size,
    close: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      const forward = () => forwardTo(request);
      void (async () => {
        try {
          if (interposer.respond && (await interposer.respond(request, forward, res))) return;
          const answer = await forward();
          res.writeHead(answer.status, { ...answer.headers, 'content-length': answer.body.length });
          res.end(answer.body);
        } catch {
          res.destroy();
        }
      })();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  interposer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  interposer.close = async () => {
    server.closeAllConnections();
    agent.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return interposer;
}

/** Writes `answer` with its headers at once and its body a slice every `everyMs`, over `slices` slices. */
export function trickle(
  res: http.ServerResponse,
  answer: InterposedAnswer,
  slices: number,
  everyMs: number,
): void {
  res.writeHead(answer.status, { ...answer.headers, 'content-length': answer.body.length });
  const size = Math.ceil(answer.body.length / slices);
  let offset = 0;
  const next = () => {
    if (res.destroyed) return;
    const slice = answer.body.subarray(offset, offset + size);
    offset += size;
    if (offset >= answer.body.length) {
      res.end(slice);
      return;
    }
    res.write(slice);
    setTimeout(next, everyMs);
  };
  next();
}
