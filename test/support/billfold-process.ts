import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TEST_SECRETS } from './test-config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A billfold started the way `npm start` starts it (src/main.ts), as a separate process. */
export interface BillfoldProcess {
  url: string;
  /** Every line it wrote to stdout (JSON logs). */
  lines: string[];
  child: ChildProcess;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function spawnBillfold(env: Record<string, string>): Promise<BillfoldProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', PORT: '0', ...TEST_SECRETS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let errors = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (line.includes('"billfold listening"'))
          resolve(`http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`);
      }
    });
    void exited.then((code) => reject(new Error(`billfold exited with ${code}: ${errors}`)));
  });
  return {
    url,
    lines,
    child,
    stop(signal = 'SIGTERM') {
      child.kill(signal);
      return exited;
    },
  };
}
