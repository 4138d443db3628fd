import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SKIPPED = new Set(['node_modules', '.git', 'dist', 'coverage', 'test-results']);
const WIDTH = 100;

function markdownUnder(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    if (SKIPPED.has(name)) return [];
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return markdownUnder(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

const documents = markdownUnder(ROOT).map((path) => ({
  path,
  name: relative(ROOT, path),
  lines: readFileSync(path, 'utf8').split('\n'),
}));

/** Every `](target)` link in a document that points into the repository, with its line number. */
function repositoryLinks(lines: string[]): Array<{ target: string; line: number }> {
  return lines.flatMap((text, index) =>
    [...text.matchAll(/\]\(([^)\s]+)\)/g)]
      .map((match) => match[1]!)
      .filter((target) => !/^[a-z]+:/i.test(target) && !target.startsWith('#'))
      .map((target) => ({ target: target.split('#')[0]!, line: index + 1 })),
  );
}

describe('the Markdown documents', () => {
  it('are found: the README, SECURITY.md, the CHANGELOG and docs/', () => {
    const names = documents.map((each) => each.name);
    expect(names).toEqual(expect.arrayContaining(['README.md', 'SECURITY.md', 'CHANGELOG.md']));
    expect(names.filter((name) => name.startsWith('docs/')).length).toBeGreaterThanOrEqual(4);
  });

  it(`read at ${WIDTH} columns: no line, table row or code line is wider`, () => {
    const wide = documents.flatMap(({ name, lines }) =>
      lines.flatMap((text, index) =>
        Array.from(text).length > WIDTH ? [`${name}:${index + 1} (${Array.from(text).length})`] : [],
      ),
    );
    expect(wide).toEqual([]);
  });

  it("cite no document outside the repository: the contract is billfold's own docs and GET /openapi.json", () => {
    const cited = documents.flatMap(({ name, lines }) =>
      lines.flatMap((text, index) => (/\bSPEC\b/.test(text) ? [`${name}:${index + 1}`] : [])),
    );
    expect(cited).toEqual([]);
  });

  it('link only to files that exist', () => {
    const broken = documents.flatMap(({ path, name, lines }) =>
      repositoryLinks(lines)
        .filter(({ target }) => !existsSync(join(dirname(path), decodeURIComponent(target))))
        .map(({ target, line }) => `${name}:${line} → ${target}`),
    );
    expect(broken).toEqual([]);
  });
});
