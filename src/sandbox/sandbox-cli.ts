import { formatSandboxBanner, startSandbox } from './sandbox.js';

// `npm run sandbox`: the sandbox upstreams alone, configured from argv only (never the environment).
const USAGE = 'usage: sandbox-cli [--host 127.0.0.1] [--port 4000]';

function parseArgs(argv: readonly string[]): { host: string; port: number } {
  const options = { host: '127.0.0.1', port: 4000 };
  for (let index = 0; index < argv.length; index += 1) {
    const [flag = '', inline] = (argv[index] ?? '').split(/=(.*)/s);
    const value = inline ?? argv[(index += 1)];
    if (value === undefined || value === '') throw new Error(`${flag} needs a value`);
    if (flag === '--host') options.host = value;
    else if (flag === '--port' && /^\d{1,5}$/.test(value) && Number(value) <= 65_535)
      options.port = Number(value);
    else throw new Error(`unexpected argument ${flag} ${value}`);
  }
  return options;
}

let options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`sandbox: ${(error as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
const sandbox = await startSandbox(options);
process.stdout.write(`${formatSandboxBanner(sandbox)}\n`);

const stop = () => {
  process.stdout.write('Sandbox stopping\n');
  void sandbox.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
