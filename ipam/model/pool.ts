/**
 * Pools and their geometry: a pool is one or more CIDRs cut into blocks; an address inside a block is an
 * ordinal (0 .. size-1). Which ordinals may ever be handed out (range, exclusions, gateway, network and
 * broadcast addresses) is decided here once per pool, as sorted "holes", so the allocator asks a cheap question.
 * The JSON shape is validated by pool-schema.ts; this file checks what a schema cannot (CIDR semantics).
 */
import { PlexusError } from '../../core/errors';
import {
  type Cidr, type Family, type Interval, type Ip, cidrContains, cidrLast, cidrOf, cidrsOverlap, countOutside,
  familyBits, formatCidr, formatIp, mergeIntervals, parseCidr, parseIp, subnetAt, subnetIndexOf,
} from '../../core/address';

export interface RouteSpec {
  dst: string;
  gw?: string;
}

/** The shape shared by `ipam.pools[]` in the daemon config and the IPPool manifest's `spec` (plus `name`). */
export interface PoolSpec {
  name: string;
  cidrs: string[];
  /** A prefix length: N <= 32 means v4 /N and v6 blocks of the same size (/96+N); N > 32 is v6 only. */
  blockSize?: number | { v4?: number; v6?: number };
  exclude?: string[];
  rangeStart?: string | string[];
  rangeEnd?: string | string[];
  gateway?: string | string[];
  routes?: RouteSpec[];
  strictAffinity?: boolean;
  nodeSelector?: Record<string, string>;
}

export interface Subnet {
  readonly family: Family;
  readonly cidr: Cidr;
  readonly blockPrefix: number;
  /** Allocatable values lie in [lo, hi] and outside `holes` (sorted, merged). */
  readonly lo: bigint;
  readonly hi: bigint;
  readonly holes: readonly Interval[];
}

export interface Pool {
  readonly name: string;
  readonly spec: PoolSpec;
  readonly subnets: readonly Subnet[];
  readonly families: readonly Family[];
  readonly gateways: Partial<Record<Family, Ip>>;
  readonly routes: readonly { dst: string; gw?: string; family: Family }[];
  readonly strictAffinity: boolean;
}

/** A block of a pool: the unit a node claims. Keys are stable and name the pool, e.g. `blue:10.0.0.64-26`. */
export interface BlockGeom {
  readonly key: string;
  readonly pool: string;
  readonly family: Family;
  readonly subnet: Subnet;
  readonly cidr: Cidr;
  readonly size: number;
}

export const DEFAULT_BLOCK = { v4: 26, v6: 122 } as const;
/** Blocks hold at most 2^16 addresses so per-block ordinals stay small numbers. */
const MAX_BLOCK_HOST_BITS = 16;

const bad = (msg: string): PlexusError => new PlexusError('InvalidConfig', msg);
const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function blockPrefixFor(spec: PoolSpec, family: Family): number {
  const bs = spec.blockSize;
  if (bs === undefined) return DEFAULT_BLOCK[family];
  if (typeof bs === 'number') {
    if (bs <= 32) return family === 'v4' ? bs : 96 + bs;
    if (family === 'v4') throw bad(`pool ${spec.name}: blockSize ${bs} is an IPv6 prefix but the pool has IPv4 CIDRs`);
    return bs;
  }
  return bs[family] ?? DEFAULT_BLOCK[family];
}

const hostCidr = (ip: Ip): Cidr => cidrOf(ip, familyBits(ip.family));

