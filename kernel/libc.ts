/**
 * Every libc call Plexus makes, declared once as a C prototype (STYLE 11). Nothing else imports koffi.
 *
 * Each exported wrapper checks the return value, reads errno at once (before any other JS can run a native call
 * that clobbers it) and throws a KernelError. The calls are synchronous: each is a plain syscall of well under a
 * millisecond, and keeping them on the calling thread is what makes the netns switch in netns.ts safe.
 *
 * koffi has no `ssize_t`/`size_t`/`socklen_t` names and registering aliases is process-global (a second
 * registration, e.g. from another jest module registry, throws), so the prototypes spell them as the LP64 types
 * they are: ssize_t = intptr_t, size_t = uintptr_t, socklen_t = uint32_t.
 */
import { ERRNO, KernelError } from './errno';

/**
 * The part of koffi's API used here. koffi ships as an ES module package whose typings TypeScript will not
 * let a CommonJS file import, so its CommonJS entry is required and typed by hand.
 */
interface Koffi {
  load(path: string): { func(prototype: string): unknown };
  errno(): number;
  view(pointer: unknown, length: number): ArrayBuffer;
  address(pointer: unknown): bigint;
}

// <fcntl.h>, <sched.h>, <sys/socket.h>, <linux/netlink.h>, <linux/nsfs.h> (x86-64/arm64 Linux values).
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVTIMEO = 20;
export const SO_SNDTIMEO = 21;
export const SOL_NETLINK = 270;
export const NETLINK_ROUTE = 0;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
/** _IO(NSIO, 0x3): returns the CLONE_NEW* type of an nsfs file descriptor (Linux 4.11+). */
export const NS_GET_NSTYPE = 0xb703;

interface Libc {
  open: (pathname: string, flags: number) => number;
  close: (fd: number) => number;
  setns: (fd: number, nstype: number) => number;
  ioctl: (fd: number, request: number) => number;
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (sockfd: number, addr: Buffer, addrlen: number) => number;
  setsockopt: (sockfd: number, level: number, optname: number, optval: Buffer, optlen: number) => number;
  getsockopt: (sockfd: number, level: number, optname: number, optval: Buffer, optlen: Buffer) => number;
  sendto: (sockfd: number, buf: Buffer, len: number, flags: number, destAddr: Buffer, addrlen: number) => number;
  recv: (sockfd: number, buf: Buffer, len: number, flags: number) => number;
  read: (fd: number, buf: Buffer, count: number) => number;
  write: (fd: number, buf: Buffer, count: number) => number;
  vsnprintf: (str: Buffer, size: number, format: string, ap: unknown) => number;
  mount: (source: string, target: string, fstype: string, flags: number, data: string | null) => number;
  pipe2: (fds: number[], flags: number) => number;
  waitpid: (pid: number, status: number[], options: number) => number;
  posix_spawn: (pid: number[], path: string, actions: Buffer, attr: Buffer, argv: (string | null)[], envp: (string | null)[]) => number;
  posix_spawn_file_actions_init: (actions: Buffer) => number;
  posix_spawn_file_actions_adddup2: (actions: Buffer, fd: number, newfd: number) => number;
  posix_spawn_file_actions_destroy: (actions: Buffer) => number;
  posix_spawnattr_init: (attr: Buffer) => number;
  posix_spawnattr_setflags: (attr: Buffer, flags: number) => number;
  posix_spawnattr_setsigdefault: (attr: Buffer, set: Buffer) => number;
  posix_spawnattr_setsigmask: (attr: Buffer, set: Buffer) => number;
  posix_spawnattr_destroy: (attr: Buffer) => number;
  sigemptyset: (set: Buffer) => number;
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, length: number) => number;
  getpagesize: () => number;
  pthread_mutex_lock: (mutex: Buffer) => number;
  pthread_mutex_unlock: (mutex: Buffer) => number;
}

