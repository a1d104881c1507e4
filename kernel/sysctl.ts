/**
 * Per-netns sysctls (/proc/sys/net/...).
 *
 * Which netns a /proc/sys/net file belongs to is decided when it is opened, by the netns of the opening thread:
 * the file is opened inside the target netns (withNetns around the synchronous open, STYLE 13) and read or
 * written after switching back, and it keeps acting on that netns's value.
 *
 * Keys are written with slashes as under /proc/sys ('net/ipv4/ip_forward', 'net/ipv6/conf/eth0/forwarding'),
 * never dotted, since interface names may contain dots. Only `net/` keys are per-netns, and only those are
 * accepted; every key is checked against SYSCTL_KEY before it becomes part of a path.
 */
import { ERRNO, invalidArgument, KernelError } from './errno';
import { closeFd, O_RDONLY, O_WRONLY, openFile, readFd, writeFd } from './libc';
import { withNetns } from './netns';

/**
 * net/ then 1-5 components of letters, digits and the few other bytes interface names use here (_ . @ + -),
 * none starting with a dot, so '.', '..' and hidden names can never appear.
 */
export const SYSCTL_KEY = /^net(?:\/[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}){1,5}$/;

/** A value: printable ASCII (and tabs, which some multi-value sysctls use), at most one page. */
const SYSCTL_VALUE = /^[\x20-\x7e\t]{1,4095}$/;

const PAGE = 4096;

function pathOf(key: string, what: string): string {
  if (!SYSCTL_KEY.test(key)) throw invalidArgument(what, `invalid sysctl key ${JSON.stringify(key)}`);
  return `/proc/sys/${key}`;
}

function openIn(netnsPath: string | null, path: string, flags: typeof O_RDONLY | typeof O_WRONLY): number {
  return withNetns(netnsPath, () => openFile(path, flags));
}

/** The value of `key` in the netns (null = the caller's), without its trailing newline. ENOENT: no such key. */
export async function readSysctl(netnsPath: string | null, key: string): Promise<string> {
  return readSysctlSync(netnsPath, key);
}

export function readSysctlSync(netnsPath: string | null, key: string): string {
  const what = `read sysctl ${key}${netnsPath === null ? '' : ` in ${netnsPath}`}`;
  const fd = openIn(netnsPath, pathOf(key, what), O_RDONLY);
  try {
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(PAGE);
    for (let total = 0; ; ) {
      const n = readFd(fd, buf, what);
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
      total += n;
      // No sysctl is anywhere near this long; a file that is means something is wrong with the key.
      if (total > 16 * PAGE) throw new KernelError(what, ERRNO.E2BIG);
    }
    return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
  } finally {
    closeFd(fd);
  }
}

/** Sets `key` in the netns (null = the caller's). EINVAL when the kernel refuses the value. */
export async function writeSysctl(netnsPath: string | null, key: string, value: string | number): Promise<void> {
  writeSysctlSync(netnsPath, key, value);
}

export function writeSysctlSync(netnsPath: string | null, key: string, value: string | number): void {
  const what = `write sysctl ${key}=${value}${netnsPath === null ? '' : ` in ${netnsPath}`}`;
  const text = String(value);
  if (!SYSCTL_VALUE.test(text)) throw invalidArgument(what, 'a sysctl value is one line of printable text');
  const fd = openIn(netnsPath, pathOf(key, what), O_WRONLY);
  try {
    writeFd(fd, Buffer.from(text), what);
  } finally {
    closeFd(fd);
  }
}
