/**
 * Network interfaces over rtnetlink (RTM_*LINK): list, look up, change, create veth pairs, move, delete.
 * A link is named by its name or its ifindex (LinkRef); names are checked before they reach the kernel.
 */
import { ERRNO, hasErrno, invalidArgument, KernelError } from './errno';
import { type NetnsHandle, openNetns } from './netns';
import { AF, IF_OPER_NAMES, IFF, IFLA, IFLA_INFO, NLM_F, RTEXT_FILTER, RTM, VETH_INFO } from './netlink/constants';
import {
  type Attr,
  attr,
  type AttrSpec,
  decodeBody,
  encodeBody,
  encodeAttrs,
  findAttr,
  findAttrs,
  IFINFOMSG,
  type NlMessage,
  readNested,
  readStr,
  readS32,
  readU32,
  readU8,
} from './netlink/codec';
import type { NetlinkSocket } from './netlink/socket';

/** A link by name or by ifindex. */
export type LinkRef = string | number;

export type OperState = (typeof IF_OPER_NAMES)[number];

export interface Link {
  index: number;
  name: string;
  /** Hardware address, "aa:bb:cc:dd:ee:ff"; absent for links without one (e.g. tun). */
  mac?: string;
  mtu: number;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** IFF_LOWER_UP: carrier. */
  lowerUp: boolean;
  operState: OperState;
  /** IFLA_INFO_KIND ("veth", "bridge", "macvlan", ...); absent for physical and loopback links. */
  kind?: string;
  /** Ifindex of the bridge or bond this link is enslaved to. */
  masterIndex?: number;
  /** IFLA_LINK: the veth peer's or the macvlan parent's ifindex, in the netns given by linkNetnsId if set. */
  linkIndex?: number;
  linkNetnsId?: number;
  altNames: string[];
  /** All ifi_flags (IFF_*). */
  flags: number;
}

const IFNAMSIZ = 16;

/** The kernel's dev_valid_name(): 1-15 bytes, not "." or "..", no '/', ':' or whitespace. */
export function checkIfName(name: string, what: string): string {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes >= IFNAMSIZ || name === '.' || name === '..' || /[/:\s\0]/.test(name)) {
    throw invalidArgument(what, `invalid interface name ${JSON.stringify(name)}`);
  }
  return name;
}

function checkIndex(index: number, what: string): number {
  if (!Number.isInteger(index) || index <= 0 || index > 0x7fffffff) {
    throw invalidArgument(what, `invalid ifindex ${index}`);
  }
  return index;
}

/** An ifinfomsg + attrs that names `ref`: by ifi_index, or by IFLA_IFNAME with index 0. */
export function target(ref: LinkRef, what: string): { index: number; attrs: AttrSpec[] } {
  if (typeof ref === 'number') return { index: checkIndex(ref, what), attrs: [] };
  return { index: 0, attrs: [attr.str(IFLA.IFNAME, checkIfName(ref, what))] };
}

export const describe = (ref: LinkRef): string => (typeof ref === 'number' ? `link #${ref}` : `link ${ref}`);

export function formatMac(data: Buffer): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(text: string, what: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) {
    throw invalidArgument(what, `invalid MAC ${JSON.stringify(text)}`);
  }
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}

export function decodeLink(msg: NlMessage): Link {
  const { fixed, attrs } = decodeBody(IFINFOMSG, msg.payload);
  const get = (type: number): Attr | undefined => findAttr(attrs, type);
  const name = get(IFLA.IFNAME);
  const address = get(IFLA.ADDRESS);
  const oper = get(IFLA.OPERSTATE);
  const master = get(IFLA.MASTER);
  const lower = get(IFLA.LINK);
  const netnsId = get(IFLA.LINK_NETNSID);
  const info = get(IFLA.LINKINFO);
  const kind = info ? findAttr(readNested(info), IFLA_INFO.KIND) : undefined;
  const props = get(IFLA.PROP_LIST);
  const mtu = get(IFLA.MTU);
  const link: Link = {
    index: fixed.ifi_index,
    name: name ? readStr(name) : '',
    mtu: mtu ? readU32(mtu) : 0,
    up: (fixed.ifi_flags & IFF.UP) !== 0,
    lowerUp: (fixed.ifi_flags & IFF.LOWER_UP) !== 0,
    operState: IF_OPER_NAMES[oper ? readU8(oper) : 0] ?? 'UNKNOWN',
    altNames: props ? findAttrs(readNested(props), IFLA.ALT_IFNAME).map(readStr) : [],
    flags: fixed.ifi_flags,
  };
  if (address && address.data.length > 0) link.mac = formatMac(address.data);
  if (kind) link.kind = readStr(kind);
  if (master) link.masterIndex = readU32(master);
  // The kernel omits IFLA_LINK when it would name the link itself, except for a peer in another netns.
  if (lower) link.linkIndex = readS32(lower);
  if (netnsId) link.linkNetnsId = readS32(netnsId);
  return link;
}