let koffi: Koffi | undefined;
let bound: Libc | undefined;

/** koffi and libc are loaded on first use, so importing kernel/ (for types, or the codec) loads no native code. */
function libc(): Libc {
  if (bound) return bound;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  koffi = require('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  bound = {
    // open(2) is variadic; the optional mode is never passed (no O_CREAT here).
    open: lib.func('int open(const char *pathname, int flags, ...)'),
    close: lib.func('int close(int fd)'),
    setns: lib.func('int setns(int fd, int nstype)'),
    // ioctl(2) is variadic; NS_GET_NSTYPE takes no argument.
    ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int sockfd, const void *addr, uint32_t addrlen)'),
    setsockopt: lib.func(
      'int setsockopt(int sockfd, int level, int optname, const void *optval, uint32_t optlen)',
    ),
    getsockopt: lib.func('int getsockopt(int sockfd, int level, int optname, void *optval, void *optlen)'),
    sendto: lib.func(
      'intptr_t sendto(int sockfd, const void *buf, uintptr_t len, int flags, const void *dest_addr, uint32_t addrlen)',
    ),
    recv: lib.func('intptr_t recv(int sockfd, void *buf, uintptr_t len, int flags)'),
    read: lib.func('intptr_t read(int fd, void *buf, uintptr_t count)'),
    write: lib.func('intptr_t write(int fd, const void *buf, uintptr_t count)'),
    // va_list is an array type on x86-64 and a >16-byte struct passed by reference on arm64: either way what
    // a callback receives for it is a pointer, and that pointer is what vsnprintf wants.
    vsnprintf: lib.func('int vsnprintf(_Out_ uint8_t *str, uintptr_t size, const char *format, void *ap)'),
    mount: lib.func(
      'int mount(const char *source, const char *target, const char *filesystemtype, unsigned long mountflags, const char *data)',
    ),
    pipe2: lib.func('int pipe2(_Out_ int *pipefd, int flags)'),
    waitpid: lib.func('int waitpid(int pid, _Out_ int *wstatus, int options)'),
    // The posix_spawn family returns an error number instead of setting errno. Its opaque types (file actions,
    // attributes, sigset_t) are caller-allocated buffers larger than glibc's structs on x86-64 and arm64.
    posix_spawn: lib.func(
      'int posix_spawn(_Out_ int *pid, const char *path, const void *file_actions, const void *attrp, const char **argv, const char **envp)',
    ),
    posix_spawn_file_actions_init: lib.func('int posix_spawn_file_actions_init(void *file_actions)'),
    posix_spawn_file_actions_adddup2: lib.func('int posix_spawn_file_actions_adddup2(void *file_actions, int fildes, int newfildes)'),
    posix_spawn_file_actions_destroy: lib.func('int posix_spawn_file_actions_destroy(void *file_actions)'),
    posix_spawnattr_init: lib.func('int posix_spawnattr_init(void *attr)'),
    posix_spawnattr_setflags: lib.func('int posix_spawnattr_setflags(void *attr, short flags)'),
    posix_spawnattr_setsigdefault: lib.func('int posix_spawnattr_setsigdefault(void *attr, const void *sigdefault)'),
    posix_spawnattr_setsigmask: lib.func('int posix_spawnattr_setsigmask(void *attr, const void *sigmask)'),
    posix_spawnattr_destroy: lib.func('int posix_spawnattr_destroy(void *attr)'),
    sigemptyset: lib.func('int sigemptyset(void *set)'),
    mmap: lib.func('void *mmap(void *addr, uintptr_t length, int prot, int flags, int fd, intptr_t offset)'),
    munmap: lib.func('int munmap(void *addr, uintptr_t length)'),
    getpagesize: lib.func('int getpagesize(void)'),
    pthread_mutex_lock: lib.func('int pthread_mutex_lock(void *mutex)'),
    pthread_mutex_unlock: lib.func('int pthread_mutex_unlock(void *mutex)'),
  } as Libc;
  return bound;
}

