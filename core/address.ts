/**
 * IPv4 and IPv6 arithmetic on bigint. Addresses and prefixes are parsed once here into `Ip` and `Cidr`
 * (STYLE 5); everything above works on numbers, never on strings. Parsing is strict on purpose: an address
 * that two tools could read differently (IPv4 octets with leading zeros, IPv6 zone ids) is rejected.
 */
import { PlexusError } from './errors';
import { formatIpv6Groups } from './ip-text';

export type Family = 'v4' | 'v6';

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

/** A network prefix with its host bits clear. `base` is the network address. */
export interface Cidr {
  readonly family: Family;
  readonly base: bigint;
  readonly prefix: number;
}

export const familyBits = (f: Family): number => (f === 'v4' ? 32 : 128);
const MAX: Record<Family, bigint> = { v4: (1n << 32n) - 1n, v6: (1n << 128n) - 1n };

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!V4_OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6Groups(s: string, allowV4: boolean): number[] | undefined {
  if (s === '') return [];
  const out: number[] = [];
  const parts = s.split(':');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    // An embedded IPv4 address may only be the last part (RFC 4291 2.2.3).
    if (allowV4 && i === parts.length - 1 && p.includes('.')) {
      const v4 = parseV4(p);
      if (v4 === undefined) return undefined;
      out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      continue;
    }
    if (!V6_GROUP.test(p)) return undefined;
    out.push(parseInt(p, 16));
  }
  return out;
}

function parseV6(s: string): bigint | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = parseV6Groups(halves[0] as string, halves.length === 1);
  const tail = halves.length === 2 ? parseV6Groups(halves[1] as string, true) : [];
  if (!head || !tail) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    // '::' stands for at least one zero group.
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    groups = head;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

export function tryParseIp(s: string): Ip | undefined {
  if (s.includes(':')) {
    const v = parseV6(s);
    return v === undefined ? undefined : { family: 'v6', value: v };
  }
  const v = parseV4(s);
  return v === undefined ? undefined : { family: 'v4', value: v };
}

export function parseIp(s: string, what = 'address'): Ip {
  const ip = typeof s === 'string' ? tryParseIp(s) : undefined;
  if (!ip) throw new PlexusError('InvalidConfig', `${what} ${JSON.stringify(s)} is not a valid IPv4 or IPv6 address`);
  return ip;
}

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

/** RFC 5952: lower case, no leading zeros, the longest run (>= 2) of zero groups as '::', leftmost on a tie. */
function formatV6(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  return formatIpv6Groups(groups);
}

export function formatIp(ip: Ip): string {
  return ip.family === 'v4' ? formatV4(ip.value) : formatV6(ip.value);
}


export function compareIp(a: Ip, b: Ip): number {
  if (a.family !== b.family) return a.family === 'v4' ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** The address `n` steps after `ip` (n may be negative). Throws when it leaves the address family. */
export function offsetIp(ip: Ip, n: bigint | number): Ip {
  const v = ip.value + BigInt(n);
  if (v < 0n || v > MAX[ip.family]) {
    throw new PlexusError('InvalidConfig', `${formatIp(ip)} + ${n} is outside the ${ip.family} address space`);
  }
  return { family: ip.family, value: v };
}

export const cidrSize = (c: Cidr): bigint => 1n << BigInt(familyBits(c.family) - c.prefix);
export const cidrLast = (c: Cidr): bigint => c.base + cidrSize(c) - 1n;
export const formatCidr = (c: Cidr): string => `${formatIp({ family: c.family, value: c.base })}/${c.prefix}`;

function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(familyBits(family) - prefix)) - 1n;
}

/** Address and prefix length of "ip/len" without judging the host bits (an interface address). */
export function parseIpPrefix(s: string, what = 'prefix'): { ip: Ip; prefix: number } {
  const slash = typeof s === 'string' ? s.indexOf('/') : -1;
  const ip = slash > 0 ? tryParseIp(s.slice(0, slash)) : undefined;
  const lenText = slash > 0 ? s.slice(slash + 1) : '';
  const len = /^(0|[1-9][0-9]{0,2})$/.test(lenText) ? Number(lenText) : NaN;
  if (!ip || !(len <= familyBits(ip.family))) {
    throw new PlexusError('InvalidConfig', `${what} ${JSON.stringify(s)} is not a valid CIDR (address/length)`);
  }
  return { ip, prefix: len };
}

