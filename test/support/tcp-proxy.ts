import net, { type AddressInfo } from 'node:net';

/** A loopback TCP relay in front of one server, whose connections the test can cut. */
export interface TcpProxy {
  /** `redis://127.0.0.1:<port>`: where a client connects instead of the server. */
  url: string;
  /** The server-side addresses (`127.0.0.1:<port>`) of the connections open now, as the server sees them. */
  upstreamAddresses(): `${string}:${number}`[];
  /** Drops every connection and refuses new ones until `restore`: a network partition. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: TcpProxy = {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upstreamAddresses: () =>
      [...pairs].flatMap(({ upstream }) =>
        upstream.localPort === undefined ? [] : [`127.0.0.1:${upstream.localPort}` as const],
      ),
    cut() {
      refusing = true;
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    restore() {
      refusing = false;
    },
    async close() {
      proxy.cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return proxy;
}
