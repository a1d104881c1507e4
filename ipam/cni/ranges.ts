/**
 * Inline ranges in a network's `ipam` section (host-local `ranges`, Whereabouts `range`/`ipRanges`) as the
 * definition of the network's implicit pool, so existing NetworkAttachmentDefinitions move over by changing
 * only `type`. Pure: config in, pool definition out; every mistake names its field.
 *
 * What maps to what:
 * - each range's subnet becomes one of the pool's CIDRs (addresses keep the subnet's prefix length);
 * - rangeStart/rangeEnd (range_start/range_end, "first-last/len") bound the usable part of that CIDR; several
 *   ranges on one subnet become one bound with the gaps between them excluded;
 * - every gateway inside a subnet is excluded, so it is never handed out; the result names the gateway of
 *   the range an address came from (host-local defaults it to the subnet's first address, Whereabouts has none);
 * - one address per family, as host-local with one range set per family and Whereabouts with one range each.
 */
import { PlexusError } from '../../core/errors';
import {
  type Cidr, type Family, type Interval, type Ip, cidrContains, cidrLast, cidrOf, cidrsOverlap, familyBits,
  formatCidr, formatIp, parseCidr, parseIp, parseIpPrefix, tryParseIp,
} from '../../core/address';
import type { CniIpamSection, WhereaboutsRange } from './schema';
import type { PoolSpec } from '../model/pool';

export type RangeStyle = 'host-local' | 'whereabouts';

/** One range as written, resolved; `field` is where it came from, for messages. */
export interface InlineRange {
  family: Family;
  subnet: Cidr;
  start?: Ip;
  end?: Ip;
  gateway?: Ip;
  /** Where the range came from (`ipam.ranges[0][1]`, `ipam`, `ipam.ipRanges[0]`) and its subnet's field. */
  field: string;
  subnetField: string;
}

export interface InlinePool {
  style: RangeStyle;
  /** The implicit pool without its name; the same config always gives the same spec (compared as JSON). */
  spec: Omit<PoolSpec, 'name'>;
  ranges: InlineRange[];
  /** Config field names for the pool's fields, for redefinition messages. */
  fields: Record<'cidrs' | 'rangeStart' | 'rangeEnd' | 'exclude', string>;
}

const bad = (field: string, msg: string): PlexusError => new PlexusError('InvalidConfig', `plexus-ipam: ${field} ${msg}`);

/** The implicit pool of an `ipam` section with inline ranges, or undefined when it names a pool. */
export function inlinePoolOf(ipam: CniIpamSection): InlinePool | undefined {
  const hostLocal = ipam.ranges !== undefined;
  const whereabouts = ipam.range !== undefined || ipam.ipRanges !== undefined;
  checkExclusive(ipam, hostLocal, whereabouts);
  if (ipam.pool !== undefined) return undefined;
  const style: RangeStyle = hostLocal ? 'host-local' : 'whereabouts';
  const ranges = hostLocal ? hostLocalRanges(ipam) : whereaboutsRanges(ipam);
  const excludes = hostLocal ? [] : whereaboutsExcludes(ipam);
  return { style, spec: specOf(ranges, excludes), ranges, fields: FIELDS[style] };
}

const FIELDS: Record<RangeStyle, InlinePool['fields']> = {
  'host-local': { cidrs: 'ipam.ranges[].subnet', rangeStart: 'ipam.ranges[].rangeStart', rangeEnd: 'ipam.ranges[].rangeEnd', exclude: 'ipam.ranges[] (gateways, gaps between ranges)' },
  whereabouts: { cidrs: 'ipam.range', rangeStart: 'ipam.range_start', rangeEnd: 'ipam.range_end', exclude: 'ipam.exclude' },
};

/** Exactly one way of naming addresses; fields of one style are not silently ignored under another. */
function checkExclusive(ipam: CniIpamSection, hostLocal: boolean, whereabouts: boolean): void {
  const given = [ipam.pool !== undefined && 'ipam.pool', hostLocal && 'ipam.ranges', whereabouts && (ipam.range !== undefined ? 'ipam.range' : 'ipam.ipRanges')]
    .filter((x): x is string => typeof x === 'string');
  if (given.length === 0) throw bad('ipam', 'needs one of "pool" (a configured pool), "ranges" (host-local style) or "range"/"ipRanges" (Whereabouts style)');
  if (given.length > 1) throw bad(given[1] as string, `cannot be combined with ${given[0]}`);
  const stray = (names: (keyof CniIpamSection)[], owner: string): void => {
    const f = names.find((n) => ipam[n] !== undefined);
    if (f) throw bad(`ipam.${f}`, `cannot be combined with ${owner}${owner === 'ipam.pool' ? ': the pool defines it' : ''}`);
  };
  if (ipam.pool !== undefined) stray(['range_start', 'range_end', 'exclude', 'gateway'], 'ipam.pool');
  if (hostLocal) stray(['range_start', 'range_end', 'exclude', 'gateway'], 'ipam.ranges (set them per range)');
  if (ipam.range === undefined) stray(['range_start', 'range_end'], 'ipam.ipRanges (set them per range)');
}

