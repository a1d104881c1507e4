/**
 * A NETLINK_ROUTE socket bound to one network namespace (STYLE 13, 14).
 *
 * The socket is created inside the target netns (netns.ts switches there and straight back) and keeps acting
 * on it afterwards. Every request carries its own sequence number; replies with another sequence number (late
 * answers to a request that timed out) are skipped. SO_RCVTIMEO bounds every wait, so no call can hang.
 */
import { endianness } from 'node:os';
import { ERRNO, KernelError } from '../errno';
import {
  AF_NETLINK,
  bind,
  closeFd,
  MSG_PEEK,
  MSG_TRUNC,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_ROUTE,
  recv,
  sendto,
  setsockopt,
  SO_RCVTIMEO,
  SO_SNDTIMEO,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
} from '../libc';
import { openSocketInNetns } from '../netns';
import { NLM_F, NLMSG } from './constants';
import {
  decodeDoneErrno,
  decodeError,
  decodeMessages,
  encodeMessage,
  type NlMessage,
  SOCKADDR_NL,
  TIMEVAL,
} from './codec';

/** A dump that keeps changing under us (NLM_F_DUMP_INTR) is retried this many times in all. */
export const DUMP_ATTEMPTS = 5;
const DEFAULT_TIMEOUT_MS = 5000;
const INITIAL_BUFFER = 64 * 1024;

export interface NetlinkSocketOptions {
  /** Longest wait for any single reply datagram (SO_RCVTIMEO). Default 5000 ms. */
  timeoutMs?: number;
}

const KERNEL = SOCKADDR_NL.encode({ nl_family: AF_NETLINK, nl_pid: 0, nl_groups: 0 });

/** Moves whole datagrams. The real one is a socket fd; unit tests substitute a scripted kernel. */
export interface NetlinkTransport {
  send(datagram: Buffer, what: string): void;
  /** One datagram; throws KernelError ETIMEDOUT when nothing arrives in time. */
  receive(what: string): Buffer;
  close(): void;
}

/** A NETLINK_ROUTE socket fd created inside a netns. */
class SocketTransport implements NetlinkTransport {
  private buf = Buffer.alloc(INITIAL_BUFFER);

  constructor(
    private fd: number,
    private readonly timeoutMs: number,
  ) {}

  static open(netnsPath: string | null, timeoutMs: number): SocketTransport {
    const fd = openSocketInNetns(netnsPath, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    try {
      const tv = TIMEVAL.encode({ tv_sec: Math.floor(timeoutMs / 1000), tv_usec: (timeoutMs % 1000) * 1000 });
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv);
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      // Errors echo only the request's header, and carry the kernel's reason text ("Nexthop has invalid gateway").
      setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one);
      setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one);
      bind(fd, SOCKADDR_NL.encode({ nl_family: AF_NETLINK }));
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    return new SocketTransport(fd, timeoutMs);
  }

  send(datagram: Buffer, what: string): void {
    sendto(this.fd, datagram, KERNEL, what);
  }

  /** One datagram, however large: peek at its real size first and grow the buffer if needed. */
  receive(what: string): Buffer {
    let size: number;
    try {
      size = recv(this.fd, this.buf, MSG_PEEK | MSG_TRUNC, what);
    } catch (err) {
      // SO_RCVTIMEO expiring shows up as EAGAIN; say what it means.
      if (err instanceof KernelError && err.is('EAGAIN')) {
        throw new KernelError(what, ERRNO.ETIMEDOUT, { extack: `no netlink reply within ${this.timeoutMs} ms` });
      }
      throw err;
    }
    if (size > this.buf.length) this.buf = Buffer.alloc(Math.ceil(size / 4096) * 4096);
    const n = recv(this.fd, this.buf, 0, what);
    // A copy: the buffer is reused by the next receive, and decoded messages are views into what we return.
    return Buffer.from(this.buf.subarray(0, n));
  }

  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    closeFd(fd);
  }
}

export class NetlinkSocket {
  private seq = 0;
  private open = true;

  /** `netnsPath`: the netns the socket acts on; null = the netns of the thread that opened it. */
  constructor(
    private readonly transport: NetlinkTransport,
    readonly netnsPath: string | null,
  ) {}

