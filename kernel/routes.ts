/**
 * Routes over rtnetlink (RTM_*ROUTE), IPv4 and IPv6, in any table. Defaults follow `ip route` so that a route
 * added here reads back in `ip route` exactly as the same `ip route add` would have made it.
 */
import { hasErrno, invalidArgument } from './errno';
import { familyOf, formatCidr, formatIp, type IpFamily, parseCidr, parseIp } from './ip-address';
import { type LinkRef, listLinks, resolveIndex } from './links';
import { AF, NLM_F, RT_SCOPE, RT_TABLE, RTA, RTM, RTM_F, RTN, RTNH_F, RTPROT } from './netlink/constants';
import {
  align4,
  attr,
  type AttrSpec,
  decodeAttrs,
  decodeBody,
  encodeBody,
  findAttr,
  type NlMessage,
  readU32,
  RTMSG,
  RTNEXTHOP,
} from './netlink/codec';
import type { NetlinkSocket } from './netlink/socket';

export interface NextHop {
  gateway?: string;
  oifIndex: number;
  /** RTNH_F_* */
  flags: number;
  /** Weight - 1, as struct rtnexthop keeps it. */
  hops: number;
}

export interface Route {
  family: IpFamily;
  /** "default" or a CIDR such as "10.1.0.0/16" / "2001:db8::/64". */
  dst: string;
  gateway?: string;
  oifIndex?: number;
  /** The name of oifIndex (listRoutes resolves it). */
  oifName?: string;
  prefSrc?: string;
  table: number;
  /** RTA_PRIORITY; 0 when absent. */
  metric: number;
  /** RT_SCOPE_* */
  scope: number;
  /** RTPROT_* */
  protocol: number;
  /** RTN_* */
  type: number;
  /** rtm_flags (RTNH_F_*, RTM_F_*). */
  flags: number;
  onlink: boolean;
  /** The next hops of a multipath (ECMP) route; gateway/oifIndex are then absent. */
  nexthops?: NextHop[];
}

export interface RouteSpec {
  /** "default" (needs `family` or a gateway to say which), "0.0.0.0/0", "::/0" or any CIDR. */
  dst: string;
  family?: IpFamily;
  gateway?: string;
  /** The outgoing link, by name or ifindex (give one of ifName and oifIndex). */
  ifName?: string;
  oifIndex?: number;
  metric?: number;
  /** Default RT_TABLE_MAIN (254). */
  table?: number;
  /** Default as `ip`: link for an IPv4 route without gateway, else universe (and "any" when deleting). */
  scope?: number;
  onlink?: boolean;
  /** Default RTPROT_BOOT when adding, as `ip`; "any" when deleting. */
  protocol?: number;
  /** Default RTN_UNICAST when adding; "any" when deleting. */
  type?: number;
  prefSrc?: string;
}

export interface RouteQuery {
  family?: IpFamily;
  /** A table number, or 'all'. Default RT_TABLE_MAIN, like `ip route show`. */
  table?: number | 'all';
}

/** RTA_MULTIPATH: a run of struct rtnexthop, each followed by its own attributes. */
function decodeNextHops(data: Buffer): NextHop[] {
  const out: NextHop[] = [];
  for (let off = 0; data.length - off >= RTNEXTHOP.size; ) {
    const nh = RTNEXTHOP.decode(data, off);
    if (nh.rtnh_len < RTNEXTHOP.size || off + nh.rtnh_len > data.length) break;
    const hop: NextHop = { flags: nh.rtnh_flags, hops: nh.rtnh_hops, oifIndex: nh.rtnh_ifindex };
    const gw = findAttr(decodeAttrs(data, off + RTNEXTHOP.size, off + nh.rtnh_len), RTA.GATEWAY);
    if (gw) hop.gateway = formatIp(gw.data);
    out.push(hop);
    off += align4(nh.rtnh_len);
  }
  return out;
}

