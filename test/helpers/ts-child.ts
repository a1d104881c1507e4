/**
 * Child processes that run our TypeScript with plain `node` (what jest does for us in-process), for tests that
 * SIGKILL a process at a chosen moment: a require hook that compiles `.ts` files with swc.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes the hook into `dir`; pass its path to `node -r`. */
export function writeTsHook(dir: string): string {
  const hook = path.join(dir, 'ts-hook.js');
  fs.writeFileSync(hook, `
const swc = require(${JSON.stringify(require.resolve('@swc/core'))});
const fs = require('fs');
require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename, jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
`);
  return hook;
}
