/**
 * The bytes the new rtnetlink operations send (neighbours, bridge/macvlan/vxlan, master, altnames), against a
 * transport that records each request and acks it; decodeNeighbour against a hand-built RTM_NEWNEIGH. The
 * kernel's own reading of the same requests is test/integration/kernel.test.ts.
 */
import { createBridge, createMacvlan, createVxlan, setMaster } from './link-kinds';
import { addAltName, removeAltName } from './links';
import { addNeighbour, decodeNeighbour, deleteNeighbour, replaceNeighbour } from './neighbours';
import { AF, IFLA, IFLA_INFO, IFLA_MACVLAN, IFLA_VXLAN, MACVLAN_MODE, NDA, NLM_F, NTF, NUD, RTM } from './netlink/constants';
import {
  type Attr,
  attr,
  decodeBody,
  decodeMessages,
  encodeBody,
  encodeMessage,
  findAttr,
  IFINFOMSG,
  NDMSG,
  readNested,
  readStr,
  readU32,
  readU8,
} from './netlink/codec';
import { socketWith } from '../test/helpers/recording-kernel';

/** IFLA_LINKINFO of a link request: kind and the IFLA_INFO_DATA children. */
function linkInfo(attrs: Attr[]): { kind: string; data: Attr[] } {
  const info = readNested(findAttr(attrs, IFLA.LINKINFO)!);
  const data = findAttr(info, IFLA_INFO.DATA);
  return { kind: readStr(findAttr(info, IFLA_INFO.KIND)!), data: data ? readNested(data) : [] };
}

describe('link kinds', () => {
  test('createBridge: NEWLINK CREATE|EXCL, kind bridge, MTU', () => {
    const { sock, kernel } = socketWith();
    createBridge(sock, 'br0', { mtu: 9000 });
    const [msg] = kernel.sent;
    expect(msg!.header).toMatchObject({ nlmsg_type: RTM.NEWLINK, nlmsg_flags: NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL });
    const { fixed, attrs } = decodeBody(IFINFOMSG, msg!.payload);
    expect(fixed.ifi_index).toBe(0);
    expect(readStr(findAttr(attrs, IFLA.IFNAME)!)).toBe('br0');
    expect(readU32(findAttr(attrs, IFLA.MTU)!)).toBe(9000);
    expect(linkInfo(attrs)).toEqual({ kind: 'bridge', data: [] });
  });

  test('createMacvlan: IFLA_LINK is the parent, IFLA_MACVLAN_MODE the mode', () => {
    const { sock, kernel } = socketWith();
    createMacvlan(sock, 'mv0', 7, { mode: 'bridge', mac: '02:00:00:00:00:09' });
    const { attrs } = decodeBody(IFINFOMSG, kernel.sent[0]!.payload);
    expect(readU32(findAttr(attrs, IFLA.LINK)!)).toBe(7);
    expect(findAttr(attrs, IFLA.ADDRESS)!.data.toString('hex')).toBe('020000000009');
    const { kind, data } = linkInfo(attrs);
    expect(kind).toBe('macvlan');
    expect(readU32(findAttr(data, IFLA_MACVLAN.MODE)!)).toBe(MACVLAN_MODE.BRIDGE);
  });

  test('createVxlan: VNI, big-endian port, local address, learning off, underlay link', () => {
    const { sock, kernel } = socketWith();
    createVxlan(sock, 'vx0', { vni: 0x123456, dstPort: 4789, localIp: '192.0.2.1', learning: false, parentRef: 3 });
    const { data } = linkInfo(decodeBody(IFINFOMSG, kernel.sent[0]!.payload).attrs);
    expect(readU32(findAttr(data, IFLA_VXLAN.ID)!)).toBe(0x123456);
    expect(findAttr(data, IFLA_VXLAN.PORT)!.data.toString('hex')).toBe('12b5');
    expect(findAttr(data, IFLA_VXLAN.LOCAL)!.data.toString('hex')).toBe('c0000201');
    expect(readU8(findAttr(data, IFLA_VXLAN.LEARNING)!)).toBe(0);
    expect(readU32(findAttr(data, IFLA_VXLAN.LINK)!)).toBe(3);

    createVxlan(sock, 'vx6', { vni: 1, dstPort: 8472, localIp: '2001:db8::1' });
    const six = linkInfo(decodeBody(IFINFOMSG, kernel.sent[1]!.payload).attrs).data;
    expect(findAttr(six, IFLA_VXLAN.LOCAL6)!.data.toString('hex')).toBe('20010db8000000000000000000000001');
    expect(findAttr(six, IFLA_VXLAN.LEARNING)).toBeUndefined();
  });

  test.each([
    ['a VNI of 2^24', () => createVxlan(socketWith().sock, 'vx0', { vni: 0x1000000, dstPort: 4789 })],
    ['port 0', () => createVxlan(socketWith().sock, 'vx0', { vni: 1, dstPort: 0 })],
    ['an unknown macvlan mode', () => createMacvlan(socketWith().sock, 'mv0', 2, { mode: 'toString' as never })],
    ['a bridge name of 16 bytes', () => createBridge(socketWith().sock, 'br-0123456789abc')],
    ['MTU 0', () => createBridge(socketWith().sock, 'br0', { mtu: 0 })],
  ])('%s is EINVAL before anything is sent', (_name, call) => {
    expect(call).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });

  test('setMaster: IFLA_MASTER is the master index, 0 to release', () => {
    const { sock, kernel } = socketWith();
    setMaster(sock, 5, 9);
    setMaster(sock, 5, null);
    const masters = kernel.sent.map((m) => decodeBody(IFINFOMSG, m.payload)).map((b) => [b.fixed.ifi_index, readU32(findAttr(b.attrs, IFLA.MASTER)!)]);
    expect(masters).toEqual([[5, 9], [5, 0]]);
  });
});