/** Skipping stats keeps each link to a few hundred bytes. */
const EXT_MASK = attr.u32(IFLA.EXT_MASK, RTEXT_FILTER.SKIP_STATS);

export function listLinks(sock: NetlinkSocket): Link[] {
  const body = encodeBody(IFINFOMSG, { ifi_family: AF.UNSPEC }, [EXT_MASK]);
  return sock
    .dump(RTM.GETLINK, body, 'list links')
    .filter((m) => m.header.nlmsg_type === RTM.NEWLINK)
    .map(decodeLink);
}

/** The link, or undefined when there is no such link (ENODEV). */
export function getLink(sock: NetlinkSocket, ref: LinkRef): Link | undefined {
  const what = `get ${describe(ref)}`;
  const t = target(ref, what);
  const body = encodeBody(IFINFOMSG, { ifi_index: t.index }, [...t.attrs, EXT_MASK]);
  try {
    const reply = sock.request(RTM.GETLINK, 0, body, what).find((m) => m.header.nlmsg_type === RTM.NEWLINK);
    return reply ? decodeLink(reply) : undefined;
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) return undefined;
    throw err;
  }
}

/** The ifindex of `ref`; throws ENODEV when there is no such link. */
export function resolveIndex(sock: NetlinkSocket, ref: LinkRef, what: string): number {
  if (typeof ref === 'number') return checkIndex(ref, what);
  const link = getLink(sock, ref);
  if (!link) throw new KernelError(what, ERRNO.ENODEV, { extack: `no link named ${ref}` });
  return link.index;
}

/** RTM_NEWLINK without NLM_F_CREATE changes an existing link (the kernel's rtnl_setlink path). */
export function changeLink(
  sock: NetlinkSocket,
  ref: LinkRef,
  what: string,
  fixed: { flags?: number; change?: number },
  attrs: AttrSpec[],
): void {
  const t = target(ref, what);
  const body = encodeBody(
    IFINFOMSG,
    { ifi_index: t.index, ifi_flags: fixed.flags ?? 0, ifi_change: fixed.change ?? 0 },
    [...t.attrs, ...attrs],
  );
  sock.request(RTM.NEWLINK, 0, body, what);
}

export function setLinkUp(sock: NetlinkSocket, ref: LinkRef, up: boolean): void {
  changeLink(sock, ref, `set ${describe(ref)} ${up ? 'up' : 'down'}`, { flags: up ? IFF.UP : 0, change: IFF.UP }, []);
}

export function setMtu(sock: NetlinkSocket, ref: LinkRef, mtu: number): void {
  const what = `set mtu ${mtu} on ${describe(ref)}`;
  if (!Number.isInteger(mtu) || mtu <= 0 || mtu > 0xffffffff) throw invalidArgument(what, 'invalid MTU');
  changeLink(sock, ref, what, {}, [attr.u32(IFLA.MTU, mtu)]);
}

export function setMac(sock: NetlinkSocket, ref: LinkRef, mac: string): void {
  const what = `set mac ${mac} on ${describe(ref)}`;
  changeLink(sock, ref, what, {}, [attr.bytes(IFLA.ADDRESS, parseMac(mac, what))]);
}

/** Renames a link. Kernels before 6.2 refuse (EBUSY) while the link is up. */
export function renameLink(sock: NetlinkSocket, ref: LinkRef, newName: string): void {
  const what = `rename ${describe(ref)} to ${newName}`;
  checkIfName(newName, what);
  const index = resolveIndex(sock, ref, what);
  changeLink(sock, index, what, {}, [attr.str(IFLA.IFNAME, newName)]);
}

/**
 * Alternative names (RTM_NEWLINKPROP / RTM_DELLINKPROP with IFLA_PROP_LIST{IFLA_ALT_IFNAME}). Some set-ups
 * (udev's naming policy, or a kernel keeping the old name on rename) leave an altname behind that would stop
 * the old name from being reused: removeAltName clears it.
 */
function altNameRequest(sock: NetlinkSocket, type: number, ref: LinkRef, altName: string, what: string): void {
  checkIfName(altName, what);
  // Altnames may be up to ALTIFNAMSIZ (128) bytes, but a name usable as an interface name is what Plexus
  // ever gives or removes; the stricter check keeps odd bytes out of the request.
  const t = target(ref, what);
  const body = encodeBody(IFINFOMSG, { ifi_index: t.index }, [
    ...t.attrs,
    attr.nest(IFLA.PROP_LIST, [attr.str(IFLA.ALT_IFNAME, altName)], true),
  ]);
  sock.request(type, 0, body, what);
}