export function decodeRoute(msg: NlMessage): Route {
  const { fixed, attrs } = decodeBody(RTMSG, msg.payload);
  const family: IpFamily = fixed.rtm_family === AF.INET ? 4 : 6;
  const dst = findAttr(attrs, RTA.DST);
  const gateway = findAttr(attrs, RTA.GATEWAY);
  const oif = findAttr(attrs, RTA.OIF);
  const prefSrc = findAttr(attrs, RTA.PREFSRC);
  const table = findAttr(attrs, RTA.TABLE);
  const priority = findAttr(attrs, RTA.PRIORITY);
  const multipath = findAttr(attrs, RTA.MULTIPATH);
  const route: Route = {
    family,
    dst: fixed.rtm_dst_len === 0 || !dst ? 'default' : formatCidr(dst.data, fixed.rtm_dst_len),
    table: table ? readU32(table) : fixed.rtm_table,
    metric: priority ? readU32(priority) : 0,
    scope: fixed.rtm_scope,
    protocol: fixed.rtm_protocol,
    type: fixed.rtm_type,
    flags: fixed.rtm_flags,
    onlink: (fixed.rtm_flags & RTNH_F.ONLINK) !== 0,
  };
  if (gateway) route.gateway = formatIp(gateway.data);
  if (oif) route.oifIndex = readU32(oif);
  if (prefSrc) route.prefSrc = formatIp(prefSrc.data);
  if (multipath) route.nexthops = decodeNextHops(multipath.data);
  return route;
}

export function listRoutes(sock: NetlinkSocket, query: RouteQuery = {}): Route[] {
  const family = query.family === 4 ? AF.INET : query.family === 6 ? AF.INET6 : AF.UNSPEC;
  const table = query.table ?? RT_TABLE.MAIN;
  const routes = sock
    .dump(RTM.GETROUTE, encodeBody(RTMSG, { rtm_family: family }), 'list routes')
    .filter((m) => m.header.nlmsg_type === RTM.NEWROUTE)
    .map(decodeRoute)
    // Cached clones (PMTU exceptions) are not routes anyone added.
    .filter((r) => (r.flags & RTM_F.CLONED) === 0 && (table === 'all' || r.table === table));
  if (routes.some((r) => r.oifIndex !== undefined)) {
    const names = new Map(listLinks(sock).map((l) => [l.index, l.name]));
    for (const r of routes) {
      const name = r.oifIndex === undefined ? undefined : names.get(r.oifIndex);
      if (name !== undefined) r.oifName = name;
    }
  }
  return routes;
}

type RouteCommand = 'add' | 'replace' | 'delete';

function describeRoute(cmd: RouteCommand, spec: RouteSpec): string {
  const via = spec.gateway ? ` via ${spec.gateway}` : '';
  const dev = spec.ifName ?? (spec.oifIndex !== undefined ? `#${spec.oifIndex}` : undefined);
  return `${cmd} route ${spec.dst}${via}${dev ? ` dev ${dev}` : ''}`;
}

function byte(what: string, name: string, v: number | undefined): number | undefined {
  if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 255)) {
    throw invalidArgument(what, `invalid ${name} ${v}`);
  }
  return v;
}