/** A network prefix. Host bits must be clear: "10.0.0.5/24" is a mistake we name rather than guess at. */
export function parseCidr(s: string, what = 'CIDR'): Cidr {
  const { ip, prefix } = parseIpPrefix(s, what);
  const mask = hostMask(ip.family, prefix);
  if ((ip.value & mask) !== 0n) {
    const base = formatCidr({ family: ip.family, base: ip.value & ~mask, prefix });
    throw new PlexusError('InvalidConfig', `${what} ${JSON.stringify(s)} has host bits set (did you mean ${base}?)`);
  }
  return { family: ip.family, base: ip.value, prefix };
}

/** The prefix of length `prefix` that holds `ip`. */
export function cidrOf(ip: Ip, prefix: number): Cidr {
  return { family: ip.family, base: ip.value & ~hostMask(ip.family, prefix), prefix };
}

export function cidrContains(c: Cidr, ip: Ip): boolean {
  return c.family === ip.family && ip.value >= c.base && ip.value <= cidrLast(c);
}

export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix && inner.base >= outer.base &&
    cidrLast(inner) <= cidrLast(outer);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.base <= cidrLast(b) && b.base <= cidrLast(a);
}

/** How many sub-prefixes of length `prefix` a CIDR splits into. */
export function subnetCount(c: Cidr, prefix: number): bigint {
  if (prefix < c.prefix || prefix > familyBits(c.family)) {
    throw new PlexusError('InvalidConfig', `cannot split ${formatCidr(c)} into /${prefix} blocks`);
  }
  return 1n << BigInt(prefix - c.prefix);
}

/** The `index`th sub-prefix of length `prefix` (lazy: a /48 holds 2^74 /122 blocks). */
export function subnetAt(c: Cidr, prefix: number, index: bigint): Cidr {
  if (index < 0n || index >= subnetCount(c, prefix)) {
    throw new PlexusError('InvalidConfig', `block ${index} is outside ${formatCidr(c)} split into /${prefix}`);
  }
  return { family: c.family, base: c.base + (index << BigInt(familyBits(c.family) - prefix)), prefix };
}

/** Index of the sub-prefix of length `prefix` of `c` that holds `ip`. */
export function subnetIndexOf(c: Cidr, prefix: number, ip: Ip): bigint {
  if (!cidrContains(c, ip)) throw new PlexusError('InvalidConfig', `${formatIp(ip)} is not in ${formatCidr(c)}`);
  return (ip.value - c.base) >> BigInt(familyBits(c.family) - prefix);
}

/** A closed interval of address values of one family. */
export interface Interval {
  lo: bigint;
  hi: bigint;
}

/** Sort and merge overlapping or touching intervals. */
export function mergeIntervals(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && iv.lo <= last.hi + 1n) {
      if (iv.hi > last.hi) last.hi = iv.hi;
    } else out.push({ lo: iv.lo, hi: iv.hi });
  }
  return out;
}

/** Number of values of [lo, hi] not covered by the merged, sorted `holes`. */
export function countOutside(lo: bigint, hi: bigint, holes: readonly Interval[]): bigint {
  if (hi < lo) return 0n;
  let n = hi - lo + 1n;
  for (const h of holes) {
    const a = h.lo > lo ? h.lo : lo;
    const b = h.hi < hi ? h.hi : hi;
    if (a <= b) n -= b - a + 1n;
  }
  return n;
}

/** A 128-bit number as 16 big-endian bytes. */
export const be128 = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(32, '0'), 'hex');

/** The datapaths' 16-byte form of an address (eBPF maps, the DPDK engine's tables): IPv4 as ::ffff:a.b.c.d. */
export function addr16(ip: string, what = 'address'): Buffer {
  const a = parseIp(ip, what);
  return be128(a.family === 'v4' ? (0xffffn << 32n) | a.value : a.value);
}

/** The address `addr16` made, as text. */
export function addrText(b: Buffer): string {
  const value = BigInt(`0x${b.toString('hex')}`);
  return value >> 32n === 0xffffn ? formatIp({ family: 'v4', value: value & 0xffffffffn }) : formatIp({ family: 'v6', value });
}

/** A prefix in the same form: its base address as 16 bytes (IPv4 mapped), with its own prefix length. */
export function cidr16(text: string, what = 'CIDR'): { v6: boolean; prefix: number; bytes: Buffer } {
  const c = parseCidr(text, what);
  return { v6: c.family === 'v6', prefix: c.prefix, bytes: be128(c.family === 'v4' ? (0xffffn << 32n) | c.base : c.base) };
}
