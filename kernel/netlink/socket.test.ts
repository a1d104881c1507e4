/**
 * NetlinkSocket's protocol logic against a scripted kernel: sequence numbers, acks, errors, multi-part dumps,
 * NLM_F_DUMP_INTR retries. The real socket is exercised by test/integration/kernel.test.ts.
 */
import { KernelError } from '../errno';
import { attr, decodeMessages, encodeAttrs, encodeMessage, NLMSGHDR, type NlMsgHdr } from './codec';
import { NLM_F, NLMSG, NLMSGERR_ATTR, RTM } from './constants';
import { DUMP_ATTEMPTS, NetlinkSocket, type NetlinkTransport } from './socket';

/** Answers each request with the datagrams `reply` returns for it. */
class ScriptedKernel implements NetlinkTransport {
  readonly requests: NlMsgHdr[] = [];
  private readonly queue: Buffer[] = [];
  closed = false;

  constructor(private readonly reply: (req: NlMsgHdr, n: number) => Buffer[]) {}

  send(datagram: Buffer): void {
    const [msg] = decodeMessages(datagram);
    this.requests.push(msg!.header);
    this.queue.push(...this.reply(msg!.header, this.requests.length));
  }

  receive(what: string): Buffer {
    const next = this.queue.shift();
    if (!next) throw new KernelError(what, 110);
    return next;
  }

  close(): void {
    this.closed = true;
  }
}

const part = (seq: number, type: number = RTM.NEWLINK, flags: number = NLM_F.MULTI): Buffer =>
  encodeMessage({ type, flags, seq }, Buffer.alloc(16, type));

function ack(seq: number, errno = 0, text?: string): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32LE(-errno);
  const tlvs = text ? encodeAttrs([attr.str(NLMSGERR_ATTR.MSG, text)]) : Buffer.alloc(0);
  const flags = NLM_F.CAPPED | (text ? NLM_F.ACK_TLVS : 0);
  return encodeMessage({ type: NLMSG.ERROR, flags, seq }, code, NLMSGHDR.encode({ nlmsg_seq: seq }), tlvs);
}

function done(seq: number, flags: number = NLM_F.MULTI, errno = 0): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32LE(-errno);
  return encodeMessage({ type: NLMSG.DONE, flags, seq }, code);
}

