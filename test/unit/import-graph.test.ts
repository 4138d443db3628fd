import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

/**
 * The layers of src/, lowest first; a file may import its own layer's files (in its own folder) and
 * any lower layer, never a higher one. docs/design.md states the same rule.
 */
const LAYERS: ReadonlyArray<{ name: string; holds: (file: string) => boolean }> = [
  // The typed client ships on its own: it imports nothing of the server, and the server shares its
  // error-code list.
  { name: 'client', holds: (file) => file.startsWith('client/') },
  { name: 'core', holds: (file) => !file.includes('/') && !TOP.has(file) },
  { name: 'session', holds: (file) => file.startsWith('session/') },
  { name: 'upstream (shared)', holds: (file) => /^upstream\/[^/]+$/.test(file) && !LIST.has(file) },
  { name: 'upstream/<provider>', holds: (file) => /^upstream\/[^/]+\/[^/]+$/.test(file) },
  { name: 'provider list', holds: (file) => LIST.has(file) },
  { name: 'config', holds: (file) => file === 'config.ts' },
  { name: 'middleware', holds: (file) => file.startsWith('middleware/') },
  { name: 'routes', holds: (file) => file.startsWith('routes/') },
  { name: 'sandbox', holds: (file) => file.startsWith('sandbox/') },
  { name: 'assembly', holds: (file) => file === 'app.ts' || file === 'billfold.ts' },
  { name: 'main', holds: (file) => file === 'main.ts' },
];
const LIST = new Set(['upstream/provider-modules.ts']);
const TOP = new Set(['config.ts', 'app.ts', 'billfold.ts', 'main.ts']);

function filesUnder(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return filesUnder(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative module a file imports: static, type-only, re-exported and dynamic. */
function relativeImports(text: string): string[] {
  return [
    ...text.matchAll(/\bfrom\s+['"](\.[^'"]+)['"]/g),
    ...text.matchAll(/\bimport\s*\(\s*['"](\.[^'"]+)['"]\s*\)/g),
    ...text.matchAll(/\bimport\s+['"](\.[^'"]+)['"]/g),
  ].map((match) => match[1] ?? '');
}

/** Whether a file imports the package `name` (any form, types included). */
function importsPackage(text: string, name: string): boolean {
  return new RegExp(`\\b(from|import)\\s*\\(?\\s*['"]${name}(/[^'"]*)?['"]`).test(text);
}

/** src/'s import graph: each file (relative to src/) and the files it imports. */
export function readImportGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const path of filesUnder(root)) {
    const file = relative(root, path);
    const targets = relativeImports(readFileSync(path, 'utf8')).map((specifier) =>
      relative(root, resolve(dirname(path), specifier.replace(/\.js$/, '.ts'))),
    );
    graph.set(file, targets);
  }
  return graph;
}

const layerOf = (file: string) => LAYERS.findIndex((layer) => layer.holds(file));
const folderOf = (file: string) => dirname(file);

/** The imports that go up a layer, or sideways into another folder of the same layer. */
export function wrongDirection(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    for (const target of targets) {
      const from = layerOf(file);
      const to = layerOf(target);
      if (to > from || (to === from && from !== 0 && folderOf(target) !== folderOf(file)))
        wrong.push(`${file} (${LAYERS[from]?.name}) -> ${target} (${LAYERS[to]?.name})`);
    }
  }
  return wrong;
}

/** One import cycle of the graph, as the files around it, or undefined when it has none. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): string[] | undefined => {
    if (state.get(file) === 'done') return undefined;
    if (state.get(file) === 'open') return [...path.slice(path.indexOf(file)), file];
    state.set(file, 'open');
    path.push(file);
    for (const target of graph.get(file) ?? []) {
      const cycle = visit(target);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(file, 'done');
    return undefined;
  };
  for (const file of graph.keys()) {
    const cycle = visit(file);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('the import graph of src/', () => {
  const graph = readImportGraph(SRC);

  it('places every file in a layer', () => {
    expect([...graph.keys()].filter((file) => layerOf(file) === -1)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(findCycle(graph)).toBeUndefined();
  });

  it('imports downwards only: core, session, upstream, providers, their list, config, edge, assembly', () => {
    expect(wrongDirection(graph)).toEqual([]);
  });

  it('keeps Express out of session/ and upstream/, but for a provider’s own routes', () => {
    const express = [...graph.keys()].filter(
      (file) =>
        /^(session|upstream)\//.test(file) &&
        !/^upstream\/[^/]+\/[^/]+-routes\.ts$/.test(file) &&
        importsPackage(readFileSync(join(SRC, file), 'utf8'), 'express') &&
        // The module contract names the Router type its routes return, and nothing else of Express.
        !(file === 'upstream/provider-module.ts'),
    );
    expect(express).toEqual([]);
  });

  it('catches what it looks for: a cycle, an upward import and a provider importing another', () => {
    const broken = new Map([
      ['session/session-record.ts', ['upstream/provider-adapter.ts']],
      ['upstream/provider-adapter.ts', ['session/session-record.ts']],
      ['upstream/bill/bill-adapter.ts', ['upstream/billbora/billbora-adapter.ts']],
      ['upstream/billbora/billbora-adapter.ts', []],
    ]);
    expect(findCycle(broken)).toEqual([
      'session/session-record.ts',
      'upstream/provider-adapter.ts',
      'session/session-record.ts',
    ]);
    expect(wrongDirection(broken)).toEqual([
      'session/session-record.ts (session) -> upstream/provider-adapter.ts (upstream (shared))',
      'upstream/bill/bill-adapter.ts (upstream/<provider>) -> upstream/billbora/billbora-adapter.ts (upstream/<provider>)',
    ]);
  });
});