/** errno of the call just made: must be the first thing read after it, before any other native call. */
function lastErrno(): number {
  return (koffi as Koffi).errno();
}

/** Throws the KernelError for a failed call. */
function fail(what: string): never {
  throw new KernelError(what, lastErrno());
}

export function openReadOnly(path: string): number {
  return openFile(path, O_RDONLY);
}

/** open(2) with O_CLOEXEC added; `flags` O_RDONLY or O_WRONLY (never O_CREAT: nothing here creates files). */
export function openFile(path: string, flags: typeof O_RDONLY | typeof O_WRONLY): number {
  // A NUL inside the path would silently truncate it at the C boundary.
  if (path.includes('\0')) throw new KernelError(`open ${JSON.stringify(path)}`, ERRNO.EINVAL);
  const fd = libc().open(path, flags | O_CLOEXEC);
  if (fd < 0) fail(`open ${path}`);
  return fd;
}

/** mount(2) of a pseudo filesystem (no device): `source` is only a label. */
export function mount(source: string, target: string, fstype: string, flags: number, data: string | null): void {
  for (const s of [source, target, fstype, data ?? '']) {
    if (s.includes('\0')) throw new KernelError(`mount ${fstype} at ${JSON.stringify(target)}`, ERRNO.EINVAL);
  }
  if (libc().mount(source, target, fstype, flags, data) !== 0) fail(`mount ${fstype} at ${target}`);
}

/** <sys/mount.h> MS_NOSUID | MS_NODEV | MS_NOEXEC: how systemd mounts bpffs. */
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;

/**
 * Formats a printf-style message handed to a C callback as (format, va_list), e.g. libbpf's print callback.
 * The va_list is consumed, so this can run once per callback; longer messages are cut at `max` bytes.
 */
export function formatVaList(format: string, ap: unknown, max = 64 * 1024): string {
  const buf = Buffer.alloc(max);
  const n = libc().vsnprintf(buf, buf.length, format, ap);
  if (n < 0) return format;
  return buf.toString('utf8', 0, Math.min(n, buf.length - 1));
}

/** read(2) into `buf`; retried on EINTR. Returns the byte count (0 at end of file). */
export function readFd(fd: number, buf: Buffer, what: string): number {
  for (;;) {
    const n = libc().read(fd, buf, buf.length);
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) throw new KernelError(what, errno);
  }
}

/** write(2) of the whole buffer in one call (what sysctl files need: a short write is an error). */
export function writeFd(fd: number, buf: Buffer, what: string): void {
  for (;;) {
    const n = libc().write(fd, buf, buf.length);
    if (n === buf.length) return;
    if (n >= 0) throw new KernelError(`${what} (short write ${n}/${buf.length})`, ERRNO.EIO);
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) throw new KernelError(what, errno);
  }
}

/** close(2). EINTR is not an error on Linux: the descriptor is released either way and must not be retried. */
export function closeFd(fd: number): void {
  if (libc().close(fd) === 0) return;
  const errno = lastErrno();
  if (errno !== ERRNO.EINTR) throw new KernelError(`close fd ${fd}`, errno);
}

/** setns(2) for the calling thread only. */
export function setns(fd: number, nstype: number, what: string): void {
  if (libc().setns(fd, nstype) !== 0) fail(what);
}

/** The CLONE_NEW* type of a namespace fd; ENOTTY when the fd is not an nsfs file. */
export function namespaceType(fd: number, what: string): number {
  const type = libc().ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) fail(what);
  return type;
}

export function socket(domain: number, type: number, protocol: number): number {
  const fd = libc().socket(domain, type, protocol);
  if (fd < 0) fail(`open socket(${domain}, ${type}, ${protocol})`);
  return fd;
}

export function bind(fd: number, addr: Buffer): void {
  if (libc().bind(fd, addr, addr.length) !== 0) fail('bind socket');
}

