// Child processes the benchmark and the soak start: Node through tsx, the same way for each of them.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

const children: ChildProcess[] = [];

/** Stops `child` with the others at the end (a process that is not Node, such as redis-server). */
export function track(child: ChildProcess): void {
  children.push(child);
}

/**
 * Starts a Node process (TypeScript through tsx, the same way for every contender) and waits for
 * `ready`; `nodeOptions` go before the script (`--cpu-prof` to profile it).
 */
export function start(
  script: string,
  args: string[],
  env: Record<string, string>,
  ready: (line: string) => string | undefined,
  nodeOptions: string[] = [],
) {
  const child = spawn(process.execPath, [...nodeOptions, '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise<{ child: ChildProcess; value: string; output: string[] }>((resolve, reject) => {
    const output: string[] = [];
    let resolved = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (resolved) return; // stop keeping billfold's request log once it is up
      for (const line of chunk.toString().split('\n')) {
        output.push(line);
        const value = ready(line);
        if (value !== undefined) {
          resolved = true;
          resolve({ child, value, output });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

/** Reads the port billfold's start-up log line names. */
export const billfoldListening = (line: string) =>
  line.includes('"billfold listening"') ? String((JSON.parse(line) as { port: number }).port) : undefined;

/** Stops every process started here. */
export function stopChildren(): void {
  for (const child of children) child.kill('SIGTERM');
}
