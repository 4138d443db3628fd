import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE_FOLDERS = ['src', 'test', 'bench'];
const ROOT_FILES = ['eslint.config.js', 'vitest.config.ts'];

interface PackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  scripts?: Record<string, string>;
}

function filesUnder(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return filesUnder(path);
    return /\.(ts|js|mjs|cjs)$/.test(name) ? [path] : [];
  });
}

/** The packages a file imports (static, dynamic, type-only and `require`), by package name. */
function importedPackages(text: string): string[] {
  const specifiers = [
    ...text.matchAll(/\bfrom\s+['"]([^'"]+)['"]/g),
    ...text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g),
    ...text.matchAll(/\bimport\s+['"]([^'"]+)['"]/g),
    ...text.matchAll(/\brequire\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((match) => match[1] ?? '');
  return specifiers
    .filter((specifier) => !specifier.startsWith('.') && !specifier.startsWith('node:'))
    .map((specifier) =>
      specifier
        .split('/')
        .slice(0, specifier.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

/** The commands a package installs, which npm scripts may run without importing it. */
function binariesOf(name: string): string[] {
  const require = createRequire(join(ROOT, 'package.json'));
  const manifest = JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as {
    bin?: string | Record<string, string>;
  };
  if (!manifest.bin) return [];
  return typeof manifest.bin === 'string' ? [name.split('/').pop() ?? name] : Object.keys(manifest.bin);
}

/**
 * Every dependency nothing uses: a runtime dependency must be imported by billfold's own source
 * (src/); a development one by a source, test, benchmark or config file, or be a command an npm
 * script runs (`--import tsx` included); `@types/x` counts as used when `x` is.
 */
export function unusedDependencies(
  pkg: PackageJson,
  files: ReadonlyArray<{ path: string; text: string }>,
  binaries: (name: string) => string[],
): string[] {
  const importedBySource = new Set(
    files.filter((file) => file.path.startsWith('src/')).flatMap((file) => importedPackages(file.text)),
  );
  const importedAnywhere = new Set(files.flatMap((file) => importedPackages(file.text)));
  const scripts = Object.values(pkg.scripts ?? {}).join(' ');
  const scriptWords = new Set(scripts.split(/[\s;&|()]+/));
  const used = (name: string, imported: Set<string>): boolean => {
    const typed = /^@types\/(.+)$/.exec(name)?.[1];
    if (typed !== undefined) {
      const target = typed.includes('__') ? `@${typed.replace('__', '/')}` : typed;
      return target === 'node' || imported.has(target) || importedAnywhere.has(target);
    }
    return imported.has(name) || binaries(name).some((bin) => scriptWords.has(bin));
  };
  return [
    ...Object.keys(pkg.dependencies ?? {}).filter((name) => !used(name, importedBySource)),
    ...Object.keys(pkg.devDependencies ?? {}).filter((name) => !used(name, importedAnywhere)),
  ];
}

describe('package.json', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  const files = [
    ...SOURCE_FOLDERS.flatMap((folder) => filesUnder(join(ROOT, folder))),
    ...ROOT_FILES.map((name) => join(ROOT, name)),
  ].map((path) => ({ path: path.slice(ROOT.length), text: readFileSync(path, 'utf8') }));

  it('lists no dependency that no source, test, benchmark, config file or npm script uses', () => {
    expect(unusedDependencies(pkg, files, binariesOf)).toEqual([]);
  });

  it('would name a dependency nobody imports, and a runtime one only the tests import', () => {
    const planted: PackageJson = {
      ...pkg,
      dependencies: { ...pkg.dependencies, 'left-pad': '^1.3.0', supertest: '^7.0.0' },
    };
    expect(
      unusedDependencies(planted, files, (name) => (name === 'left-pad' ? [] : binariesOf(name))),
    ).toEqual(['left-pad', 'supertest']);
  });

  it('pins cookie and cookie-signature to the versions express-session loads, so npm installs one copy of each', () => {
    const require = createRequire(join(ROOT, 'package.json'));
    const fromExpressSession = createRequire(require.resolve('express-session'));
    for (const name of ['cookie', 'cookie-signature']) {
      expect(fromExpressSession.resolve(name)).toBe(require.resolve(name));
    }
  });
});
