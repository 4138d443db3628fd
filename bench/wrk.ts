// The benchmark's load generator: wrk (Debian's `wrk` package), driven as a child process. Written in
// C, on one thread, it spends half the CPU per request that a load generator written for Node
// (autocannon) does, CPU the contenders on a small machine share with it.
import { spawn } from 'node:child_process';

export interface LoadOptions {
  url: string;
  connections: number;
  durationS: number;
  headers?: Record<string, string> | undefined;
}

export interface LoadResult {
  requests: number;
  rps: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  /** Connect, read, write and timeout errors together. */
  errors: number;
  non2xx: number;
}

const UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/** `635.91us`, `1.45ms`, `2.00s` in milliseconds. */
function milliseconds(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) throw new Error(`wrk printed a latency it cannot be read as: ${text}`);
  return Number(match[1]) * UNITS_MS[match[2]!]!;
}

/** What wrk printed, as figures; exported for its test. */
export function parseWrk(output: string): LoadResult {
  const requests = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(output);
  const percentile = (p: number) => {
    // wrk pads a figure shorter than its column with a trailing space (`1.34s `).
    const match = new RegExp(`^\\s+${p}%\\s+(\\S+)\\s*$`, 'm').exec(output);
    if (!match) throw new Error(`wrk printed no ${p}th percentile:\n${output}`);
    return milliseconds(match[1]!);
  };
  if (!requests) throw new Error(`wrk printed no request count:\n${output}`);
  const total = Number(requests[1]);
  const seconds = milliseconds(`${requests[2]!}${requests[3]!}`) / 1000;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    requests: total,
    rps: seconds > 0 ? total / seconds : 0,
    p50: percentile(50),
    p99: percentile(99),
    errors: socket ? socket.slice(1).reduce((sum, count) => sum + Number(count), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0),
  };
}

/** Drives `url` with `connections` keep-alive connections for `durationS` seconds, from one thread. */
export function wrk(options: LoadOptions): Promise<LoadResult> {
  const args = [
    '-t1',
    `-c${options.connections}`,
    `-d${options.durationS}s`,
    '--latency',
    '--timeout',
    '10s',
  ];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  args.push(options.url);
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new Error('the benchmark drives its load with wrk: install it (Debian: apt-get install wrk)')
          : error,
      ),
    );
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`wrk exited with ${code}:\n${output}`));
      else {
        try {
          resolve(parseWrk(output));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      }
    });
  });
}