export function setsockopt(fd: number, level: number, optname: number, value: Buffer): void {
  if (libc().setsockopt(fd, level, optname, value, value.length) !== 0) {
    fail(`set socket option ${level}/${optname}`);
  }
}

/** getsockopt(2) into a buffer of the option's size; returns the bytes the kernel wrote. */
export function getsockopt(fd: number, level: number, optname: number, size: number): Buffer {
  const value = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  if (libc().getsockopt(fd, level, optname, value, len) !== 0) fail(`get socket option ${level}/${optname}`);
  return value.subarray(0, len.readUInt32LE());
}

/** sendto(2) of one whole datagram; retried on EINTR (a socket with a timeout is never auto-restarted). */
export function sendto(fd: number, buf: Buffer, dest: Buffer, what: string): void {
  for (;;) {
    const n = libc().sendto(fd, buf, buf.length, 0, dest, dest.length);
    if (n === buf.length) return;
    if (n >= 0) throw new KernelError(`${what} (short send ${n}/${buf.length})`, ERRNO.EMSGSIZE);
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) throw new KernelError(what, errno);
  }
}

/**
 * recv(2) into `buf`; retried on EINTR. With MSG_TRUNC the result is the datagram's real length, which may exceed
 * `buf.length`. EAGAIN means SO_RCVTIMEO expired.
 */
export function recv(fd: number, buf: Buffer, flags: number, what: string): number {
  for (;;) {
    const n = libc().recv(fd, buf, buf.length, flags);
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) throw new KernelError(what, errno);
  }
}

/** pipe2(2) with O_CLOEXEC: [read end, write end]. */
export function pipe(): [number, number] {
  const fds = [-1, -1];
  if (libc().pipe2(fds, O_CLOEXEC) !== 0) fail('create pipe');
  return [fds[0]!, fds[1]!];
}

// <spawn.h> (glibc): the flags posix_spawnattr_setflags takes.
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_USEVFORK = 0x40;
const POSIX_SPAWN_SETSID = 0x80;
/** Larger than glibc's posix_spawn_file_actions_t (80 bytes), posix_spawnattr_t (336) and sigset_t (128). */
const OPAQUE_SIZE = 512;

/**
 * posix_spawn(3) of `path` with `stdio` as its fds 0, 1 and 2, in a session of its own (so the whole group can be
 * killed), every signal at its default disposition and none blocked (the daemon ignores SIGPIPE; a plugin must
 * not inherit that). glibc starts the child with clone(CLONE_VM | CLONE_VFORK): the parent's page tables are not
 * copied, which is what makes this several times cheaper than a fork from a large process. The child inherits
 * the calling thread's network namespace. Returns the pid; a failed exec (ENOENT, EACCES, ETXTBSY) throws.
 */
export function spawnProcess(path: string, argv: readonly string[], env: readonly string[], stdio: readonly [number, number, number]): number {
  for (const s of [path, ...argv, ...env]) {
    if (s.includes('\0')) throw new KernelError(`execute ${JSON.stringify(path)}`, ERRNO.EINVAL);
  }
  const c = libc();
  const actions = Buffer.alloc(OPAQUE_SIZE);
  const attr = Buffer.alloc(OPAQUE_SIZE);
  const none = Buffer.alloc(OPAQUE_SIZE);
  // Signals 1-64 by hand: sigfillset leaves out glibc's own two (32, 33), which posix_spawn would then leave
  // ignored in the child, and an ignored signal stays ignored across exec.
  const all = Buffer.alloc(OPAQUE_SIZE).fill(0xff, 0, 8);
  // These return an error number (EINVAL for a flag this glibc lacks, ENOMEM): any one means the child would
  // not start as described above, so none is ignored.
  const check = (err: number, what: string): void => {
    if (err !== 0) throw new KernelError(what, err);
  };
  check(c.posix_spawn_file_actions_init(actions), `prepare posix_spawn file actions for ${path}`);
  try {
    check(c.posix_spawnattr_init(attr), `prepare posix_spawn attributes for ${path}`);
    try {
      stdio.forEach((fd, target) => check(c.posix_spawn_file_actions_adddup2(actions, fd, target), `set up the stdio of ${path}`));
      check(c.sigemptyset(none) === 0 ? 0 : ERRNO.EINVAL, 'clear a signal set');
      check(c.posix_spawnattr_setsigdefault(attr, all), `set the signal dispositions of ${path}`);
      check(c.posix_spawnattr_setsigmask(attr, none), `set the signal mask of ${path}`);
      check(c.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_USEVFORK), `set posix_spawn flags for ${path}`);
      const pid = [0];
      check(c.posix_spawn(pid, path, actions, attr, [...argv, null], [...env, null]), `execute ${path}`);
      return pid[0]!;
    } finally {
      c.posix_spawnattr_destroy(attr);
    }
  } finally {
    c.posix_spawn_file_actions_destroy(actions);
  }
}

