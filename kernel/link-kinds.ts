/**
 * Links of the kinds the routed datapath and the test harness build besides veth: bridge, macvlan and vxlan,
 * and enslaving a link to a bridge (IFLA_MASTER). Each is one RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL and an
 * IFLA_LINKINFO{KIND, DATA} nest, laid out as `ip link add ... type <kind>` lays it out.
 */
import { invalidArgument } from './errno';
import { familyOf, parseIp } from './ip-address';
import { changeLink, checkIfName, describe, type LinkRef, parseMac, resolveIndex } from './links';
import { type NetnsHandle, openNetns } from './netns';
import { IFLA, IFLA_INFO, IFLA_MACVLAN, IFLA_VXLAN, MACVLAN_MODE, NLM_F, RTM } from './netlink/constants';
import { attr, type AttrSpec, encodeBody, IFINFOMSG } from './netlink/codec';
import type { NetlinkSocket } from './netlink/socket';

/** What every created link may set. */
export interface NewLinkOptions {
  mtu?: number;
  mac?: string;
  /**
   * Create the link directly in this netns (STYLE 14), while the lower link (macvlan parent, vxlan underlay)
   * is looked up in this handle's netns, as `ip link add ... netns X` does.
   */
  netnsPath?: string;
}

export type BridgeOptions = NewLinkOptions;

export type MacvlanMode = Lowercase<keyof typeof MACVLAN_MODE>;

export interface MacvlanOptions extends NewLinkOptions {
  mode: MacvlanMode;
}

export interface VxlanOptions extends NewLinkOptions {
  /** VXLAN network identifier, 0 to 2^24-1. */
  vni: number;
  /** Source address of the outer packets (IPv4 or IPv6). */
  localIp?: string;
  /** UDP destination port; 4789 is the IANA port (the kernel's own default is the legacy 8472). */
  dstPort: number;
  /** Learn remote MACs from received packets; the kernel's default is on. Routed set-ups turn it off. */
  learning?: boolean;
  /** The underlay link the tunnel is bound to. */
  parentRef?: LinkRef;
}

const be16 = (type: number, v: number): AttrSpec => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return attr.bytes(type, b);
};

/** RTM_NEWLINK creating `name` of `kind`, with `data` nested in IFLA_INFO_DATA. */
function createLink(
  sock: NetlinkSocket,
  name: string,
  kind: string,
  data: AttrSpec[],
  opts: NewLinkOptions,
  what: string,
  extra: AttrSpec[] = [],
): void {
  checkIfName(name, what);
  const attrs: AttrSpec[] = [attr.str(IFLA.IFNAME, name), ...extra];
  if (opts.mtu !== undefined) {
    if (!Number.isInteger(opts.mtu) || opts.mtu <= 0 || opts.mtu > 0xffffffff) throw invalidArgument(what, 'invalid MTU');
    attrs.push(attr.u32(IFLA.MTU, opts.mtu));
  }
  if (opts.mac !== undefined) attrs.push(attr.bytes(IFLA.ADDRESS, parseMac(opts.mac, what)));
  const info: AttrSpec[] = [attr.str(IFLA_INFO.KIND, kind)];
  if (data.length > 0) info.push(attr.nest(IFLA_INFO.DATA, data));
  attrs.push(attr.nest(IFLA.LINKINFO, info));
  let ns: NetnsHandle | undefined;
  try {
    if (opts.netnsPath !== undefined) {
      ns = openNetns(opts.netnsPath);
      attrs.push(attr.u32(IFLA.NET_NS_FD, ns.fd));
    }
    sock.request(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, encodeBody(IFINFOMSG, {}, attrs), what);
  } finally {
    ns?.close();
  }
}

/** A Linux bridge; EEXIST when the name is taken. */
export function createBridge(sock: NetlinkSocket, name: string, opts: BridgeOptions = {}): void {
  createLink(sock, name, 'bridge', [], opts, `create bridge ${name}`);
}

/** A macvlan on `parentRef` (a link in this handle's netns). */
export function createMacvlan(sock: NetlinkSocket, name: string, parentRef: LinkRef, opts: MacvlanOptions): void {
  const what = `create macvlan ${name} on ${describe(parentRef)}`;
  const key = typeof opts.mode === 'string' ? (opts.mode.toUpperCase() as keyof typeof MACVLAN_MODE) : undefined;
  const mode = key !== undefined && Object.hasOwn(MACVLAN_MODE, key) ? MACVLAN_MODE[key] : undefined;
  if (mode === undefined) throw invalidArgument(what, `invalid macvlan mode ${JSON.stringify(opts.mode)}`);
  const parent = resolveIndex(sock, parentRef, what);
  createLink(sock, name, 'macvlan', [attr.u32(IFLA_MACVLAN.MODE, mode)], opts, what, [attr.u32(IFLA.LINK, parent)]);
}

/** A VXLAN device (no default remote: forwarding entries or routes say where each peer is). */
export function createVxlan(sock: NetlinkSocket, name: string, opts: VxlanOptions): void {
  const what = `create vxlan ${name} (vni ${opts.vni})`;
  if (!Number.isInteger(opts.vni) || opts.vni < 0 || opts.vni > 0xffffff) throw invalidArgument(what, 'invalid VNI');
  if (!Number.isInteger(opts.dstPort) || opts.dstPort <= 0 || opts.dstPort > 0xffff) {
    throw invalidArgument(what, `invalid destination port ${opts.dstPort}`);
  }
  const data: AttrSpec[] = [attr.u32(IFLA_VXLAN.ID, opts.vni), be16(IFLA_VXLAN.PORT, opts.dstPort)];
  if (opts.localIp !== undefined) {
    const local = parseIp(opts.localIp);
    data.push(attr.bytes(familyOf(local) === 4 ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, local));
  }
  if (opts.learning !== undefined) data.push(attr.u8(IFLA_VXLAN.LEARNING, opts.learning ? 1 : 0));
  if (opts.parentRef !== undefined) data.push(attr.u32(IFLA_VXLAN.LINK, resolveIndex(sock, opts.parentRef, what)));
  createLink(sock, name, 'vxlan', data, opts, what);
}

/** Enslaves `ref` to the bridge (or bond) `masterRef`; null releases it (IFLA_MASTER 0, `ip link set nomaster`). */
export function setMaster(sock: NetlinkSocket, ref: LinkRef, masterRef: LinkRef | null): void {
  const what = masterRef === null ? `release ${describe(ref)} from its master` : `set master of ${describe(ref)} to ${describe(masterRef)}`;
  const master = masterRef === null ? 0 : resolveIndex(sock, masterRef, what);
  changeLink(sock, ref, what, {}, [attr.u32(IFLA.MASTER, master)]);
}
