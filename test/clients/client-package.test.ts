import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type * as BillfoldClientModule from '../../src/client/billfold-client.js';
import { ERROR_STATUS } from '../../src/errors.js';

const CLIENT = fileURLToPath(new URL('../../client', import.meta.url));
const run = promisify(execFile);

describe('the @billfold/client package', () => {
  it('builds to ESM with types, packs only its build, and imports nothing a browser lacks', async () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: CLIENT });
    const manifest = JSON.parse(await readFile(`${CLIENT}/package.json`, 'utf8')) as {
      exports: { '.': { types: string; default: string } };
    };
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: CLIENT });
    const [packed] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    const files = packed.files.map((file) => file.path).sort();
    expect(files).toContain(manifest.exports['.'].types.replace('./', ''));
    expect(files).toContain(manifest.exports['.'].default.replace('./', ''));
    expect(files.filter((path) => !path.startsWith('dist/') && path !== 'package.json')).toEqual([]);

    const entry = `${CLIENT}/${manifest.exports['.'].default}`;
    const module = (await import(pathToFileURL(entry).href)) as typeof BillfoldClientModule;
    expect(typeof module.createBillfoldClient).toBe('function');
    expect(module.ERROR_STATUS).toEqual(ERROR_STATUS);
    // Its only runtime import is its own code list: no Node module, no package.
    const code = await readFile(entry, 'utf8');
    expect([...code.matchAll(/^import .* from '([^']+)';$/gm)].map((match) => match[1])).toEqual([
      './error-codes.js',
    ]);
    const types = await readFile(`${CLIENT}/${manifest.exports['.'].types}`, 'utf8');
    expect(types).toContain('export declare function createBillfoldClient');
  }, 120_000);
});
