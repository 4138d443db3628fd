import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A loopback proxy in front of an upstream that holds requests while its gate is closed. */
export interface GatedProxy {
  /** The proxy's origin; the upstream path is kept as is. */
  url: string;
  /** Requests arriving from now on wait; resolves `arrived` when the first one does. */
  close(): void;
  /** Resolves when a request is waiting at the closed gate. */
  arrived: () => Promise<void>;
  /** How many requests are waiting at the gate now. */
  waiting(): number;
  open(): void;
  stop(): Promise<void>;
}

export async function startGatedProxy(target: string): Promise<GatedProxy> {
  let gate: Promise<void> | undefined;
  let release: () => void = () => undefined;
  let notifyArrival: () => void = () => undefined;
  let arrival = Promise.resolve();
  let waiting = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        if (gate) {
          waiting++;
          notifyArrival();
          await gate;
          waiting--;
        }
        const headers = Object.fromEntries(
          Object.entries(req.headers).filter(
            ([name]) => !['host', 'connection', 'content-length'].includes(name),
          ),
        ) as Record<string, string>;
        const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
        const answer = await fetch(`${target}${req.url ?? ''}`, {
          method: req.method ?? 'GET',
          headers,
          body: body ?? null,
        });
        res.writeHead(answer.status, {
          'content-type': answer.headers.get('content-type') ?? 'application/octet-stream',
        });
        res.end(Buffer.from(await answer.arrayBuffer()));
      })().catch(() => res.destroy()); // the upstream went away: so does this answer
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close() {
      gate = new Promise((resolve) => (release = resolve));
      arrival = new Promise((resolve) => (notifyArrival = resolve));
    },
    arrived: () => arrival,
    waiting: () => waiting,
    open() {
      gate = undefined;
      release();
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
