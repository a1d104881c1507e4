/**
 * Struct parity (STYLE 12): compile a small C program against the installed headers and read back the
 * `name=value` lines it prints (sizes, offsets, constants). A missing C compiler is a failure, not a skip:
 * `make test` installs one (hack/deps.sh).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function findCompiler(): string {
  for (const cc of ['cc', 'clang', 'gcc']) {
    try {
      execFileSync(cc, ['--version'], { stdio: 'ignore' });
      return cc;
    } catch {
      // try the next one
    }
  }
  throw new Error('no C compiler (cc, clang or gcc) found: struct parity cannot be checked');
}

/** Compile `source`, run it, and parse its `name=value` lines. */
export function compileAndRun(source: string, includeDirs: string[] = []): Map<string, number> {
  const cc = findCompiler();
  const dir = mkdtempSync(join(tmpdir(), 'plx-parity-'));
  try {
    writeFileSync(join(dir, 'parity.c'), source);
    const includes = includeDirs.flatMap((d) => ['-I', d]);
    execFileSync(cc, [...includes, '-o', join(dir, 'parity'), join(dir, 'parity.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const out = execFileSync(join(dir, 'parity'), { encoding: 'utf8' });
    return new Map(
      out
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.lastIndexOf('=')), Number(line.slice(line.lastIndexOf('=') + 1))] as const),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
