// Child processes the benchmark and the soak start, the same way for each of them: compiled
// JavaScript (what production runs), or TypeScript through tsx.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Compiles billfold as `npm run build` does (dist/) and the baselines in bench/ (dist/bench/), so
 * that every contender runs as plain JavaScript, as billfold runs in production (`npm start`, the
 * Docker image), none of them through tsx's loader and the name-keeping wrappers it adds.
 */
export function compile(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  for (const project of ['tsconfig.build.json', 'tsconfig.bench.json']) {
    const result = spawnSync(process.execPath, [tsc, '-p', project], { cwd: ROOT, stdio: 'inherit' });
    if (result.status !== 0) throw new Error(`tsc -p ${project} failed`);
  }
}

const children: ChildProcess[] = [];

/** Stops `child` with the others at the end (a process that is not Node, such as redis-server). */
export function track(child: ChildProcess): void {
  children.push(child);
}

/**
 * Starts a Node process (a `.js` file as it is, TypeScript through tsx) and waits for `ready`;
 * `nodeOptions` go before the script (`--cpu-prof` to profile it).
 */
export function start(
  script: string,
  args: string[],
  env: Record<string, string>,
  ready: (line: string) => string | undefined,
  nodeOptions: string[] = [],
) {
  const loader = script.endsWith('.js') ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...nodeOptions, ...loader, script, ...args], {
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