function buildSubnet(spec: PoolSpec, cidr: Cidr, where: string): Subnet {
  const bits = familyBits(cidr.family);
  let blockPrefix = Math.max(blockPrefixFor(spec, cidr.family), cidr.prefix);
  if (blockPrefix > bits) throw bad(`${where}: blockSize /${blockPrefix} is longer than an ${cidr.family} address`);
  if (bits - blockPrefix > MAX_BLOCK_HOST_BITS) {
    throw bad(`${where}: blocks of /${blockPrefix} are too large (at most ${MAX_BLOCK_HOST_BITS} host bits)`);
  }
  const last = cidrLast(cidr);
  const holes: Interval[] = [];
  // The network address (and IPv4 broadcast) are not host addresses, except on /31, /32, /127, /128 (RFC 3021).
  if (cidr.prefix < bits - 1) holes.push({ lo: cidr.base, hi: cidr.base });
  if (cidr.family === 'v4' && cidr.prefix < 31) holes.push({ lo: last, hi: last });
  for (const [i, ex] of (spec.exclude ?? []).entries()) {
    const what = `pool ${spec.name} exclude[${i}]`;
    const c = ex.includes('/') ? parseCidr(ex, what) : hostCidr(parseIp(ex, what));
    if (c.family === cidr.family && cidrsOverlap(c, cidr)) holes.push({ lo: c.base, hi: cidrLast(c) });
  }
  for (const gw of asList(spec.gateway)) {
    const ip = parseIp(gw, `pool ${spec.name} gateway`);
    if (cidrContains(cidr, ip)) holes.push({ lo: ip.value, hi: ip.value });
  }
  let lo = cidr.base;
  let hi = last;
  for (const [field, list] of [['rangeStart', asList(spec.rangeStart)], ['rangeEnd', asList(spec.rangeEnd)]] as const) {
    for (const s of list) {
      const ip = parseIp(s, `pool ${spec.name} ${field}`);
      if (!cidrContains(cidr, ip)) continue;
      if (field === 'rangeStart') lo = ip.value;
      else hi = ip.value;
    }
  }
  if (lo > hi) throw bad(`${where}: rangeStart is after rangeEnd`);
  return { family: cidr.family, cidr, blockPrefix, lo, hi, holes: mergeIntervals(holes) };
}

/** Check a pool's CIDR semantics and precompute its geometry. The JSON shape was already validated. */
export function parsePool(spec: PoolSpec): Pool {
  const subnets: Subnet[] = [];
  for (const [i, s] of spec.cidrs.entries()) {
    const where = `pool ${spec.name} cidrs[${i}] ${s}`;
    const cidr = parseCidr(s, `pool ${spec.name} cidrs[${i}]`);
    const clash = subnets.find((o) => cidrsOverlap(o.cidr, cidr));
    if (clash) throw bad(`${where} overlaps ${formatCidr(clash.cidr)}`);
    subnets.push(buildSubnet(spec, cidr, where));
  }
  const inSome = (ip: Ip): boolean => subnets.some((n) => cidrContains(n.cidr, ip));
  for (const [field, v] of [['rangeStart', spec.rangeStart], ['rangeEnd', spec.rangeEnd], ['gateway', spec.gateway]] as const) {
    for (const s of asList(v)) {
      if (!inSome(parseIp(s, `pool ${spec.name} ${field}`))) throw bad(`pool ${spec.name}: ${field} ${s} is in none of its CIDRs`);
    }
  }
  const gateways: Partial<Record<Family, Ip>> = {};
  for (const s of asList(spec.gateway)) {
    const ip = parseIp(s);
    if (gateways[ip.family]) throw bad(`pool ${spec.name}: more than one ${ip.family} gateway`);
    gateways[ip.family] = ip;
  }
  const routes = (spec.routes ?? []).map((r, i) => {
    const dst = parseCidr(r.dst, `pool ${spec.name} routes[${i}].dst`);
    if (r.gw !== undefined && parseIp(r.gw, `pool ${spec.name} routes[${i}].gw`).family !== dst.family) {
      throw bad(`pool ${spec.name} routes[${i}]: gw and dst are of different families`);
    }
    return { ...r, dst: formatCidr(dst), family: dst.family };
  });
  const families = (['v4', 'v6'] as const).filter((f) => subnets.some((s) => s.family === f));
  return { name: spec.name, spec, subnets, families, gateways, routes, strictAffinity: spec.strictAffinity === true };
}

/** Parse several pools; pools may not overlap each other, or one address could be handed out twice. */
export function parsePoolList(specs: readonly PoolSpec[]): Pool[] {
  const pools = specs.map(parsePool);
  const names = new Set<string>();
  for (const p of pools) {
    if (names.has(p.name)) throw bad(`pool ${p.name} is defined twice`);
    names.add(p.name);
    for (const q of pools) {
      if (q === p) break;
      for (const a of p.subnets) {
        const b = q.subnets.find((s) => cidrsOverlap(s.cidr, a.cidr));
        if (b) throw bad(`pool ${p.name} ${formatCidr(a.cidr)} overlaps pool ${q.name} ${formatCidr(b.cidr)}`);
      }
    }
  }
  return pools;
}

