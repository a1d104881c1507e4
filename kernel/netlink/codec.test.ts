import { KernelError } from '../errno';
import { decodeLink } from '../links';
import { decodeAddress } from '../addresses';
import { decodeRoute } from '../routes';
import {
  align4,
  attr,
  attrsSize,
  decodeAttrs,
  decodeBody,
  decodeDoneErrno,
  decodeError,
  decodeMessages,
  encodeAttrs,
  encodeBody,
  encodeMessage,
  findAttr,
  findAttrs,
  IFADDRMSG,
  IFINFOMSG,
  NDMSG,
  NLMSGHDR,
  readNested,
  readStr,
  readU16,
  readU32,
  readU8,
  RTMSG,
  STRUCTS,
} from './codec';
import { AF, IFA, IFLA, IFLA_INFO, NDA, NLA_F, NLM_F, NLMSG, NLMSGERR_ATTR, RTA, RTM, RTN, RTNH_F, RTPROT } from './constants';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('attributes', () => {
  test.each([
    ['u8 pads to 8 bytes', attr.u8(7, 0xab), '0500 0700 ab000000'],
    ['u16 pads to 8 bytes', attr.u16(7, 0x1234), '0600 0700 3412 0000'],
    ['u32 needs no padding', attr.u32(4, 1500), '0800 0400 dc050000'],
    ['string is NUL-terminated then padded', attr.str(3, 'eth0'), '0900 0300 65746830 00 000000'],
    ['flag has no payload', attr.flag(9), '0400 0900'],
    ['bytes keep their length', attr.bytes(1, hex('020000000001')), '0a00 0100 020000000001 0000'],
  ])('%s', (_name, spec, expected) => {
    expect(encodeAttrs([spec]).toString('hex')).toBe(hex(expected).toString('hex'));
  });

  test('padding bytes are zero and lengths exclude them', () => {
    const buf = encodeAttrs([attr.str(3, 'ab'), attr.u8(5, 1)]);
    expect(buf.length).toBe(16);
    expect(buf.readUInt16LE(0)).toBe(7); // 4 + "ab\0"
    expect(buf[7]).toBe(0);
    expect(buf.readUInt16LE(8)).toBe(5);
    expect(buf.subarray(13).equals(Buffer.alloc(3))).toBe(true);
  });

  test('nested attributes carry the padded size of their children', () => {
    const spec = attr.nest(IFLA.LINKINFO, [attr.str(IFLA_INFO.KIND, 'veth'), attr.nest(IFLA_INFO.DATA, [attr.u32(1, 9)])]);
    const buf = encodeAttrs([spec]);
    // 4 (outer) + 12 ("veth\0" padded) + 4 (DATA) + 8 (u32)
    expect(buf.length).toBe(28);
    expect(attrsSize([spec])).toBe(28);
    expect(buf.readUInt16LE(0)).toBe(28);
    const [outer] = decodeAttrs(buf);
    expect(outer?.type).toBe(IFLA.LINKINFO);
    const inner = readNested(outer!);
    expect(readStr(findAttr(inner, IFLA_INFO.KIND)!)).toBe('veth');
    const data = readNested(findAttr(inner, IFLA_INFO.DATA)!);
    expect(readU32(data[0]!)).toBe(9);
  });

  test('NLA_F_NESTED is set on request and masked off the type when decoding', () => {
    const buf = encodeAttrs([attr.nest(IFLA.PROP_LIST, [attr.str(IFLA.ALT_IFNAME, 'x')], true)]);
    expect(buf.readUInt16LE(2)).toBe(IFLA.PROP_LIST | NLA_F.NESTED);
    const [a] = decodeAttrs(buf);
    expect(a).toMatchObject({ type: IFLA.PROP_LIST, nested: true });
  });

  test('round trip of many attributes keeps order, types and values', () => {
    const specs = [attr.u8(1, 255), attr.u16(2, 65535), attr.u32(3, 0xffffffff), attr.s32(4, -7), attr.str(5, 'héllo')];
    const back = decodeAttrs(encodeAttrs(specs));
    expect(back.map((a) => a.type)).toEqual([1, 2, 3, 4, 5]);
    expect(readU8(back[0]!)).toBe(255);
    expect(readU16(back[1]!)).toBe(65535);
    expect(readU32(back[2]!)).toBe(0xffffffff);
    expect(back[3]!.data.readInt32LE(0)).toBe(-7);
    expect(readStr(back[4]!)).toBe('héllo');
    expect(findAttrs(back, 9)).toEqual([]);
  });

  test.each([
    ['length below the header size', '0200 0100'],
    ['length past the end', '0c00 0100 01000000'],
  ])('a malformed attribute (%s) is EBADMSG', (_name, bytes) => {
    expect(() => decodeAttrs(hex(bytes))).toThrow(expect.objectContaining({ errnoName: 'EBADMSG' }));
  });

  test('fewer than 4 trailing bytes are padding, not an attribute', () => {
    expect(decodeAttrs(hex('0800 0400 dc050000 0000'))).toHaveLength(1);
  });

  test('a too-short value is EBADMSG, not a silent garbage read', () => {
    const [a] = decodeAttrs(encodeAttrs([attr.u8(1, 1)]));
    expect(() => readU32(a!)).toThrow(KernelError);
  });
});