describe('altnames', () => {
  test('addAltName / removeAltName: NEWLINKPROP / DELLINKPROP with a flagged-nested IFLA_PROP_LIST', () => {
    const { sock, kernel } = socketWith();
    addAltName(sock, 4, 'plx-old');
    expect(removeAltName(sock, 'eth0', 'plx-old')).toBe(true);
    expect(kernel.sent.map((m) => m.header.nlmsg_type)).toEqual([RTM.NEWLINKPROP, RTM.DELLINKPROP]);
    const del = kernel.sent[1]!;
    const { fixed, attrs } = decodeBody(IFINFOMSG, del.payload);
    expect(fixed.ifi_index).toBe(0);
    expect(readStr(findAttr(attrs, IFLA.IFNAME)!)).toBe('eth0');
    // IFLA_PROP_LIST must carry NLA_F_NESTED: the kernel's policy for it is strict.
    const props = findAttr(attrs, IFLA.PROP_LIST)!;
    expect(props.nested).toBe(true);
    expect(readNested(props).map(readStr)).toEqual(['plx-old']);
  });

  test('removing an altname the link does not have is false (ENOENT)', () => {
    expect(removeAltName(socketWith(2).sock, 4, 'plx-none')).toBe(false);
  });
});

describe('neighbours', () => {
  test('addNeighbour: NEWNEIGH CREATE|EXCL, NUD_PERMANENT, DST and LLADDR', () => {
    const { sock, kernel } = socketWith();
    addNeighbour(sock, { ifindex: 3, address: '169.254.1.1', mac: 'ee:ee:ee:ee:ee:ee', permanent: true });
    const [msg] = kernel.sent;
    expect(msg!.header).toMatchObject({ nlmsg_type: RTM.NEWNEIGH, nlmsg_flags: NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL });
    const { fixed, attrs } = decodeBody(NDMSG, msg!.payload);
    expect(fixed).toMatchObject({ ndm_family: AF.INET, ndm_ifindex: 3, ndm_state: NUD.PERMANENT, ndm_flags: 0 });
    expect(findAttr(attrs, NDA.DST)!.data.toString('hex')).toBe('a9fe0101');
    expect(findAttr(attrs, NDA.LLADDR)!.data.toString('hex')).toBe('eeeeeeeeeeee');
  });

  test('replaceNeighbour: CREATE|REPLACE, IPv6, router flag', () => {
    const { sock, kernel } = socketWith();
    replaceNeighbour(sock, { ifindex: 3, address: 'fe80::1', mac: 'ee:ee:ee:ee:ee:ee', permanent: true, router: true });
    const [msg] = kernel.sent;
    expect(msg!.header.nlmsg_flags).toBe(NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE);
    expect(decodeBody(NDMSG, msg!.payload).fixed).toMatchObject({ ndm_family: AF.INET6, ndm_flags: NTF.ROUTER });
  });

  test('deleteNeighbour: DELNEIGH without LLADDR; absent is false', () => {
    const { sock, kernel } = socketWith();
    expect(deleteNeighbour(sock, { ifindex: 3, address: '169.254.1.1' })).toBe(true);
    const { attrs } = decodeBody(NDMSG, kernel.sent[0]!.payload);
    expect(kernel.sent[0]!.header.nlmsg_type).toBe(RTM.DELNEIGH);
    expect(findAttr(attrs, NDA.LLADDR)).toBeUndefined();
    expect(deleteNeighbour(socketWith(2).sock, { ifindex: 3, address: '169.254.1.1' })).toBe(false);
  });

  test.each([
    ['both ifName and ifindex', { ifName: 'eth0', ifindex: 3, address: '10.0.0.1', mac: '02:00:00:00:00:01', permanent: true }],
    ['neither', { address: '10.0.0.1', mac: '02:00:00:00:00:01', permanent: true }],
    ['a non-permanent entry', { ifindex: 3, address: '10.0.0.1', mac: '02:00:00:00:00:01', permanent: false }],
    ['a bad address', { ifindex: 3, address: '10.0.0', mac: '02:00:00:00:00:01', permanent: true }],
    ['a bad MAC', { ifindex: 3, address: '10.0.0.1', mac: '02:00', permanent: true }],
  ])('%s is EINVAL', (_name, spec) => {
    expect(() => addNeighbour(socketWith().sock, spec as never)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });

  test('decodeNeighbour reads a hand-built RTM_NEWNEIGH; AF_BRIDGE entries are skipped', () => {
    const body = encodeBody(NDMSG, { ndm_family: AF.INET6, ndm_ifindex: 4, ndm_state: NUD.REACHABLE, ndm_flags: NTF.ROUTER }, [
      attr.bytes(NDA.DST, Buffer.from('fe800000000000000000000000000001', 'hex')),
      attr.bytes(NDA.LLADDR, Buffer.from('020000000005', 'hex')),
    ]);
    const msg = decodeMessages(encodeMessage({ type: RTM.NEWNEIGH, flags: 0, seq: 1 }, body))[0]!;
    expect(decodeNeighbour(msg)).toEqual({
      ifindex: 4,
      family: 6,
      address: 'fe80::1',
      mac: '02:00:00:00:00:05',
      state: NUD.REACHABLE,
      permanent: false,
      flags: NTF.ROUTER,
    });
    const fdb = encodeBody(NDMSG, { ndm_family: 7, ndm_ifindex: 4 }, [attr.bytes(NDA.LLADDR, Buffer.alloc(6))]);
    expect(decodeNeighbour(decodeMessages(encodeMessage({ type: RTM.NEWNEIGH, flags: 0, seq: 1 }, fdb))[0]!)).toBeUndefined();
  });
});