describe('NetlinkSocket.request', () => {
  test('sends REQUEST|ACK plus the given flags with increasing sequence numbers', () => {
    const kernel = new ScriptedKernel((req) => [ack(req.nlmsg_seq)]);
    const sock = new NetlinkSocket(kernel, null);
    sock.request(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, Buffer.alloc(16), 'create');
    sock.request(RTM.DELLINK, 0, Buffer.alloc(16), 'delete');
    expect(kernel.requests.map((r) => [r.nlmsg_type, r.nlmsg_flags, r.nlmsg_seq])).toEqual([
      [RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL, 1],
      [RTM.DELLINK, NLM_F.REQUEST | NLM_F.ACK, 2],
    ]);
  });

  test('returns the replies that precede the ack', () => {
    const kernel = new ScriptedKernel((req) => [Buffer.concat([part(req.nlmsg_seq, RTM.NEWLINK, 0), ack(req.nlmsg_seq)])]);
    const replies = new NetlinkSocket(kernel, null).request(RTM.GETLINK, 0, Buffer.alloc(16), 'get');
    expect(replies.map((m) => m.header.nlmsg_type)).toEqual([RTM.NEWLINK]);
  });

  test('skips late answers to an earlier request (another sequence number)', () => {
    const kernel = new ScriptedKernel((req) => [ack(req.nlmsg_seq + 100, 17), part(req.nlmsg_seq - 1), ack(req.nlmsg_seq)]);
    expect(new NetlinkSocket(kernel, null).request(RTM.NEWLINK, 0, Buffer.alloc(16), 'x')).toEqual([]);
  });

  test('a negative ack is a KernelError with errno name and the kernel text', () => {
    const kernel = new ScriptedKernel((req) => [ack(req.nlmsg_seq, 17, 'ipv4: Address already assigned')]);
    const sock = new NetlinkSocket(kernel, null);
    let caught: unknown;
    try {
      sock.request(RTM.NEWADDR, 0, Buffer.alloc(8), 'add address 10.0.0.1/24 to eth0');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(KernelError);
    expect(caught).toMatchObject({
      kind: 'KernelFailure',
      errno: 17,
      errnoName: 'EEXIST',
      extack: 'ipv4: Address already assigned',
      message: 'failed to add address 10.0.0.1/24 to eth0: EEXIST (File exists): ipv4: Address already assigned',
    });
  });

  test('a closed socket refuses with EBADF and closes its transport once', () => {
    const kernel = new ScriptedKernel(() => []);
    const sock = new NetlinkSocket(kernel, null);
    sock.close();
    sock.close();
    expect(kernel.closed).toBe(true);
    expect(() => sock.request(RTM.GETLINK, 0, Buffer.alloc(16), 'get')).toThrow(expect.objectContaining({ errnoName: 'EBADF' }));
  });
});

describe('NetlinkSocket.dump', () => {
  test('collects parts across datagrams until NLMSG_DONE', () => {
    const kernel = new ScriptedKernel((req) => [
      Buffer.concat([part(req.nlmsg_seq), part(req.nlmsg_seq)]),
      part(req.nlmsg_seq),
      done(req.nlmsg_seq),
    ]);
    const msgs = new NetlinkSocket(kernel, null).dump(RTM.GETLINK, Buffer.alloc(16), 'list');
    expect(msgs).toHaveLength(3);
    expect(kernel.requests[0]?.nlmsg_flags).toBe(NLM_F.REQUEST | NLM_F.DUMP);
  });

  test('an interrupted dump is read to its end and started again', () => {
    const kernel = new ScriptedKernel((req, n) =>
      n < 3
        ? [part(req.nlmsg_seq, RTM.NEWLINK, NLM_F.MULTI | NLM_F.DUMP_INTR), done(req.nlmsg_seq, NLM_F.MULTI | NLM_F.DUMP_INTR)]
        : [part(req.nlmsg_seq), part(req.nlmsg_seq), done(req.nlmsg_seq)],
    );
    const msgs = new NetlinkSocket(kernel, null).dump(RTM.GETROUTE, Buffer.alloc(12), 'list');
    expect(kernel.requests).toHaveLength(3);
    expect(msgs).toHaveLength(2);
  });

  test(`gives up with EINTR after ${DUMP_ATTEMPTS} interrupted dumps`, () => {
    const kernel = new ScriptedKernel((req) => [done(req.nlmsg_seq, NLM_F.MULTI | NLM_F.DUMP_INTR)]);
    const sock = new NetlinkSocket(kernel, null);
    expect(() => sock.dump(RTM.GETADDR, Buffer.alloc(8), 'list addresses')).toThrow(expect.objectContaining({ errnoName: 'EINTR' }));
    expect(kernel.requests).toHaveLength(DUMP_ATTEMPTS);
  });

  test('an error in NLMSG_DONE or an NLMSG_ERROR ends the dump with that errno', () => {
    const viaDone = new ScriptedKernel((req) => [part(req.nlmsg_seq), done(req.nlmsg_seq, NLM_F.MULTI, 12)]);
    expect(() => new NetlinkSocket(viaDone, null).dump(RTM.GETLINK, Buffer.alloc(16), 'list')).toThrow(
      expect.objectContaining({ errnoName: 'ENOMEM' }),
    );
    const viaError = new ScriptedKernel((req) => [ack(req.nlmsg_seq, 22, 'Invalid header for link dump')]);
    expect(() => new NetlinkSocket(viaError, null).dump(RTM.GETLINK, Buffer.alloc(16), 'list')).toThrow(
      expect.objectContaining({ errnoName: 'EINVAL', extack: 'Invalid header for link dump' }),
    );
  });

  test('no reply at all surfaces the transport timeout', () => {
    const silent = new ScriptedKernel(() => []);
    expect(() => new NetlinkSocket(silent, null).dump(RTM.GETLINK, Buffer.alloc(16), 'list')).toThrow(
      expect.objectContaining({ errnoName: 'ETIMEDOUT' }),
    );
  });
});
