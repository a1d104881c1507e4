/**
 * Network namespaces: validating a netns path, and running a short synchronous step inside one (STYLE 13).
 *
 * setns(2) moves only the calling thread. `withNetns` switches, runs the step, and switches back in `finally`,
 * with no await in between, so no other JS (and no callback) ever runs while the thread is in a foreign netns.
 * The one step that needs it is opening a socket: a socket belongs to the netns it was created in for its whole
 * life, so after switching back every later netlink call on it still acts inside the target netns.
 */
import { readlinkSync } from 'node:fs';
import { ERRNO, KernelError } from './errno';
import { CLONE_NEWNET, closeFd, getsockopt, namespaceType, openReadOnly, setns, socket } from './libc';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

/** The calling thread's own netns (not /proc/self, which is the main thread's). */
const THREAD_NETNS = '/proc/thread-self/ns/net';

/** An open, validated netns file. Close it in `finally`. */
export interface NetnsHandle {
  readonly path: string;
  readonly fd: number;
  close(): void;
}

/**
 * Opens `path` and checks it is a network namespace: the NS_GET_NSTYPE ioctl answers only on nsfs files and
 * names the namespace type, so a regular file, a directory or a mount/pid namespace file are all refused
 * (EINVAL) before anything is switched.
 */
export function openNetns(path: string): NetnsHandle {
  const fd = openReadOnly(path);
  try {
    let type: number;
    try {
      type = namespaceType(fd, `inspect netns ${path}`);
    } catch (err) {
      if (err instanceof KernelError && err.is('ENOTTY')) {
        throw new KernelError(`use ${path} as a netns`, ERRNO.EINVAL, { extack: 'not a namespace file' });
      }
      throw err;
    }
    if (type !== CLONE_NEWNET) {
      throw new KernelError(`use ${path} as a netns`, ERRNO.EINVAL, { extack: 'not a network namespace' });
    }
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  let open = true;
  return {
    path,
    fd,
    close() {
      if (!open) return;
      open = false;
      closeFd(fd);
    },
  };
}

/**
 * True when `path` is a network namespace file. A missing path or any other file is false; failures that say
 * nothing about the path itself (EACCES, EMFILE) are thrown.
 */
export function isNetns(path: string): boolean {
  let handle: NetnsHandle;
  try {
    handle = openNetns(path);
  } catch (err) {
    if (err instanceof KernelError && err.is('ENOENT', 'ENOTDIR', 'EINVAL', 'ELOOP', 'ENAMETOOLONG')) return false;
    throw err;
  }
  handle.close();
  return true;
}

/** The netns identity of the calling thread, e.g. "net:[4026531840]" (what readlink shows). */
export function currentNetnsId(): string {
  return readlinkSync(THREAD_NETNS);
}

/**
 * Runs `step` on the calling thread inside the netns at `path` (`null` = stay where we are) and switches back
 * before returning or throwing. `step` must be synchronous: a returned promise would mean part of it runs after
 * the switch back, in the wrong netns, so it is refused.
 */
export function withNetns<T>(path: string | null, step: () => T): T {
  if (path === null) return checkSync(step());
  const target = openNetns(path);
  try {
    const origin = openReadOnly(THREAD_NETNS);
    try {
      setns(target.fd, CLONE_NEWNET, `enter netns ${path}`);
      try {
        return checkSync(step());
      } finally {
        restore(origin, path);
      }
    } finally {
      closeFd(origin);
    }
  } finally {
    target.close();
  }
}

/**
 * The netns's cookie (SO_NETNS_COOKIE, Linux 5.14+): the number eBPF's bpf_get_netns_cookie gives a program for
 * a packet of that netns. Unlike an ifindex, it names the netns on the whole node, and is never reused.
 */
export function netnsCookie(path: string | null): bigint {
  const fd = openSocketInNetns(path, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  try {
    return getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, 8).readBigUInt64LE();
  } finally {
    closeFd(fd);
  }
}

/** Opens a socket that lives in the netns at `path` (`null` = the calling thread's netns). */
export function openSocketInNetns(path: string | null, domain: number, type: number, protocol: number): number {
  return withNetns(path, () => socket(domain, type, protocol));
}

function restore(origin: number, path: string): void {
  try {
    setns(origin, CLONE_NEWNET, `return from netns ${path}`);
  } catch (err) {
    // Practically impossible (the fd is our own thread's netns), and fatal if it happens: every later kernel
    // call from this thread would act on the pod's netns. Say so plainly; the daemon must restart.
    const errno = err instanceof KernelError ? err.errno : ERRNO.EIO;
    throw new KernelError(`return from netns ${path}; this thread is stranded there`, errno, { cause: err });
  }
}

function checkSync<T>(value: T): T {
  if (value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function') {
    throw new KernelError('run an async step inside a netns (steps must be synchronous)', ERRNO.EINVAL);
  }
  return value;
}