  static open(netnsPath: string | null, opts: NetlinkSocketOptions = {}): NetlinkSocket {
    if (endianness() !== 'LE') {
      throw new KernelError('open netlink socket (codec is little-endian only)', ERRNO.EAFNOSUPPORT);
    }
    const ms = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(ms) || ms <= 0) throw new KernelError(`use netlink timeout ${ms} ms`, ERRNO.EINVAL);
    return new NetlinkSocket(SocketTransport.open(netnsPath, ms), netnsPath);
  }

  get closed(): boolean {
    return !this.open;
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.transport.close();
  }

  /**
   * Sends one request with NLM_F_ACK and waits for the ack. Returns the messages that came before it (the
   * answer to a GET, or NLM_F_ECHO copies). A negative ack throws KernelError with the kernel's errno.
   */
  request(type: number, flags: number, body: Buffer, what: string): NlMessage[] {
    const seq = this.send(type, NLM_F.REQUEST | NLM_F.ACK | flags, body, what);
    const out: NlMessage[] = [];
    for (;;) {
      for (const msg of this.receive(what)) {
        if (msg.header.nlmsg_seq !== seq) continue;
        const t = msg.header.nlmsg_type;
        if (t === NLMSG.ERROR) {
          const err = decodeError(msg);
          if (err.errno !== 0) throw new KernelError(what, err.errno, err.extack ? { extack: err.extack } : {});
          return out;
        }
        if (t === NLMSG.NOOP || t === NLMSG.DONE) continue;
        if (t === NLMSG.OVERRUN) throw new KernelError(what, ERRNO.ENOBUFS, { extack: 'netlink overrun' });
        out.push(msg);
      }
    }
  }

  /**
   * NLM_F_DUMP request, collecting every part until NLMSG_DONE. A dump the kernel marks NLM_F_DUMP_INTR
   * (the table changed while it was being read) is read to its end and started again, DUMP_ATTEMPTS in all.
   */
  dump(type: number, body: Buffer, what: string): NlMessage[] {
    for (let attempt = 1; attempt <= DUMP_ATTEMPTS; attempt++) {
      const { messages, interrupted } = this.dumpOnce(type, body, what);
      if (!interrupted) return messages;
    }
    throw new KernelError(what, ERRNO.EINTR, { extack: `dump interrupted ${DUMP_ATTEMPTS} times in a row` });
  }

  private dumpOnce(type: number, body: Buffer, what: string): { messages: NlMessage[]; interrupted: boolean } {
    const seq = this.send(type, NLM_F.REQUEST | NLM_F.DUMP, body, what);
    const messages: NlMessage[] = [];
    let interrupted = false;
    for (;;) {
      for (const msg of this.receive(what)) {
        if (msg.header.nlmsg_seq !== seq) continue;
        if (msg.header.nlmsg_flags & NLM_F.DUMP_INTR) interrupted = true;
        const t = msg.header.nlmsg_type;
        if (t === NLMSG.DONE) {
          const errno = decodeDoneErrno(msg);
          if (errno > 0) throw new KernelError(what, errno);
          return { messages, interrupted };
        }
        if (t === NLMSG.ERROR) {
          const err = decodeError(msg);
          throw new KernelError(what, err.errno || ERRNO.EPROTO, err.extack ? { extack: err.extack } : {});
        }
        if (t === NLMSG.NOOP) continue;
        if (t === NLMSG.OVERRUN) throw new KernelError(what, ERRNO.ENOBUFS, { extack: 'netlink overrun' });
        messages.push(msg);
      }
    }
  }

  private send(type: number, flags: number, body: Buffer, what: string): number {
    if (!this.open) throw new KernelError(what, ERRNO.EBADF, { extack: 'netlink socket is closed' });
    this.seq = (this.seq + 1) >>> 0 || 1;
    this.transport.send(encodeMessage({ type, flags, seq: this.seq }, body), what);
    return this.seq;
  }

  private receive(what: string): NlMessage[] {
    return decodeMessages(this.transport.receive(what));
  }
}