export const blockKeyOf = (pool: string, c: Cidr): string => `${pool}:${formatIp({ family: c.family, value: c.base })}-${c.prefix}`;

function geomFor(pool: Pool, subnet: Subnet, cidr: Cidr): BlockGeom {
  const size = 1 << (familyBits(cidr.family) - cidr.prefix);
  return { key: blockKeyOf(pool.name, cidr), pool: pool.name, family: subnet.family, subnet, cidr, size };
}

/** Every block of a pool for one family, in order, lazily (a large IPv6 pool has astronomically many). */
export function* blocksOf(pool: Pool, family: Family): Generator<BlockGeom> {
  for (const subnet of pool.subnets) {
    if (subnet.family !== family) continue;
    // Only blocks that overlap [lo, hi]: a range deep inside a big IPv6 CIDR must not cost a long walk.
    const first = subnetIndexOf(subnet.cidr, subnet.blockPrefix, { family, value: subnet.lo });
    const last = subnetIndexOf(subnet.cidr, subnet.blockPrefix, { family, value: subnet.hi });
    for (let i = first; i <= last; i++) {
      const g = geomFor(pool, subnet, subnetAt(subnet.cidr, subnet.blockPrefix, i));
      if (usableCount(g) > 0) yield g;
    }
  }
}

/** The block of `pool` holding `ip`, or undefined if the pool does not contain it. */
export function blockOfIp(pool: Pool, ip: Ip): BlockGeom | undefined {
  const subnet = pool.subnets.find((s) => cidrContains(s.cidr, ip));
  if (!subnet) return undefined;
  const idx = subnetIndexOf(subnet.cidr, subnet.blockPrefix, ip);
  return geomFor(pool, subnet, subnetAt(subnet.cidr, subnet.blockPrefix, idx));
}

/** The geometry of a stored block key, or undefined if the key does not belong to this pool (as configured now). */
export function blockByKey(pool: Pool, key: string): BlockGeom | undefined {
  const m = /^([^:]+):(.+)-(\d+)$/.exec(key);
  if (!m || m[1] !== pool.name) return undefined;
  const ip = parseIp(m[2] as string);
  const g = blockOfIp(pool, ip);
  return g && g.key === key ? g : undefined;
}

export const ipOf = (g: BlockGeom, ordinal: number): Ip => ({ family: g.family, value: g.cidr.base + BigInt(ordinal) });
export const ordinalOf = (g: BlockGeom, ip: Ip): number => Number(ip.value - g.cidr.base);

function holeAt(holes: readonly Interval[], v: bigint): Interval | undefined {
  let a = 0;
  let b = holes.length - 1;
  while (a <= b) {
    const m = (a + b) >> 1;
    const h = holes[m] as Interval;
    if (v < h.lo) b = m - 1;
    else if (v > h.hi) a = m + 1;
    else return h;
  }
  return undefined;
}

export function isUsable(g: BlockGeom, ordinal: number): boolean {
  if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= g.size) return false;
  const v = g.cidr.base + BigInt(ordinal);
  return v >= g.subnet.lo && v <= g.subnet.hi && !holeAt(g.subnet.holes, v);
}

/** The first usable ordinal >= `from`, or -1. Jumps over whole holes, so it is cheap even for big exclusions. */
export function nextUsable(g: BlockGeom, from: number): number {
  let o = Math.max(0, from);
  while (o < g.size) {
    const v = g.cidr.base + BigInt(o);
    if (v < g.subnet.lo) o = Number(g.subnet.lo - g.cidr.base);
    else if (v > g.subnet.hi) return -1;
    else {
      const h = holeAt(g.subnet.holes, v);
      if (!h) return o;
      o = Number(h.hi - g.cidr.base) + 1;
    }
  }
  return -1;
}

export function usableCount(g: BlockGeom): number {
  const lo = g.cidr.base > g.subnet.lo ? g.cidr.base : g.subnet.lo;
  const last = cidrLast(g.cidr);
  const hi = last < g.subnet.hi ? last : g.subnet.hi;
  return Number(countOutside(lo, hi, g.subnet.holes));
}

/** Total allocatable addresses of a pool per family (bigint: IPv6 pools are huge). */
export function poolCapacity(pool: Pool, family: Family): bigint {
  let n = 0n;
  for (const s of pool.subnets) if (s.family === family) n += countOutside(s.lo, s.hi, s.holes);
  return n;
}