function hostLocalRanges(ipam: CniIpamSection): InlineRange[] {
  const out: InlineRange[] = [];
  const families = new Map<Family, number>();
  for (const [i, set] of (ipam.ranges ?? []).entries()) {
    let family: Family | undefined;
    for (const [j, r] of set.entries()) {
      const field = `ipam.ranges[${i}][${j}]`;
      const subnet = parseCidr(r.subnet, `plexus-ipam: ${field}.subnet`);
      if (family !== undefined && subnet.family !== family) throw bad(`${field}.subnet`, `is ${subnet.family} but the range set ipam.ranges[${i}] is ${family}`);
      family = subnet.family;
      const range = boundedRange(subnet, field, r.rangeStart, r.rangeEnd, { start: 'rangeStart', end: 'rangeEnd', subnet: 'subnet' });
      // host-local claims the subnet's first address as the gateway unless told otherwise.
      const gw = r.gateway !== undefined ? parseIp(r.gateway, `plexus-ipam: ${field}.gateway`) : defaultGateway(subnet);
      if (gw && gw.family !== subnet.family) throw bad(`${field}.gateway`, `${r.gateway} is not an ${subnet.family} address`);
      out.push({ ...range, ...(gw ? { gateway: gw } : {}) });
    }
    if (family === undefined) continue;
    const prev = families.get(family);
    if (prev !== undefined) throw bad(`ipam.ranges[${i}]`, `is a second ${family} range set (ipam.ranges[${prev}] is one): plexus-ipam gives one address per family`);
    families.set(family, i);
  }
  return out;
}

function defaultGateway(subnet: Cidr): Ip | undefined {
  if (subnet.prefix >= familyBits(subnet.family) - 1) return undefined; // /31, /32: every address is a host
  return { family: subnet.family, value: subnet.base + 1n };
}

function whereaboutsRanges(ipam: CniIpamSection): InlineRange[] {
  const entries: { r: WhereaboutsRange; field: string }[] = [];
  if (ipam.range !== undefined) {
    entries.push({ r: { range: ipam.range, ...pick(ipam, 'range_start', 'range_end') }, field: 'ipam' });
  }
  for (const [i, r] of (ipam.ipRanges ?? []).entries()) entries.push({ r, field: `ipam.ipRanges[${i}]` });
  const out: InlineRange[] = [];
  for (const { r, field } of entries) {
    const range = parseWhereaboutsRange(r, field);
    const clash = out.find((o) => o.family === range.family);
    if (clash) throw bad(`${field}.range`, `is a second ${range.family} range (${clash.field}.range is one): plexus-ipam gives one address per family`);
    out.push(range);
  }
  if (ipam.gateway !== undefined) {
    const gw = parseIp(ipam.gateway, 'plexus-ipam: ipam.gateway');
    const r = out.find((o) => o.family === gw.family);
    if (!r) throw bad('ipam.gateway', `${ipam.gateway} is of a family none of the ranges has`);
    r.gateway = gw;
  }
  return out;
}

function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** "10.0.0.0/24" (host bits are masked, as Whereabouts does) or "10.0.0.10-10.0.0.20/24". */
function parseWhereaboutsRange(r: WhereaboutsRange, field: string): InlineRange {
  const dash = r.range.indexOf('-');
  if (dash <= 0 || !tryParseIp(r.range.slice(0, dash))) {
    const { ip, prefix } = parseIpPrefix(r.range, `plexus-ipam: ${field}.range`);
    return boundedRange(cidrOf(ip, prefix), field, r.range_start, r.range_end, { start: 'range_start', end: 'range_end', subnet: 'range' });
  }
  const start = parseIp(r.range.slice(0, dash));
  const { ip: last, prefix } = parseIpPrefix(r.range.slice(dash + 1), `plexus-ipam: ${field}.range`);
  if (start.family !== last.family) throw bad(`${field}.range`, `${r.range} mixes address families`);
  if (r.range_start !== undefined || r.range_end !== undefined) {
    throw bad(`${field}.${r.range_start !== undefined ? 'range_start' : 'range_end'}`, `cannot be combined with a range that has its own first and last address (${r.range})`);
  }
  const subnet = cidrOf(start, prefix);
  return boundedRange(subnet, field, formatIp(start), formatIp(last), { start: 'range', end: 'range', subnet: 'range' });
}

/** A subnet with an optional start and end, both inside it and in order. */
function boundedRange(subnet: Cidr, field: string, start: string | undefined, end: string | undefined, names: { start: string; end: string; subnet: string }): InlineRange {
  const out: InlineRange = { family: subnet.family, subnet, field, subnetField: `${field}.${names.subnet}` };
  for (const [key, raw] of [['start', start], ['end', end]] as const) {
    if (raw === undefined) continue;
    const name = `${field}.${names[key]}`;
    const ip = parseIp(raw, `plexus-ipam: ${name}`);
    if (!cidrContains(subnet, ip)) throw bad(name, `${raw} is outside the subnet ${formatCidr(subnet)}`);
    out[key] = ip;
  }
  if (out.start && out.end && out.start.value > out.end.value) {
    throw bad(`${field}.${names.start}`, `${formatIp(out.start)} is after the range end ${formatIp(out.end)}`);
  }
  return out;
}