function routeMessage(sock: NetlinkSocket, cmd: RouteCommand, spec: RouteSpec, what: string): Buffer {
  const isDefault = spec.dst === 'default';
  const dst = isDefault ? undefined : parseCidr(spec.dst);
  const gateway = spec.gateway === undefined ? undefined : parseIp(spec.gateway);
  const family = dst?.family ?? (gateway ? familyOf(gateway) : spec.family);
  if (family === undefined) throw invalidArgument(what, 'a default route needs a family or a gateway');
  if ((gateway && familyOf(gateway) !== family) || (spec.family !== undefined && spec.family !== family)) {
    throw invalidArgument(what, 'destination, gateway and family disagree');
  }
  if (spec.ifName !== undefined && spec.oifIndex !== undefined) {
    throw invalidArgument(what, 'give ifName or oifIndex, not both');
  }
  const table = spec.table ?? RT_TABLE.MAIN;
  if (!Number.isInteger(table) || table <= 0 || table > 0xffffffff) {
    throw invalidArgument(what, `invalid table ${table}`);
  }
  const adding = cmd !== 'delete';
  const type = byte(what, 'type', spec.type) ?? (adding ? RTN.UNICAST : RTN.UNSPEC);
  const protocol = byte(what, 'protocol', spec.protocol) ?? (adding ? RTPROT.BOOT : RTPROT.UNSPEC);
  // iproute2's defaults: an IPv4 unicast route with no gateway is on-link (scope link); deleting matches any
  // scope (RT_SCOPE_NOWHERE is the kernel's wildcard); IPv6 ignores scope.
  const scope =
    byte(what, 'scope', spec.scope) ??
    (!adding && family === 4
      ? RT_SCOPE.NOWHERE
      : family === 4 && !gateway && (type === RTN.UNICAST || type === RTN.UNSPEC)
        ? RT_SCOPE.LINK
        : RT_SCOPE.UNIVERSE);
  const ref: LinkRef | undefined = spec.ifName ?? spec.oifIndex;
  const attrs: AttrSpec[] = [attr.u32(RTA.TABLE, table)];
  if (dst && dst.prefixLength > 0) attrs.push(attr.bytes(RTA.DST, dst.bytes));
  if (gateway) attrs.push(attr.bytes(RTA.GATEWAY, gateway));
  if (ref !== undefined) attrs.push(attr.u32(RTA.OIF, resolveIndex(sock, ref, what)));
  if (spec.metric !== undefined) attrs.push(attr.u32(RTA.PRIORITY, spec.metric));
  if (spec.prefSrc !== undefined) {
    const src = parseIp(spec.prefSrc);
    if (familyOf(src) !== family) throw invalidArgument(what, 'prefSrc family differs from the route');
    attrs.push(attr.bytes(RTA.PREFSRC, src));
  }
  return encodeBody(
    RTMSG,
    {
      rtm_family: family === 4 ? AF.INET : AF.INET6,
      rtm_dst_len: dst?.prefixLength ?? 0,
      // Tables above 255 only fit RTA_TABLE; rtm_table then says "look at the attribute".
      rtm_table: table < 256 ? table : RT_TABLE.UNSPEC,
      rtm_protocol: protocol,
      rtm_scope: scope,
      rtm_type: type,
      rtm_flags: spec.onlink ? RTNH_F.ONLINK : 0,
    },
    attrs,
  );
}

/** Adds a route; EEXIST when an identical one (same dst, table, metric) exists. */
export function addRoute(sock: NetlinkSocket, spec: RouteSpec): void {
  const what = describeRoute('add', spec);
  sock.request(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.EXCL, routeMessage(sock, 'add', spec, what), what);
}

/** Adds the route or replaces the one with the same dst, table and metric (NLM_F_CREATE|NLM_F_REPLACE). */
export function replaceRoute(sock: NetlinkSocket, spec: RouteSpec): void {
  const what = describeRoute('replace', spec);
  sock.request(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.REPLACE, routeMessage(sock, 'replace', spec, what), what);
}

/**
 * Deletes the first route matching `spec` (fields left out match anything). False when none matches (ESRCH;
 * IPv6 says ENOENT for some misses, e.g. a default route) or the link named by ifName is gone (ENODEV, which
 * took its routes with it).
 */
export function deleteRoute(sock: NetlinkSocket, spec: RouteSpec): boolean {
  const what = describeRoute('delete', spec);
  try {
    sock.request(RTM.DELROUTE, 0, routeMessage(sock, 'delete', spec, what), what);
    return true;
  } catch (err) {
    if (hasErrno(err, 'ESRCH', 'ENOENT', 'ENODEV')) return false;
    throw err;
  }
}