const WNOHANG = 1;

/** How a reaped child ended: `code` when it exited, `signal` (a number) when a signal killed it. */
export interface ChildExit {
  code: number | null;
  signal: number | null;
}

/**
 * waitpid(2) with WNOHANG: the child's exit, reaping it, or null while it still runs. ECHILD (reaped by someone
 * else, so its status is lost) throws.
 */
export function reapChild(pid: number): ChildExit | null {
  const status = [0];
  for (;;) {
    const r = libc().waitpid(pid, status, WNOHANG);
    if (r === 0) return null;
    if (r > 0) break;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) throw new KernelError(`wait for process ${pid}`, errno);
  }
  const s = status[0]!;
  // <sys/wait.h>: low 7 bits the terminating signal (0: exited), bits 8-15 the exit code.
  const sig = s & 0x7f;
  return sig === 0 ? { code: (s >> 8) & 0xff, signal: null } : { code: null, signal: sig };
}

// <sys/mman.h>
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;

/** A shared mapping of a file descriptor's memory, seen from JS as an ArrayBuffer (no copy). */
export interface SharedMapping {
  /** Valid until unmap(): reading it afterwards would fault. */
  readonly buffer: ArrayBuffer;
  unmap(): void;
}

/** mmap(2) of `length` bytes of `fd` at `offset`, MAP_SHARED, read-only or read-write. */
export function mapShared(what: string, fd: number, length: number, offset: number, writable: boolean): SharedMapping {
  const l = libc();
  const k = koffi as Koffi;
  const addr = l.mmap(null, length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, offset);
  if (addr === null || k.address(addr) === 0xffffffffffffffffn) fail(what); // MAP_FAILED
  let mapped = true;
  return {
    buffer: k.view(addr, length),
    unmap: () => {
      if (!mapped) return;
      mapped = false;
      if (l.munmap(addr, length) < 0) fail(`${what}: munmap`);
    },
  };
}

export function pageSize(): number {
  return libc().getpagesize();
}

/**
 * A full memory barrier for memory another CPU writes (a BPF ring buffer's pages): JS has no fence for memory
 * that is not a SharedArrayBuffer. Unlocking a mutex is a release and locking it an acquire, and a release
 * followed by an acquire is ordered on x86-64 and arm64 (RCsc), so no load or store crosses the pair.
 */
export class Fence {
  // pthread_mutex_t is 40 bytes on x86-64 and 48 on arm64; all zeros is PTHREAD_MUTEX_INITIALIZER in glibc.
  private readonly mutex = Buffer.alloc(64);

  constructor() {
    if (libc().pthread_mutex_lock(this.mutex) !== 0) throw new KernelError('lock a fence mutex', ERRNO.EINVAL);
  }

  full(): void {
    const l = libc();
    l.pthread_mutex_unlock(this.mutex);
    l.pthread_mutex_lock(this.mutex);
  }
}
