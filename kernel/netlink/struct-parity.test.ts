/**
 * STYLE 12: every struct codec and every rtnetlink/libc constant in kernel/ is compared with the installed C
 * headers, compiled by the C compiler the build already needs (clang, or cc). Skipped where none exists.
 */
import { compileAndRun, structLines } from '../../test/helpers/c-parity';
import { ERRNO } from '../errno';
import * as libc from '../libc';
import { CONSTANT_GROUPS } from './constants';
import { fieldSize, STRUCTS } from './structs';

const LIBC_CONSTANTS = [
  'O_RDONLY', 'O_WRONLY', 'O_CLOEXEC', 'CLONE_NEWNET', 'AF_NETLINK', 'SOCK_RAW', 'SOCK_CLOEXEC', 'SOL_SOCKET', 'SO_RCVTIMEO',
  'SO_SNDTIMEO', 'SOL_NETLINK', 'NETLINK_ROUTE', 'NETLINK_CAP_ACK', 'NETLINK_EXT_ACK', 'MSG_PEEK', 'MSG_TRUNC',
  'NS_GET_NSTYPE', 'MS_NOSUID', 'MS_NODEV', 'MS_NOEXEC',
] as const;

/** A C program printing "name=value" lines for every size, offset and constant we hold. */
function program(): string {
  const lines: string[] = [];
  const print = (label: string, expr: string): void => {
    lines.push(`  printf("%s=%lld\\n", "${label}", (long long)(${expr}));`);
  };
  lines.push(...structLines(STRUCTS));
  for (const g of CONSTANT_GROUPS) for (const key of Object.keys(g.values)) print(`${g.prefix}${key}`, `${g.prefix}${key}`);
  for (const name of LIBC_CONSTANTS) print(name, name);
  for (const name of Object.keys(ERRNO)) print(name, name);
  const headers = [
    'stdio.h', 'stddef.h', 'errno.h', 'fcntl.h', 'sched.h', 'sys/time.h', 'sys/socket.h', 'sys/ioctl.h',
    'linux/netlink.h', 'linux/rtnetlink.h', 'linux/if.h', 'linux/if_link.h', 'linux/if_addr.h', 'linux/veth.h',
    'linux/neighbour.h', 'linux/nsfs.h', 'sys/mount.h', 'linux/if_ether.h',
  ];
  return [
    '#define _GNU_SOURCE',
    ...headers.map((h) => `#include <${h}>`),
    '#ifndef SOL_NETLINK',
    '#define SOL_NETLINK 270',
    '#endif',
    'int main(void) {',
    ...lines,
    '  return 0;',
    '}',
  ].join('\n');
}

describe('kernel/ structs and constants match the C headers', () => {
  let c = new Map<string, number>();

  beforeAll(() => {
    c = compileAndRun(program(), []);
  });

  test.each(STRUCTS.map((s) => [s.cName, s] as const))('%s: size and every field offset and width', (_name, s) => {
    const ours: Record<string, number> = { size: s.size };
    const theirs: Record<string, number | undefined> = { size: c.get(`${s.cName}.size`) };
    for (const [field, [kind, offset]] of Object.entries(s.fields)) {
      ours[`${field}.offset`] = offset;
      ours[`${field}.size`] = fieldSize(kind);
      theirs[`${field}.offset`] = c.get(`${s.cName}.${field}.offset`);
      theirs[`${field}.size`] = c.get(`${s.cName}.${field}.size`);
    }
    expect(ours).toEqual(theirs);
  });

  test.each(CONSTANT_GROUPS.map((g) => [`${g.prefix}* (${g.header})`, g] as const))('%s', (_name, g) => {
    const theirs = Object.fromEntries(Object.keys(g.values).map((k) => [k, c.get(`${g.prefix}${k}`)]));
    expect(g.values).toEqual(theirs);
  });

  test('libc constants', () => {
    const ours = Object.fromEntries(LIBC_CONSTANTS.map((n) => [n, libc[n]]));
    expect(ours).toEqual(Object.fromEntries(LIBC_CONSTANTS.map((n) => [n, c.get(n)])));
  });

  test('errno numbers', () => {
    expect({ ...ERRNO }).toEqual(Object.fromEntries(Object.keys(ERRNO).map((n) => [n, c.get(n)])));
  });
});