describe('structs', () => {
  test.each(STRUCTS.map((s) => [s.cName, s] as const))('%s round-trips every field', (_name, codec) => {
    const value = Object.fromEntries(Object.keys(codec.fields).map((k, i) => [k, i + 1]));
    const buf = codec.encode(value);
    expect(buf.length).toBe(codec.size);
    expect(codec.decode(buf)).toEqual(value);
  });

  test('ifinfomsg layout', () => {
    const buf = IFINFOMSG.encode({ ifi_family: AF.INET6, ifi_type: 1, ifi_index: 7, ifi_flags: 0x1003, ifi_change: 1 });
    expect(buf.toString('hex')).toBe('0a000100' + '07000000' + '03100000' + '01000000');
  });

  test('ndmsg layout', () => {
    const buf = NDMSG.encode({ ndm_family: AF.INET, ndm_ifindex: 2, ndm_state: 0x80, ndm_flags: 0, ndm_type: RTN.UNICAST });
    expect(buf.toString('hex')).toBe('02000000' + '02000000' + '8000' + '00' + '01');
  });

  test('decoding a short struct is EBADMSG', () => {
    expect(() => RTMSG.decode(Buffer.alloc(11))).toThrow(expect.objectContaining({ errnoName: 'EBADMSG' }));
  });
});

describe('messages', () => {
  test('encodeMessage fills nlmsg_len and pads the datagram', () => {
    const msg = encodeMessage({ type: RTM.GETLINK, flags: NLM_F.REQUEST | NLM_F.ACK, seq: 42 }, Buffer.from([1, 2, 3]));
    expect(msg.length).toBe(20);
    expect(NLMSGHDR.decode(msg)).toEqual({ nlmsg_len: 19, nlmsg_type: RTM.GETLINK, nlmsg_flags: 5, nlmsg_seq: 42, nlmsg_pid: 0 });
    const [back] = decodeMessages(msg);
    expect(back?.payload.equals(Buffer.from([1, 2, 3]))).toBe(true);
  });

  test('several messages in one datagram are split on 4-byte boundaries', () => {
    const a = encodeMessage({ type: NLMSG.NOOP, flags: 0, seq: 1 }, Buffer.from([9]));
    const b = encodeMessage({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: 1 }, Buffer.alloc(4));
    const msgs = decodeMessages(Buffer.concat([a, b]));
    expect(msgs.map((m) => m.header.nlmsg_type)).toEqual([NLMSG.NOOP, NLMSG.DONE]);
    expect(decodeDoneErrno(msgs[1]!)).toBe(0);
  });

  test('a message whose length runs past the datagram is EBADMSG', () => {
    const msg = encodeMessage({ type: RTM.NEWLINK, flags: 0, seq: 1 }, Buffer.alloc(16));
    expect(() => decodeMessages(msg, 24)).toThrow(expect.objectContaining({ errnoName: 'EBADMSG' }));
  });

  test('an NLMSG_ERROR with a capped request and extended ack gives errno and text', () => {
    const request = NLMSGHDR.encode({ nlmsg_len: 64, nlmsg_type: RTM.NEWADDR, nlmsg_flags: 0x605, nlmsg_seq: 3 });
    const error = Buffer.alloc(4);
    error.writeInt32LE(-17);
    const tlvs = encodeAttrs([attr.str(NLMSGERR_ATTR.MSG, 'ipv4: Address already assigned'), attr.u32(NLMSGERR_ATTR.OFFS, 20)]);
    const wire = encodeMessage({ type: NLMSG.ERROR, flags: NLM_F.CAPPED | NLM_F.ACK_TLVS, seq: 3 }, error, request, tlvs);
    const [msg] = decodeMessages(wire);
    expect(decodeError(msg!)).toEqual({
      errno: 17,
      extack: 'ipv4: Address already assigned',
      request: { nlmsg_len: 64, nlmsg_type: RTM.NEWADDR, nlmsg_flags: 0x605, nlmsg_seq: 3, nlmsg_pid: 0 },
    });
  });

  test('an uncapped NLMSG_ERROR skips the echoed request before the extended ack', () => {
    const body = Buffer.alloc(8, 0xee);
    const request = encodeMessage({ type: RTM.NEWLINK, flags: 5, seq: 9 }, body);
    const tlvs = encodeAttrs([attr.str(NLMSGERR_ATTR.MSG, 'nope')]);
    const wire = encodeMessage({ type: NLMSG.ERROR, flags: NLM_F.ACK_TLVS, seq: 9 }, hex('edffffff'), request, tlvs);
    expect(decodeError(decodeMessages(wire)[0]!)).toMatchObject({ errno: 19, extack: 'nope' });
  });

  test('an ack is errno 0 without text', () => {
    const wire = encodeMessage({ type: NLMSG.ERROR, flags: NLM_F.CAPPED, seq: 1 }, Buffer.alloc(4), NLMSGHDR.encode({}));
    expect(decodeError(decodeMessages(wire)[0]!)).toMatchObject({ errno: 0 });
  });
});