function whereaboutsExcludes(ipam: CniIpamSection): string[] {
  const out: string[] = [];
  const lists: [string, string[] | undefined][] = [['ipam.exclude', ipam.exclude], ...(ipam.ipRanges ?? []).map((r, i) => [`ipam.ipRanges[${i}].exclude`, r.exclude] as [string, string[] | undefined])];
  for (const [field, list] of lists) {
    for (const [i, s] of (list ?? []).entries()) {
      out.push(excludeCidr(s, `plexus-ipam: ${field}[${i}]`));
    }
  }
  return out;
}

/** An exclusion: a CIDR (host bits masked, as Whereabouts does) or a single address. */
function excludeCidr(s: string, where: string): string {
  if (s.includes('/')) {
    const { ip, prefix } = parseIpPrefix(s, where);
    return formatCidr(cidrOf(ip, prefix));
  }
  const ip = parseIp(s, where);
  return formatCidr(cidrOf(ip, familyBits(ip.family)));
}

/** Build the implicit pool's spec from resolved ranges: one CIDR per subnet, bounds, and what to skip. */
function specOf(ranges: InlineRange[], excludes: string[]): Omit<PoolSpec, 'name'> {
  const bySubnet = new Map<string, InlineRange[]>();
  for (const r of ranges) {
    const key = formatCidr(r.subnet);
    const other = ranges.find((o) => o !== r && formatCidr(o.subnet) !== key && cidrsOverlap(o.subnet, r.subnet));
    if (other) throw bad(r.subnetField, `${key} overlaps ${formatCidr(other.subnet)} (${other.subnetField})`);
    bySubnet.set(key, [...(bySubnet.get(key) ?? []), r]);
  }
  const cidrs: string[] = [];
  const rangeStart: string[] = [];
  const rangeEnd: string[] = [];
  const exclude: string[] = [];
  for (const [key, list] of bySubnet) {
    const subnet = (list[0] as InlineRange).subnet;
    const spans = list.map((r) => ({ lo: r.start?.value ?? subnet.base, hi: r.end?.value ?? cidrLast(subnet) }));
    const lo = spans.reduce((m, s) => (s.lo < m ? s.lo : m), cidrLast(subnet));
    const hi = spans.reduce((m, s) => (s.hi > m ? s.hi : m), subnet.base);
    cidrs.push(key);
    if (lo > subnet.base) rangeStart.push(formatIp({ family: subnet.family, value: lo }));
    if (hi < cidrLast(subnet)) rangeEnd.push(formatIp({ family: subnet.family, value: hi }));
    for (const gap of gapsBetween(spans)) exclude.push(...cidrsCovering(subnet.family, gap));
    for (const r of list) if (r.gateway && cidrContains(subnet, r.gateway)) exclude.push(formatCidr(cidrOf(r.gateway, familyBits(r.family))));
  }
  exclude.push(...excludes);
  const spec: Omit<PoolSpec, 'name'> = { cidrs };
  if (rangeStart.length) spec.rangeStart = rangeStart;
  if (rangeEnd.length) spec.rangeEnd = rangeEnd;
  const uniq = [...new Set(exclude)];
  if (uniq.length) spec.exclude = uniq;
  return spec;
}

/** The holes between the union of several spans of one subnet. */
function gapsBetween(spans: Interval[]): Interval[] {
  const sorted = [...spans].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const gaps: Interval[] = [];
  let reach = (sorted[0] as Interval).hi;
  for (const s of sorted.slice(1)) {
    if (s.lo > reach + 1n) gaps.push({ lo: reach + 1n, hi: s.lo - 1n });
    if (s.hi > reach) reach = s.hi;
  }
  return gaps;
}

/** The fewest CIDRs that cover exactly [lo, hi]. */
export function cidrsCovering(family: Family, iv: Interval): string[] {
  const bits = familyBits(family);
  const out: string[] = [];
  let lo = iv.lo;
  while (lo <= iv.hi) {
    let size = 0;
    // Grow the block while it stays aligned at `lo` and inside the interval.
    while (size < bits && (lo & ((1n << BigInt(size + 1)) - 1n)) === 0n && lo + (1n << BigInt(size + 1)) - 1n <= iv.hi) size++;
    out.push(formatCidr({ family, base: lo, prefix: bits - size }));
    lo += 1n << BigInt(size);
  }
  return out;
}

/** The gateway the result names for `ip`: the one of the range whose subnet holds it. */
export function gatewayFor(pool: InlinePool, ip: Ip): string | undefined {
  const r = pool.ranges.find((x) => cidrContains(x.subnet, ip) && x.gateway);
  return r?.gateway ? formatIp(r.gateway) : undefined;
}
