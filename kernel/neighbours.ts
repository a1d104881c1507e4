/**
 * Neighbour (ARP / NDP) entries over rtnetlink (RTM_*NEIGH), IPv4 and IPv6. Plexus only ever writes permanent
 * entries (a pod's link-local gateway made reachable without ARP); dynamic entries are the kernel's business,
 * and listNeighbours shows them all.
 */
import { hasErrno, invalidArgument } from './errno';
import { familyOf, formatIp, type IpFamily, parseIp } from './ip-address';
import { formatMac, type LinkRef, listLinks, parseMac, resolveIndex } from './links';
import { AF, NDA, NLM_F, NTF, NUD, RTM } from './netlink/constants';
import { attr, decodeBody, encodeBody, findAttr, NDMSG, type NlMessage } from './netlink/codec';
import type { NetlinkSocket } from './netlink/socket';

/** Which link a neighbour entry belongs to: by name or by ifindex (one of the two). */
export type NeighbourLink = { ifName: string; ifindex?: never } | { ifindex: number; ifName?: never };

export type NeighbourSpec = NeighbourLink & {
  /** The neighbour's IP address, IPv4 or IPv6. */
  address: string;
  /** Its link-layer address, "aa:bb:cc:dd:ee:ff". */
  mac: string;
  /** Only permanent entries (NUD_PERMANENT: never aged out, never probed) are written. */
  permanent: true;
  /** NTF_ROUTER (IPv6: the neighbour is a router). */
  router?: boolean;
};

export type NeighbourKey = NeighbourLink & { address: string };

export interface Neighbour {
  ifindex: number;
  /** The name of ifindex (listNeighbours resolves it). */
  ifName?: string;
  family: IpFamily;
  address: string;
  /** Absent for entries without one (INCOMPLETE, FAILED, NOARP on some links). */
  mac?: string;
  /** NUD_* bits (ndm_state). */
  state: number;
  permanent: boolean;
  /** NTF_* bits (ndm_flags). */
  flags: number;
}

export interface NeighbourQuery {
  family?: IpFamily;
  ifName?: string;
  ifindex?: number;
}

export function decodeNeighbour(msg: NlMessage): Neighbour | undefined {
  const { fixed, attrs } = decodeBody(NDMSG, msg.payload);
  const dst = findAttr(attrs, NDA.DST);
  // Bridge FDB entries (AF_BRIDGE) and multicast/proxy bookkeeping without an address are not neighbours.
  if ((fixed.ndm_family !== AF.INET && fixed.ndm_family !== AF.INET6) || !dst) return undefined;
  const lladdr = findAttr(attrs, NDA.LLADDR);
  const out: Neighbour = {
    ifindex: fixed.ndm_ifindex,
    family: fixed.ndm_family === AF.INET ? 4 : 6,
    address: formatIp(dst.data),
    state: fixed.ndm_state,
    permanent: (fixed.ndm_state & NUD.PERMANENT) !== 0,
    flags: fixed.ndm_flags,
  };
  if (lladdr && lladdr.data.length > 0) out.mac = formatMac(lladdr.data);
  return out;
}

/** Every IPv4 and IPv6 neighbour entry in the netns, optionally only one family or link's. */
export function listNeighbours(sock: NetlinkSocket, query: NeighbourQuery = {}): Neighbour[] {
  const family = query.family === 4 ? AF.INET : query.family === 6 ? AF.INET6 : AF.UNSPEC;
  const ifindex = query.ifName !== undefined || query.ifindex !== undefined
    ? resolveIndex(sock, (query.ifName ?? query.ifindex) as LinkRef, 'list neighbours')
    : undefined;
  const found = sock
    .dump(RTM.GETNEIGH, encodeBody(NDMSG, { ndm_family: family }), 'list neighbours')
    .filter((m) => m.header.nlmsg_type === RTM.NEWNEIGH)
    .map(decodeNeighbour)
    .filter((n): n is Neighbour => n !== undefined && (ifindex === undefined || n.ifindex === ifindex));
  if (found.length > 0) {
    const names = new Map(listLinks(sock).map((l) => [l.index, l.name]));
    for (const n of found) {
      const name = names.get(n.ifindex);
      if (name !== undefined) n.ifName = name;
    }
  }
  return found;
}

function linkOf(spec: NeighbourLink, what: string): LinkRef {
  if ((spec.ifName === undefined) === (spec.ifindex === undefined)) {
    throw invalidArgument(what, 'give ifName or ifindex, exactly one');
  }
  return (spec.ifName ?? spec.ifindex) as LinkRef;
}

function neighbourMessage(sock: NetlinkSocket, spec: NeighbourKey & { mac?: string; router?: boolean }, state: number, what: string): Buffer {
  const ref = linkOf(spec, what);
  const dst = parseIp(spec.address);
  const attrs = [attr.bytes(NDA.DST, dst)];
  if (spec.mac !== undefined) attrs.push(attr.bytes(NDA.LLADDR, parseMac(spec.mac, what)));
  return encodeBody(
    NDMSG,
    {
      ndm_family: familyOf(dst) === 4 ? AF.INET : AF.INET6,
      ndm_ifindex: resolveIndex(sock, ref, what),
      ndm_state: state,
      ndm_flags: spec.router ? NTF.ROUTER : 0,
    },
    attrs,
  );
}