describe('rtnetlink messages', () => {
  // Captured from kernel 6.18: RTM_NEWROUTE for `10.10.0.0/16 via 10.9.0.2 dev a0 metric 50` (ifindex 3,
  // carrier down so RTNH_F_LINKDOWN), as part of a dump (NLM_F_MULTI).
  const capturedRoute = hex(`
    44000000 1800 0200 01000000 00000000
    02 10 00 00 fe 03 00 01 10000000
    0800 0f00 fe000000
    0800 0100 0a0a0000
    0800 0600 32000000
    0800 0500 0a090002
    0800 0400 03000000`);

  test('decodes a captured RTM_NEWROUTE', () => {
    const [msg] = decodeMessages(capturedRoute);
    expect(msg?.header).toMatchObject({ nlmsg_len: 68, nlmsg_type: RTM.NEWROUTE, nlmsg_flags: NLM_F.MULTI });
    expect(decodeRoute(msg!)).toEqual({
      family: 4,
      dst: '10.10.0.0/16',
      gateway: '10.9.0.2',
      oifIndex: 3,
      table: 254,
      metric: 50,
      scope: 0,
      protocol: RTPROT.BOOT,
      type: RTN.UNICAST,
      flags: RTNH_F.LINKDOWN,
      onlink: false,
    });
  });

  test('encodes the same bytes the kernel sent', () => {
    const body = encodeBody(
      RTMSG,
      { rtm_family: AF.INET, rtm_dst_len: 16, rtm_table: 254, rtm_protocol: 3, rtm_type: 1, rtm_flags: RTNH_F.LINKDOWN },
      [
        attr.u32(RTA.TABLE, 254),
        attr.bytes(RTA.DST, Buffer.from([10, 10, 0, 0])),
        attr.u32(RTA.PRIORITY, 50),
        attr.bytes(RTA.GATEWAY, Buffer.from([10, 9, 0, 2])),
        attr.u32(RTA.OIF, 3),
      ],
    );
    expect(encodeMessage({ type: RTM.NEWROUTE, flags: NLM_F.MULTI, seq: 1 }, body).equals(capturedRoute)).toBe(true);
  });

  test('decodes an IPv6 default route with a multipath next hop list', () => {
    const hop = (ifindex: number, gw: string): Buffer => {
      const attrs = encodeAttrs([attr.bytes(RTA.GATEWAY, hex(gw))]);
      const head = Buffer.alloc(8);
      head.writeUInt16LE(8 + attrs.length, 0);
      head.writeInt32LE(ifindex, 4);
      return Buffer.concat([head, attrs]);
    };
    const body = encodeBody(RTMSG, { rtm_family: AF.INET6, rtm_dst_len: 0, rtm_table: 254, rtm_protocol: 3, rtm_type: 1 }, [
      attr.u32(RTA.TABLE, 254),
      attr.u32(RTA.PRIORITY, 1024),
      attr.bytes(RTA.MULTIPATH, Buffer.concat([hop(2, '20010db8000000000000000000000001'), hop(3, 'fe800000000000000000000000000002')])),
    ]);
    const route = decodeRoute(decodeMessages(encodeMessage({ type: RTM.NEWROUTE, flags: 0, seq: 1 }, body))[0]!);
    expect(route).toMatchObject({ family: 6, dst: 'default', metric: 1024, table: 254 });
    expect(route.gateway).toBeUndefined();
    expect(route.nexthops).toEqual([
      { oifIndex: 2, gateway: '2001:db8::1', flags: 0, hops: 0 },
      { oifIndex: 3, gateway: 'fe80::2', flags: 0, hops: 0 },
    ]);
  });

  // Built by hand the way the kernel lays out a veth in another netns: ifinfomsg, then IFNAME, MTU, OPERSTATE,
  // LINK, LINK_NETNSID, ADDRESS, LINKINFO{KIND}, PROP_LIST{ALT_IFNAME, ALT_IFNAME} (flagged nested).
  const builtLink = hex(`
    88000000 1000 0200 07000000 00000000
    00 00 0100 05000000 43100100 00000000
    0900 0300 65746830 00 000000
    0800 0400 dc050000
    0500 1000 06 000000
    0800 0500 09000000
    0800 2500 00000000
    0a00 0100 020000000001 0000
    1000 1200 0900 0100 76657468 00 000000
    2000 3480 0f00 3500 706f642d75706c696e6b00 00 0c00 3500 706c782d6e657400`);

  test('decodes a hand-built RTM_NEWLINK', () => {
    const [msg] = decodeMessages(builtLink);
    expect(msg?.header.nlmsg_len).toBe(builtLink.length);
    expect(decodeLink(msg!)).toEqual({
      index: 5,
      name: 'eth0',
      mac: '02:00:00:00:00:01',
      mtu: 1500,
      up: true,
      lowerUp: true,
      operState: 'UP',
      kind: 'veth',
      linkIndex: 9,
      linkNetnsId: 0,
      altNames: ['pod-uplink', 'plx-net'],
      flags: 0x11043,
    });
  });

  test('the encoder produces the hand-built RTM_NEWLINK byte for byte', () => {
    const body = encodeBody(IFINFOMSG, { ifi_type: 1, ifi_index: 5, ifi_flags: 0x11043 }, [
      attr.str(IFLA.IFNAME, 'eth0'),
      attr.u32(IFLA.MTU, 1500),
      attr.u8(IFLA.OPERSTATE, 6),
      attr.s32(IFLA.LINK, 9),
      attr.s32(IFLA.LINK_NETNSID, 0),
      attr.bytes(IFLA.ADDRESS, hex('020000000001')),
      attr.nest(IFLA.LINKINFO, [attr.str(IFLA_INFO.KIND, 'veth')]),
      attr.nest(IFLA.PROP_LIST, [attr.str(IFLA.ALT_IFNAME, 'pod-uplink'), attr.str(IFLA.ALT_IFNAME, 'plx-net')], true),
    ]);
    const wire = encodeMessage({ type: RTM.NEWLINK, flags: NLM_F.MULTI, seq: 7 }, body);
    expect(wire.toString('hex')).toBe(builtLink.toString('hex'));
  });

  test('decodes RTM_NEWADDR for IPv4 (IFA_LOCAL) and IPv6 (IFA_ADDRESS)', () => {
    const v4 = encodeBody(IFADDRMSG, { ifa_family: AF.INET, ifa_prefixlen: 24, ifa_flags: 0x80, ifa_index: 3 }, [
      attr.bytes(IFA.ADDRESS, Buffer.from([10, 0, 0, 9])), // the peer on a point-to-point link
      attr.bytes(IFA.LOCAL, Buffer.from([10, 0, 0, 1])),
      attr.str(IFA.LABEL, 'eth0'),
    ]);
    const v6 = encodeBody(IFADDRMSG, { ifa_family: AF.INET6, ifa_prefixlen: 64, ifa_scope: 253, ifa_index: 3 }, [
      attr.bytes(IFA.ADDRESS, hex('fe800000000000000000000000000001')),
      attr.u32(IFA.FLAGS, 0x280),
    ]);
    const [a, b] = [v4, v6].map((body) => decodeAddress(decodeMessages(encodeMessage({ type: RTM.NEWADDR, flags: 0, seq: 1 }, body))[0]!));
    expect(a).toEqual({ ifindex: 3, family: 4, address: '10.0.0.1', prefixLength: 24, scope: 0, flags: 0x80, label: 'eth0' });
    expect(b).toEqual({ ifindex: 3, family: 6, address: 'fe80::1', prefixLength: 64, scope: 253, flags: 0x280 });
  });

  test('ndmsg bodies decode with their attributes after the 12-byte header', () => {
    const body = encodeBody(NDMSG, { ndm_family: AF.INET, ndm_ifindex: 4, ndm_state: 0x02 }, [
      attr.bytes(NDA.DST, Buffer.from([10, 0, 0, 2])),
      attr.bytes(NDA.LLADDR, hex('020000000002')),
    ]);
    const { fixed, attrs } = decodeBody(NDMSG, body);
    expect(fixed).toMatchObject({ ndm_family: AF.INET, ndm_ifindex: 4, ndm_state: 2 });
    expect(findAttr(attrs, NDA.LLADDR)?.data.toString('hex')).toBe('020000000002');
    expect(align4(NDMSG.size)).toBe(12);
  });
});
