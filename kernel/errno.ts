/**
 * Linux errno values by name, and KernelError: the one error every syscall and netlink failure in kernel/
 * becomes. Callers branch on `errnoName` (or `errno`), never on the message text (STYLE 7).
 *
 * The numbers are the asm-generic ones Linux uses on x86-64 and arm64 (`include/uapi/asm-generic/errno*.h`);
 * the parity test checks them against the installed headers.
 */
import { PlexusError } from '../core/errors';

/** name -> [number, short description as strerror(3) gives it]. The ones the kernel layer meets in practice. */
const ERRNO_TABLE = {
  EPERM: [1, 'Operation not permitted'],
  ENOENT: [2, 'No such file or directory'],
  ESRCH: [3, 'No such process'],
  EINTR: [4, 'Interrupted system call'],
  EIO: [5, 'Input/output error'],
  ENXIO: [6, 'No such device or address'],
  E2BIG: [7, 'Argument list too long'],
  ENOEXEC: [8, 'Exec format error'],
  EBADF: [9, 'Bad file descriptor'],
  ECHILD: [10, 'No child processes'],
  EAGAIN: [11, 'Resource temporarily unavailable'],
  ENOMEM: [12, 'Cannot allocate memory'],
  EACCES: [13, 'Permission denied'],
  EFAULT: [14, 'Bad address'],
  EBUSY: [16, 'Device or resource busy'],
  EEXIST: [17, 'File exists'],
  EXDEV: [18, 'Invalid cross-device link'],
  ENODEV: [19, 'No such device'],
  ENOTDIR: [20, 'Not a directory'],
  EISDIR: [21, 'Is a directory'],
  EINVAL: [22, 'Invalid argument'],
  ENFILE: [23, 'Too many open files in system'],
  EMFILE: [24, 'Too many open files'],
  ENOTTY: [25, 'Inappropriate ioctl for device'],
  ETXTBSY: [26, 'Text file busy'],
  ENOSPC: [28, 'No space left on device'],
  EROFS: [30, 'Read-only file system'],
  EPIPE: [32, 'Broken pipe'],
  ERANGE: [34, 'Numerical result out of range'],
  ENAMETOOLONG: [36, 'File name too long'],
  ENOSYS: [38, 'Function not implemented'],
  ENOTEMPTY: [39, 'Directory not empty'],
  ELOOP: [40, 'Too many levels of symbolic links'],
  ENOMSG: [42, 'No message of desired type'],
  ENODATA: [61, 'No data available'],
  ENOLINK: [67, 'Link has been severed'],
  EPROTO: [71, 'Protocol error'],
  EBADMSG: [74, 'Bad message'],
  EOVERFLOW: [75, 'Value too large for defined data type'],
  ENOTSOCK: [88, 'Socket operation on non-socket'],
  EMSGSIZE: [90, 'Message too long'],
  EPROTOTYPE: [91, 'Protocol wrong type for socket'],
  ENOPROTOOPT: [92, 'Protocol not available'],
  EPROTONOSUPPORT: [93, 'Protocol not supported'],
  EOPNOTSUPP: [95, 'Operation not supported'],
  EAFNOSUPPORT: [97, 'Address family not supported by protocol'],
  EADDRINUSE: [98, 'Address already in use'],
  EADDRNOTAVAIL: [99, 'Cannot assign requested address'],
  ENETDOWN: [100, 'Network is down'],
  ENETUNREACH: [101, 'Network is unreachable'],
  ECONNRESET: [104, 'Connection reset by peer'],
  ENOBUFS: [105, 'No buffer space available'],
  ENOTCONN: [107, 'Transport endpoint is not connected'],
  ETIMEDOUT: [110, 'Connection timed out'],
  ECONNREFUSED: [111, 'Connection refused'],
  EHOSTUNREACH: [113, 'No route to host'],
  EALREADY: [114, 'Operation already in progress'],
  EINPROGRESS: [115, 'Operation now in progress'],
  ECANCELED: [125, 'Operation canceled'],
  ERFKILL: [132, 'Operation not possible due to RF-kill'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrnoName = keyof typeof ERRNO_TABLE;

/** errno numbers by name: `ERRNO.ENODEV === 19`. */
export const ERRNO = Object.fromEntries(Object.entries(ERRNO_TABLE).map(([k, [n]]) => [k, n])) as {
  readonly [K in ErrnoName]: (typeof ERRNO_TABLE)[K][0];
};

const BY_NUMBER = new Map<number, ErrnoName>(
  Object.entries(ERRNO_TABLE).map(([k, [n]]) => [n, k as ErrnoName]),
);

/** 'ENODEV' for 19; 'E<n>' for a number outside the table, so the name is always usable in a message. */
export function errnoName(errno: number): string {
  return BY_NUMBER.get(errno) ?? `E${errno}`;
}

export function errnoDescription(errno: number): string {
  const name = BY_NUMBER.get(errno);
  return name ? ERRNO_TABLE[name][1] : `errno ${errno}`;
}

/**
 * A failed syscall or netlink request. `what` says what was being done ("create veth eth0",
 * "setns(/run/netns/x)"); the message reads "failed to <what>: ENODEV (No such device)[: <kernel extack>]".
 */
export class KernelError extends PlexusError {
  readonly errno: number;
  readonly errnoName: string;
  /** The kernel's extended-ack message (NLMSGERR_ATTR_MSG), when it sent one. */
  readonly extack: string | undefined;

  constructor(what: string, errno: number, opts: { extack?: string; cause?: unknown } = {}) {
    const name = errnoName(errno);
    const tail = opts.extack ? `: ${opts.extack}` : '';
    super('KernelFailure', `failed to ${what}: ${name} (${errnoDescription(errno)})${tail}`, {
      details: `${name}${tail}`,
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
    this.name = 'KernelError';
    this.errno = errno;
    this.errnoName = name;
    this.extack = opts.extack;
  }

  /** True when this error carries one of the given errno names: `err.is('ENODEV', 'ENOENT')`. */
  is(...names: ErrnoName[]): boolean {
    return names.some((n) => ERRNO[n] === this.errno);
  }
}

export const isKernelError = (e: unknown): e is KernelError => e instanceof KernelError;

/** True when `e` is a KernelError with one of the given errno names. */
export function hasErrno(e: unknown, ...names: ErrnoName[]): e is KernelError {
  return e instanceof KernelError && e.is(...names);
}

/** A KernelError for bad input the kernel would reject anyway (EINVAL), raised before any syscall. */
export function invalidArgument(what: string, why: string): KernelError {
  return new KernelError(what, ERRNO.EINVAL, { extack: why });
}
