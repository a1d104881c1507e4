/**
 * Where pinned BPF objects live: under the BPF filesystem, by default in /sys/fs/bpf/plexus so that pinned maps
 * (and the datapath they feed) outlive a daemon restart (DESIGN decision 5). Tests use their own root.
 *
 * Every pin path is checked before it reaches libbpf or the filesystem: absolute, normalised, inside /sys/fs/bpf,
 * no '.'/'..' components, no NUL.
 */
import { mkdirSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { ERRNO, invalidArgument, KernelError } from '../errno';
import { mount, MS_NODEV, MS_NOEXEC, MS_NOSUID } from '../libc';

export const BPFFS = '/sys/fs/bpf';
export const DEFAULT_PIN_ROOT = `${BPFFS}/plexus`;

const COMPONENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

/** `path` if it is a clean absolute path strictly inside /sys/fs/bpf; EINVAL otherwise. */
export function checkPinPath(path: string, what: string): string {
  const parts = path.split('/');
  const ok =
    path.startsWith(`${BPFFS}/`) &&
    posix.normalize(path) === path &&
    path.length < 4096 &&
    parts.slice(4).length > 0 &&
    parts.slice(4).every((p) => COMPONENT.test(p));
  if (!ok) throw invalidArgument(what, `${JSON.stringify(path)} is not a path under ${BPFFS}`);
  return path;
}

/** `root/name` for a map or program name (checked as one path component). */
export function pinPathOf(root: string, name: string, what: string): string {
  if (!COMPONENT.test(name)) throw invalidArgument(what, `invalid pin name ${JSON.stringify(name)}`);
  return checkPinPath(`${checkPinPath(root, what)}/${name}`, what);
}

function asKernelError(what: string, err: unknown): KernelError {
  const code = (err as NodeJS.ErrnoException).code;
  const errno = code && code in ERRNO ? ERRNO[code as keyof typeof ERRNO] : ERRNO.EIO;
  return new KernelError(what, errno, { cause: err });
}

/** True when a BPF filesystem is mounted at /sys/fs/bpf in this mount namespace. */
export function isBpffsMounted(): boolean {
  // mountinfo: "36 25 0:31 / /sys/fs/bpf rw,nosuid,... shared:9 - bpf bpf rw,mode=700"
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.split(' ');
      const dash = fields.indexOf('-');
      return fields[4] === BPFFS && dash > 0 && fields[dash + 1] === 'bpf';
    });
}

/**
 * Mounts the BPF filesystem at /sys/fs/bpf as systemd does (mode 0700, nosuid, nodev, noexec) unless one is
 * there already; true when it mounted. Pins need it; the daemon calls this once at start.
 */
export function mountBpffs(): boolean {
  if (isBpffsMounted()) return false;
  mount('bpf', BPFFS, 'bpf', MS_NOSUID | MS_NODEV | MS_NOEXEC, 'mode=0700');
  return true;
}

/**
 * Creates the pin directory and its missing parents inside bpffs, one level at a time (a recursive mkdir on a
 * filesystem that refuses new directories, such as sysfs where bpffs is not mounted, would loop).
 */
export function ensurePinDir(dir: string): void {
  const what = `create pin directory ${dir}`;
  if (dir !== BPFFS) checkPinPath(dir, what);
  if (!isBpffsMounted()) {
    throw new KernelError(what, ERRNO.ENOENT, { extack: `no BPF filesystem is mounted at ${BPFFS}` });
  }
  if (dir === BPFFS) return;
  let path = BPFFS;
  for (const part of dir.slice(BPFFS.length + 1).split('/')) {
    path = `${path}/${part}`;
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw asKernelError(what, err);
    }
  }
}

/** Removes a pin (the object lives on while anything else holds it). False when it was not there. */
export function removePin(path: string): boolean {
  const what = `remove pin ${path}`;
  checkPinPath(path, what);
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw asKernelError(what, err);
  }
}

/** Removes an empty pin directory. False when it was not there; ENOTEMPTY while pins remain in it. */
export function removePinDir(dir: string): boolean {
  const what = `remove pin directory ${dir}`;
  checkPinPath(dir, what);
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw asKernelError(what, err);
  }
}
