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

/** What parity needs of a struct codec: its C name and, per field, a codec (for the size) and an offset. */
export interface ParityStruct {
  cName: string;
  size: number;
  fields: Record<string, readonly [{ size: number }, number]>;
}

/** printf lines (for a program handed to compileAndRun) printing a struct's size and each field's offset and size. */
export function structLines(structs: readonly { cName: string; fields: Record<string, unknown> }[]): string[] {
  const lines: string[] = [];
  const print = (label: string, expr: string): void => {
    lines.push(`  printf("%s=%lld\\n", "${label}", (long long)(${expr}));`);
  };
  for (const s of structs) {
    print(`${s.cName}.size`, `sizeof(${s.cName})`);
    for (const field of Object.keys(s.fields)) {
      print(`${s.cName}.${field}.offset`, `offsetof(${s.cName}, ${field})`);
      print(`${s.cName}.${field}.size`, `sizeof(((${s.cName} *)0)->${field})`);
    }
  }
  return lines;
}

/** Our layout of `s` and the compiler's, in one shape, for `expect(ours).toEqual(theirs)`. */
export function structLayouts(s: ParityStruct, c: Map<string, number>): { ours: Record<string, number>; theirs: Record<string, number | undefined> } {
  const ours: Record<string, number> = { size: s.size };
  const theirs: Record<string, number | undefined> = { size: c.get(`${s.cName}.size`) };
  for (const [field, [codec, offset]] of Object.entries(s.fields)) {
    ours[`${field}.offset`] = offset;
    ours[`${field}.size`] = codec.size;
    theirs[`${field}.offset`] = c.get(`${s.cName}.${field}.offset`);
    theirs[`${field}.size`] = c.get(`${s.cName}.${field}.size`);
  }
  return { ours, theirs };
}