function describeNeighbour(cmd: string, spec: NeighbourKey): string {
  return `${cmd} neighbour ${spec.address} dev ${spec.ifName ?? `#${spec.ifindex}`}`;
}

function checkPermanent(spec: NeighbourSpec, what: string): void {
  if (spec.permanent !== true) throw invalidArgument(what, 'only permanent neighbour entries are supported');
}

/** Adds a permanent entry; EEXIST when the link already has an entry for the address (of any state). */
export function addNeighbour(sock: NetlinkSocket, spec: NeighbourSpec): void {
  const what = describeNeighbour('add', spec);
  checkPermanent(spec, what);
  sock.request(RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.EXCL, neighbourMessage(sock, spec, NUD.PERMANENT, what), what);
}

/** Adds the entry or overwrites the one for the same address and link (NLM_F_CREATE|NLM_F_REPLACE). */
export function replaceNeighbour(sock: NetlinkSocket, spec: NeighbourSpec): void {
  const what = describeNeighbour('replace', spec);
  checkPermanent(spec, what);
  sock.request(RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.REPLACE, neighbourMessage(sock, spec, NUD.PERMANENT, what), what);
}

/** Deletes the entry for the address on the link. False when there is none (ENOENT) or the link is gone. */
export function deleteNeighbour(sock: NetlinkSocket, key: NeighbourKey): boolean {
  const what = describeNeighbour('delete', key);
  try {
    sock.request(RTM.DELNEIGH, 0, neighbourMessage(sock, { ...key }, 0, what), what);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENOENT', 'ENODEV')) return false;
    throw err;
  }
}

/**
 * A forwarding-database entry of a VXLAN device (AF_BRIDGE neighbour with NTF_SELF): frames for `mac` are
 * tunnelled to the underlay address `dst`. What `bridge fdb replace MAC dev vxlan0 dst IP self permanent`
 * writes. Routed set-ups write one per remote node's VTEP MAC.
 */
export interface FdbEntry {
  ifindex: number;
  mac: string;
  /** The remote VTEP's underlay address (NDA_DST). */
  dst?: string;
  permanent: boolean;
}

function fdbMessage(sock: NetlinkSocket, link: NeighbourLink, mac: string, dst: string | undefined, state: number, what: string): Buffer {
  const attrs = [attr.bytes(NDA.LLADDR, parseMac(mac, what))];
  if (dst !== undefined) attrs.push(attr.bytes(NDA.DST, parseIp(dst)));
  return encodeBody(
    NDMSG,
    { ndm_family: AF.BRIDGE, ndm_ifindex: resolveIndex(sock, linkOf(link, what), what), ndm_state: state, ndm_flags: NTF.SELF },
    attrs,
  );
}

/** Adds or overwrites the permanent entry for `mac` on the link (NLM_F_CREATE|NLM_F_REPLACE). */
export function replaceFdb(sock: NetlinkSocket, spec: NeighbourLink & { mac: string; dst: string }): void {
  const what = `replace fdb ${spec.mac} dst ${spec.dst} dev ${spec.ifName ?? `#${spec.ifindex}`}`;
  sock.request(RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.REPLACE, fdbMessage(sock, spec, spec.mac, spec.dst, NUD.PERMANENT, what), what);
}

/** Deletes the entry for `mac` (and `dst`, when given). False when there was none or the link is gone. */
export function deleteFdb(sock: NetlinkSocket, spec: NeighbourLink & { mac: string; dst?: string }): boolean {
  const what = `delete fdb ${spec.mac} dev ${spec.ifName ?? `#${spec.ifindex}`}`;
  try {
    sock.request(RTM.DELNEIGH, 0, fdbMessage(sock, spec, spec.mac, spec.dst, 0, what), what);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENOENT', 'ENODEV')) return false;
    throw err;
  }
}

/** The link's FDB entries that carry a MAC (of one link only: a bridge's ports report theirs too). */
export function listFdb(sock: NetlinkSocket, link: NeighbourLink): FdbEntry[] {
  const what = 'list fdb';
  const ifindex = resolveIndex(sock, linkOf(link, what), what);
  const out: FdbEntry[] = [];
  for (const m of sock.dump(RTM.GETNEIGH, encodeBody(NDMSG, { ndm_family: AF.BRIDGE }), what)) {
    if (m.header.nlmsg_type !== RTM.NEWNEIGH) continue;
    const { fixed, attrs } = decodeBody(NDMSG, m.payload);
    const ll = findAttr(attrs, NDA.LLADDR);
    if (fixed.ndm_ifindex !== ifindex || !ll || ll.data.length !== 6) continue;
    const dst = findAttr(attrs, NDA.DST);
    const e: FdbEntry = { ifindex, mac: formatMac(ll.data), permanent: (fixed.ndm_state & NUD.PERMANENT) !== 0 };
    if (dst) e.dst = formatIp(dst.data);
    out.push(e);
  }
  return out;
}
