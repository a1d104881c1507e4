/**
 * STYLE 12 for the BPF side: the koffi structs handed to libbpf (struct bpf_tc_hook, bpf_tc_opts, ...), the BPF
 * and libbpf constants, and the test program's map codecs and verdict numbers are compared with the installed C
 * headers (<bpf/libbpf.h>, <bpf/bpf.h>, <linux/bpf.h>, <linux/pkt_cls.h>) and testdata/tc_count.h, compiled
 * by the host C compiler. Skipped where there is none; the koffi half needs libbpf.so.1, a build dependency.
 */
import { join } from 'node:path';
import { compileAndRun, structLayouts, structLines } from '../../test/helpers/c-parity';
import { BPF_CONSTANT_GROUPS } from './constants';
import { structTypes } from './libbpf';
import * as tcCount from './testdata/tc-count';

/** koffi struct members that mirror unnamed C padding (`__u32 :32`): no offsetof exists for them. */
const isPadding = (member: string): boolean => member.startsWith('__pad');

/** The koffi structs: C name -> member names, in order. */
function koffiStructs(): Array<{ cName: string; size: number; members: Array<[string, number, number]> }> {
  const { types, sizeof, offsetof } = structTypes();
  return Object.entries(types).map(([cName, type]) => {
    const members = Object.values((type as unknown as { members: Record<string, { name: string; type: { size: number } }> }).members);
    return {
      cName,
      size: sizeof(type),
      members: members.map((m) => [m.name, offsetof(type, m.name), m.type.size] as [string, number, number]),
    };
  });
}

const TC_COUNT_GROUP = {
  header: 'tc_count.h',
  prefix: 'TC_COUNT_',
  values: {
    PASS: tcCount.VERDICT.PASS,
    DROP_DENIED: tcCount.VERDICT.DROP_DENIED,
    NOT_IP: tcCount.VERDICT.NOT_IP,
    MALFORMED: tcCount.VERDICT.MALFORMED,
    VERDICTS: tcCount.VERDICTS,
    PROTOS: tcCount.PROTOS,
  },
};

function program(): string {
  const lines: string[] = [];
  const print = (label: string, expr: string): void => {
    lines.push(`  printf("%s=%lld\\n", "${label}", (long long)(${expr}));`);
  };
  for (const s of koffiStructs()) {
    print(`${s.cName}.size`, `sizeof(${s.cName})`);
    for (const [name] of s.members.filter(([n]) => !isPadding(n))) {
      print(`${s.cName}.${name}.offset`, `offsetof(${s.cName}, ${name})`);
      print(`${s.cName}.${name}.size`, `sizeof(((${s.cName} *)0)->${name})`);
    }
  }
  lines.push(...structLines(tcCount.STRUCTS));
  for (const g of [...BPF_CONSTANT_GROUPS, TC_COUNT_GROUP]) {
    for (const key of Object.keys(g.values)) print(`${g.prefix}${key}`, `${g.prefix}${key}`);
  }
  return [
    '#include <stdio.h>',
    '#include <stddef.h>',
    '#include <linux/bpf.h>',
    '#include <linux/pkt_cls.h>',
    '#include <bpf/bpf.h>',
    '#include <bpf/libbpf.h>',
    '#include "tc_count.h"',
    'int main(void) {',
    ...lines,
    '  return 0;',
    '}',
  ].join('\n');
}

describe('kernel/bpf structs, codecs and constants match the C headers', () => {
  let c = new Map<string, number>();

  beforeAll(() => {
    c = compileAndRun(program(), [join(__dirname, 'testdata')]);
  });

  test.each(koffiStructs().map((s) => [s.cName, s] as const))('koffi %s: size and every named member', (_name, s) => {
    const ours: Record<string, number> = { size: s.size };
    const theirs: Record<string, number | undefined> = { size: c.get(`${s.cName}.size`) };
    for (const [name, offset, size] of s.members.filter(([n]) => !isPadding(n))) {
      ours[`${name}.offset`] = offset;
      ours[`${name}.size`] = size;
      theirs[`${name}.offset`] = c.get(`${s.cName}.${name}.offset`);
      theirs[`${name}.size`] = c.get(`${s.cName}.${name}.size`);
    }
    expect(ours).toEqual(theirs);
  });

  test.each(tcCount.STRUCTS.map((s) => [s.cName, s] as const))('codec %s (tc_count.h): size and every field', (_name, s) => {
    const { ours, theirs } = structLayouts(s, c);
    expect(ours).toEqual(theirs);
  });

  test.each([...BPF_CONSTANT_GROUPS, TC_COUNT_GROUP].map((g) => [`${g.prefix}* (${g.header})`, g] as const))('%s', (_name, g) => {
    const theirs = Object.fromEntries(Object.keys(g.values).map((k) => [k, c.get(`${g.prefix}${k}`)]));
    expect(g.values).toEqual(theirs);
  });
});
