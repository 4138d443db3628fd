import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = fileURLToPath(new URL('../../src/client/billfold-client.ts', import.meta.url));

/**
 * Vitest's global setup: compiles the typed client into dist/client/ with `npm run build`'s own
 * options, as the development server serves it to the demo page from there. Tests run billfold from
 * its TypeScript sources, so nothing else would have built it.
 */
export default function buildClient(): void {
  const config = ts.getParsedCommandLineOfConfigFile(
    `${ROOT}/tsconfig.build.json`,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    },
  );
  if (!config) throw new Error('tsconfig.build.json could not be read');
  const program = ts.createProgram([ENTRY], config.options);
  const { diagnostics } = program.emit();
  const problems = diagnostics;
  if (problems.length > 0) {
    throw new Error(
      ts.formatDiagnostics(problems, {
        ...ts.sys,
        getCanonicalFileName: (name) => name,
        getNewLine: () => '\n',
      }),
    );
  }
}