/** Adds an alternative name; EEXIST when any link in the netns already has that name or altname. */
export function addAltName(sock: NetlinkSocket, ref: LinkRef, altName: string): void {
  altNameRequest(sock, RTM.NEWLINKPROP, ref, altName, `add altname ${altName} to ${describe(ref)}`);
}

/** Removes an alternative name. False when the link has no such altname (ENOENT) or is gone (ENODEV). */
export function removeAltName(sock: NetlinkSocket, ref: LinkRef, altName: string): boolean {
  const what = `remove altname ${altName} from ${describe(ref)}`;
  try {
    altNameRequest(sock, RTM.DELLINKPROP, ref, altName, what);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENOENT', 'ENODEV')) return false;
    throw err;
  }
}

/** Deletes a link (a veth takes its peer with it). False when it was already gone (ENODEV). */
export function deleteLink(sock: NetlinkSocket, ref: LinkRef): boolean {
  const what = `delete ${describe(ref)}`;
  const t = target(ref, what);
  try {
    sock.request(RTM.DELLINK, 0, encodeBody(IFINFOMSG, { ifi_index: t.index }, t.attrs), what);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) return false;
    throw err;
  }
}

export interface VethOptions {
  /** Create the peer directly in this netns (a path such as /run/netns/x or /proc/<pid>/ns/net)... */
  peerNetnsPath?: string;
  /** ...or in the netns of this already open fd (the caller keeps ownership). Default: same netns. */
  peerNetnsFd?: number;
  /** MTU of both ends. */
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

/**
 * Creates a veth pair: `name` in this socket's netns and `peerName` directly in its target netns (STYLE 14:
 * never created here and moved). EEXIST when either name is taken in its netns.
 */
export function createVeth(sock: NetlinkSocket, name: string, peerName: string, opts: VethOptions = {}): void {
  const what = `create veth ${name} (peer ${peerName})`;
  checkIfName(name, what);
  checkIfName(peerName, what);
  if (opts.peerNetnsPath !== undefined && opts.peerNetnsFd !== undefined) {
    throw invalidArgument(what, 'give peerNetnsPath or peerNetnsFd, not both');
  }
  const common: AttrSpec[] = [];
  if (opts.mtu !== undefined) common.push(attr.u32(IFLA.MTU, opts.mtu));
  let peerNs: NetnsHandle | undefined;
  try {
    if (opts.peerNetnsPath !== undefined) peerNs = openNetns(opts.peerNetnsPath);
    const peerFd = peerNs?.fd ?? opts.peerNetnsFd;
    const peerAttrs: AttrSpec[] = [attr.str(IFLA.IFNAME, peerName), ...common];
    if (opts.peerMac !== undefined) peerAttrs.push(attr.bytes(IFLA.ADDRESS, parseMac(opts.peerMac, what)));
    if (peerFd !== undefined) peerAttrs.push(attr.u32(IFLA.NET_NS_FD, peerFd));
    // VETH_INFO_PEER carries a whole struct ifinfomsg followed by the peer's own attributes.
    const peer = Buffer.concat([IFINFOMSG.encode({}), encodeAttrs(peerAttrs)]);
    const attrs: AttrSpec[] = [
      attr.str(IFLA.IFNAME, name),
      ...common,
      attr.nest(IFLA.LINKINFO, [
        attr.str(IFLA_INFO.KIND, 'veth'),
        attr.nest(IFLA_INFO.DATA, [attr.bytes(VETH_INFO.PEER, peer)]),
      ]),
    ];
    if (opts.mac !== undefined) attrs.push(attr.bytes(IFLA.ADDRESS, parseMac(opts.mac, what)));
    sock.request(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, encodeBody(IFINFOMSG, {}, attrs), what);
  } finally {
    peerNs?.close();
  }
}

/**
 * Moves a link into the netns at `netnsPath`, optionally renaming it on the way (so it cannot collide with a
 * name already there). Its ifindex may change: look it up again by name in the target netns (STYLE 14).
 */
export function moveLinkToNetns(
  sock: NetlinkSocket,
  ref: LinkRef,
  netnsPath: string,
  opts: { newName?: string } = {},
): void {
  const what = `move ${describe(ref)} to netns ${netnsPath}`;
  if (opts.newName !== undefined) checkIfName(opts.newName, what);
  // Renaming needs the ifindex, since IFLA_IFNAME then carries the new name.
  const ref2: LinkRef = opts.newName !== undefined ? resolveIndex(sock, ref, what) : ref;
  const ns = openNetns(netnsPath);
  try {
    const attrs = [attr.u32(IFLA.NET_NS_FD, ns.fd)];
    if (opts.newName !== undefined) attrs.push(attr.str(IFLA.IFNAME, opts.newName));
    changeLink(sock, ref2, what, {}, attrs);
  } finally {
    ns.close();
  }
}
