/**
 * IP addresses on links over rtnetlink (RTM_*ADDR), IPv4 and IPv6.
 */
import { hasErrno, invalidArgument } from './errno';
import { formatIp, type IpFamily, type IpPrefix, parseCidr } from './ip-address';
import { type LinkRef, resolveIndex } from './links';
import { AF, IFA, IFA_F, NLM_F, RT_SCOPE, RTM } from './netlink/constants';
import {
  attr,
  type AttrSpec,
  decodeBody,
  encodeBody,
  findAttr,
  IFADDRMSG,
  type NlMessage,
  readStr,
  readU32,
} from './netlink/codec';
import type { NetlinkSocket } from './netlink/socket';

export interface Address {
  ifindex: number;
  family: IpFamily;
  /** The interface's own address (IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6). */
  address: string;
  prefixLength: number;
  /** RT_SCOPE_* (0 universe/global, 253 link, 254 host). */
  scope: number;
  /** All IFA_F_* flags (IFA_FLAGS when present, which holds the bits that do not fit ifa_flags). */
  flags: number;
  /** IFA_LABEL (IPv4 only), e.g. "eth0" or "eth0:1". */
  label?: string;
}

export interface AddAddressOptions {
  /** IFA_F_NODAD: an IPv6 address is usable at once instead of "tentative" until duplicate detection ends. */
  noDad?: boolean;
  /** IFA_F_NOPREFIXROUTE: do not add the connected route for the prefix. */
  noPrefixRoute?: boolean;
  /** RT_SCOPE_*; default universe (global). */
  scope?: number;
}

const familyCode = (f: IpFamily): number => (f === 4 ? AF.INET : AF.INET6);

export function decodeAddress(msg: NlMessage): Address {
  const { fixed, attrs } = decodeBody(IFADDRMSG, msg.payload);
  const family: IpFamily = fixed.ifa_family === AF.INET ? 4 : 6;
  // For IPv4 IFA_LOCAL is the interface's address and IFA_ADDRESS the peer's on point-to-point links; IPv6
  // puts the interface's address in IFA_ADDRESS and uses IFA_LOCAL only for the point-to-point case.
  const own = (family === 4 ? findAttr(attrs, IFA.LOCAL) : undefined) ?? findAttr(attrs, IFA.ADDRESS);
  const flags = findAttr(attrs, IFA.FLAGS);
  const label = findAttr(attrs, IFA.LABEL);
  const out: Address = {
    ifindex: fixed.ifa_index,
    family,
    address: own ? formatIp(own.data) : '',
    prefixLength: fixed.ifa_prefixlen,
    scope: fixed.ifa_scope,
    flags: flags ? readU32(flags) : fixed.ifa_flags,
  };
  if (label) out.label = readStr(label);
  return out;
}

/** Every IPv4 and IPv6 address in the netns, or only those of `ifindex`. */
export function listAddresses(sock: NetlinkSocket, ifindex?: number): Address[] {
  const body = encodeBody(IFADDRMSG, { ifa_family: AF.UNSPEC });
  return sock
    .dump(RTM.GETADDR, body, 'list addresses')
    .filter((m) => m.header.nlmsg_type === RTM.NEWADDR)
    .map(decodeAddress)
    .filter((a) => (a.family === 4 || a.family === 6) && (ifindex === undefined || a.ifindex === ifindex));
}

function addressMessage(index: number, prefix: IpPrefix, flags: number, scope: number): Buffer {
  const attrs: AttrSpec[] = [attr.bytes(IFA.ADDRESS, prefix.bytes)];
  if (prefix.family === 4) attrs.unshift(attr.bytes(IFA.LOCAL, prefix.bytes));
  // ifa_flags has 8 bits; IFA_FLAGS carries all 32 (NOPREFIXROUTE is 0x200).
  if (flags > 0xff) attrs.push(attr.u32(IFA.FLAGS, flags));
  return encodeBody(
    IFADDRMSG,
    {
      ifa_family: familyCode(prefix.family),
      ifa_prefixlen: prefix.prefixLength,
      ifa_flags: flags & 0xff,
      ifa_scope: scope,
      ifa_index: index,
    },
    attrs,
  );
}

/** Adds "10.0.0.2/24" or "2001:db8::2/64" to a link. EEXIST when the link already has it. */
export function addAddress(sock: NetlinkSocket, ref: LinkRef, cidr: string, opts: AddAddressOptions = {}): void {
  const what = `add address ${cidr} to ${typeof ref === 'number' ? `link #${ref}` : ref}`;
  const prefix = parseCidr(cidr);
  const scope = opts.scope ?? RT_SCOPE.UNIVERSE;
  if (!Number.isInteger(scope) || scope < 0 || scope > 255) throw invalidArgument(what, `invalid scope ${scope}`);
  const flags = (opts.noDad ? IFA_F.NODAD : 0) | (opts.noPrefixRoute ? IFA_F.NOPREFIXROUTE : 0);
  const index = resolveIndex(sock, ref, what);
  sock.request(RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, addressMessage(index, prefix, flags, scope), what);
}

/**
 * Removes an address (the prefix length must match). False when the link does not have it (EADDRNOTAVAIL)
 * or the link itself is gone (ENODEV): either way the address is not there.
 */
export function deleteAddress(sock: NetlinkSocket, ref: LinkRef, cidr: string): boolean {
  const what = `delete address ${cidr} from ${typeof ref === 'number' ? `link #${ref}` : ref}`;
  const prefix = parseCidr(cidr);
  try {
    const index = resolveIndex(sock, ref, what);
    sock.request(RTM.DELADDR, 0, addressMessage(index, prefix, 0, 0), what);
    return true;
  } catch (err) {
    if (hasErrno(err, 'EADDRNOTAVAIL', 'ENODEV')) return false;
    throw err;
  }
}
