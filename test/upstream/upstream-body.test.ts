import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamClient, type UpstreamClient } from '../../src/upstream/upstream-client.js';
import { waitUntil } from '../support/security-expect.js';

const MIB = 1024 * 1024;

/** An upstream whose answers the tests choose, counting what it wrote and which sockets it served on. */
interface Upstream {
  url: string;
  /** Bytes written by the answer in progress so far. */
  written: number;
  /** Whether the answer in progress was cut short by the caller. */
  cut: boolean;
  sockets: Set<unknown>;
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const state: Upstream = { url: '', written: 0, cut: false, sockets: new Set(), close: async () => {} };
  const server = http.createServer((req, res) => {
    state.sockets.add(req.socket);
    state.written = 0;
    state.cut = false;
    res.once('close', () => (state.cut = !res.writableFinished));
    const path = req.url ?? '';
    if (path === '/bom') {
      res.end(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"ok":true}')]));
      return;
    }
    if (path === '/small') {
      res.end('{"small":true}');
      return;
    }
    // `/big/<MiB>`: that many MiB, written as fast as the reader takes them; `/broken` stops halfway.
    const total = path === '/broken' ? 4 * MIB : Number(path.split('/')[2]) * MIB;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
    const pump = () => {
      while (state.written < total) {
        if (path === '/broken' && state.written >= total / 2) {
          res.destroy();
          return;
        }
        state.written += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return state;
}

/** A client that takes `first` bytes, then nothing more until `open` is called. */
function stalledClient(first = 0) {
  let received = 0;
  let release: (() => void) | undefined;
  let open = false;
  const ended = new Promise<void>((resolve) => {
    release = resolve;
  });
  const pending: Array<() => void> = [];
  const target = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      if (open || received <= first) done();
      else pending.push(done);
    },
    final(done) {
      release?.();
      done();
    },
  });
  return {
    target,
    ended,
    received: () => received,
    open() {
      open = true;
      for (const done of pending.splice(0)) done();
    },
  };
}

describe('an upstream answer as billfold reads it', () => {
  let upstream: Upstream;
  let client: UpstreamClient;
  beforeAll(async () => {
    upstream = await startUpstream();
    client = createUpstreamClient({ timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await client.close();
    await upstream.close();
  });
  const send = (path: string) =>
    client.send('billingplatform', { method: 'GET', url: new URL(path, upstream.url), headers: {} });

  it('reads no further than a slow client takes: the upstream waits, then finishes once it reads', async () => {
    const response = await send('/big/64');
    const reader = stalledClient(8 * MIB);
    response.body.pipeTo(reader.target);
    await waitUntil(() => reader.received() > 8 * MIB);
    // Kernel socket buffers take some megabytes; billfold itself holds none of the rest.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(upstream.written).toBeLessThan(32 * MIB);
    reader.open();
    await reader.ended;
    expect(reader.received()).toBe(64 * MIB);
  });

  it('cancels the upstream call when the client goes away mid-answer', async () => {
    const response = await send('/big/64');
    const reader = stalledClient();
    response.body.pipeTo(reader.target);
    await waitUntil(() => reader.received() > 0);
    reader.target.destroy();
    await waitUntil(() => upstream.cut);
    expect(upstream.written).toBeLessThan(64 * MIB);
  });

  it('ends the client’s answer broken when the upstream fails halfway', async () => {
    const response = await send('/broken');
    const reader = stalledClient();
    reader.open();
    response.body.pipeTo(reader.target);
    await waitUntil(() => reader.target.destroyed);
    expect(reader.received()).toBeLessThan(4 * MIB);
  });

  it('keeps the connection when it drops a small answer, and closes it rather than read a large one', async () => {
    upstream.sockets.clear();
    await (await send('/small')).body.dump();
    // undici frees the connection for the pool a tick after the answer ends.
    await new Promise(setImmediate);
    await (await send('/small')).body.dump();
    expect(upstream.sockets.size).toBe(1);
    const large = await send('/big/64');
    await large.body.dump();
    await waitUntil(() => upstream.cut);
    expect(upstream.written).toBeLessThan(64 * MIB);
  });

  it('reads text as undici does, a byte-order mark skipped', async () => {
    expect(await (await send('/bom')).body.text()).toBe('{"ok":true}');
  });

  it('hands the rest to the client after reading part of it to judge it', async () => {
    const response = await send('/big/8');
    const { chunks, ended } = await response.body.readUpTo(MIB);
    expect(ended).toBe(false);
    const head = chunks.reduce((size, chunk) => size + chunk.length, 0);
    const reader = stalledClient();
    reader.open();
    response.body.pipeTo(reader.target);
    await reader.ended;
    expect(head + reader.received()).toBe(8 * MIB);
  });
});
