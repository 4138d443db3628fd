import { execFile } from 'node:child_process';
import { constants, openSync, readSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogDestination, createLogger } from '../../src/logger.js';
import { useStack } from '../support/stack.js';

const PIPE_CAPACITY = 1024 * 1024; // Linux gives a pipe 64 KiB by default; allow for a larger one.
const LINE = 'x'.repeat(1000);

/** A named pipe nobody reads: a stdout as blocked as it gets. */
async function blockedPipe(dir: string) {
  const path = join(dir, 'stdout');
  await promisify(execFile)('mkfifo', [path]);
  // Read-write, so opening needs no reader; non-blocking, so a full pipe answers EAGAIN.
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  return {
    fd,
    /** Reads what the pipe holds, freeing it. */
    drain: () => {
      const chunk = Buffer.alloc(64 * 1024);
      let text = '';
      for (;;) {
        try {
          const read = readSync(fd, chunk);
          if (read <= 0) break;
          text += chunk.subarray(0, read).toString();
        } catch {
          break;
        }
      }
      return text;
    },
  };
}

describe('the log destination', () => {
  const stack = useStack({ sandbox: false, store: 'embedded', instances: 0 });
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('holds at most its bound while stdout is blocked, dropping and counting the rest, and recovers after', async () => {
    dir = await mkdtemp(join(tmpdir(), 'billfold-log-'));
    const { fd, drain } = await blockedPipe(dir);
    let dropped = 0;
    const maxBytes = 256 * 1024;
    const destination = createLogDestination({ dest: fd, maxBytes, onDrop: (lines) => (dropped += lines) });
    const logger = createLogger('info', destination);
    const lines = 20_000; // about 20 MiB, far past the bound and the pipe
    for (let i = 0; i < lines; i++) logger.info({ i, filler: LINE }, 'request');
    const lineBytes = 1100;
    const kept = lines - dropped;
    expect(dropped).toBeGreaterThan(0);
    // What was not dropped fits in the bound plus what the pipe itself took.
    expect(kept * lineBytes).toBeLessThan(maxBytes + PIPE_CAPACITY + lineBytes);

    // Once the reader catches up, lines flow again.
    let seen = '';
    for (let i = 0; i < 100 && !seen.includes('"msg":"after"'); i++) {
      seen += drain();
      if (i === 0) logger.info('after');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(seen).toContain('"msg":"after"');
    // Closes the pipe too.
    destination.destroy();
  });

  it('counts each dropped line in log_lines_dropped_total when billfold runs with its stdout blocked', async () => {
    const billfold = await stack.spawn({
      BILLINGPLATFORM_BASE_URL: 'https://billing.example.com/rest/2.0',
      LOG_BUFFER_BYTES: String(64 * 1024),
      METRICS_PORT: '0',
    });
    try {
      const listening = JSON.parse(billfold.lines.find((line) => line.includes('"billfold listening"'))!);
      billfold.child.stdout?.pause();
      // Request lines are written whatever the answer; a long path makes each line long.
      const path = `/${'p'.repeat(2000)}`;
      for (let batch = 0; batch < 20; batch++) {
        await Promise.all(
          Array.from({ length: 50 }, () => fetch(`${billfold.url}${path}`).then((r) => r.text())),
        );
      }
      const scrape = await fetch(`http://127.0.0.1:${listening.metricsPort}/metrics`);
      const text = await scrape.text();
      const dropped = Number(/^log_lines_dropped_total (\d+)/m.exec(text)?.[1] ?? NaN);
      expect(dropped).toBeGreaterThan(0);
      expect((await fetch(`${billfold.url}/healthz`)).status).toBe(200);
    } finally {
      billfold.child.stdout?.resume();
      await billfold.stop();
    }
    // A process to start and a thousand requests to answer, on a machine that may be busy.
  }, 90_000);
});
