/**
 * STYLE 12 and 15 for the datapath: the map codecs and drop reasons of bpf-maps.ts match bpf/routed.h as the
 * host C compiler lays it out, and from_pod.c passes the kernel's verifier (the object is compiled by clang
 * here and loaded through libbpf, as the daemon does, into a scratch pin directory).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject, mountBpffs } from '../../kernel';
import { compileBpf } from '../../kernel/bpf/testdata/tc-count';
import { compileAndRun, structLayouts, structLines } from '../../test/helpers/c-parity';
import { DROP_REASON, FAMILY, MAPS, PROGRAM, STRUCTS } from './bpf-maps';

const BPF_DIR = join(__dirname, 'bpf');

function program(): string {
  const lines = structLines(STRUCTS);
  const print = (label: string): void => {
    lines.push(`  printf("%s=%lld\\n", "${label}", (long long)(${label}));`);
  };
  for (const k of Object.keys(DROP_REASON)) print(`ROUTED_DROP_${k}`);
  for (const k of Object.keys(FAMILY)) print(`ROUTED_FAMILY_${k}`);
  return ['#include <stdio.h>', '#include <stddef.h>', '#include "routed.h"', 'int main(void) {', ...lines, '  return 0;', '}'].join('\n');
}

describe('plexus-routed: bpf-maps.ts matches bpf/routed.h', () => {
  let c = new Map<string, number>();
  beforeAll(() => {
    c = compileAndRun(program(), [BPF_DIR]);
  });

  test.each(STRUCTS.map((s) => [s.cName, s] as const))('%s: size and every field', (_name, s) => {
    const { ours, theirs } = structLayouts(s, c);
    expect(ours).toEqual(theirs);
  });

  test('drop reasons and families are the header\'s numbers', () => {
    expect(DROP_REASON).toEqual(Object.fromEntries(Object.keys(DROP_REASON).map((k) => [k, c.get(`ROUTED_DROP_${k}`)])));
    expect(FAMILY).toEqual(Object.fromEntries(Object.keys(FAMILY).map((k) => [k, c.get(`ROUTED_FAMILY_${k}`)])));
  });
});

describe('plexus-routed: from_pod.c in the real verifier', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plexus-routed-bpf-'));
  const pinRoot = `/sys/fs/bpf/plexus-test-verifier-${process.pid}`;
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pinRoot, { recursive: true, force: true });
  });

  test('compiles, loads, and pins both maps by name', () => {
    mountBpffs();
    const obj = BpfObject.open(compileBpf(join(BPF_DIR, 'from_pod.c'), join(dir, 'from_pod.o')), { pinRoot });
    try {
      obj.load();
      expect(obj.program(PROGRAM).fd).toBeGreaterThan(0);
      for (const m of Object.values(MAPS)) expect(obj.map(m).name).toBe(m);
    } finally {
      obj.close();
    }
  });
});
