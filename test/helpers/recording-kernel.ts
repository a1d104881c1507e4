/**
 * A scripted kernel for request-encoding tests: it acks every netlink request (or fails it with `errno`) and
 * keeps what was sent, so a test reads the exact bytes a kernel operation produced without a kernel.
 */
import { NLM_F, NLMSG } from '../../kernel/netlink/constants';
import { decodeMessages, encodeMessage, type NlMessage, NLMSGHDR } from '../../kernel/netlink/codec';
import { NetlinkSocket, type NetlinkTransport } from '../../kernel/netlink/socket';

export class RecordingKernel implements NetlinkTransport {
  readonly sent: NlMessage[] = [];
  /** The datagrams as sent, byte for byte. */
  readonly datagrams: Buffer[] = [];
  private queue: Buffer[] = [];

  constructor(private readonly errno = 0) {}

  send(datagram: Buffer): void {
    this.datagrams.push(Buffer.from(datagram));
    const [msg] = decodeMessages(Buffer.from(datagram));
    this.sent.push(msg!);
    const code = Buffer.alloc(4);
    code.writeInt32LE(-this.errno);
    const seq = msg!.header.nlmsg_seq;
    this.queue.push(encodeMessage({ type: NLMSG.ERROR, flags: NLM_F.CAPPED, seq }, code, NLMSGHDR.encode({ nlmsg_seq: seq })));
  }

  receive(): Buffer {
    return this.queue.shift()!;
  }

  close(): void {}
}

export function socketWith(errno = 0): { sock: NetlinkSocket; kernel: RecordingKernel } {
  const kernel = new RecordingKernel(errno);
  return { sock: new NetlinkSocket(kernel, null), kernel };
}
