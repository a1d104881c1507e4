/**
 * Policies compiled into the shape the datapath's maps have (DESIGN: selectors -> identities -> map entries),
 * so that a packet costs a fixed number of lookups whatever the number of rules:
 *
 * - identities: every distinct (namespace, labels, named container ports) of a pod gets a number. The ports are
 *   part of it so that a named port resolves the same way for every pod of an identity (F10).
 *   0 means any peer, 1 the world (an address no pod owns on that network);
 * - the ipcache: per network, a pod's address -> its identity (hostNetwork pods are node traffic: not there);
 * - per endpoint (a pod's interface on a network) and direction: whether it is isolated, an address LPM table
 *   for the ipBlocks that apply (address -> a class number, the set of ipBlock peers that contain the address
 *   and do not except it, and the identity of the pod owning exactly that address) and the rules, an LPM table
 *   keyed by [peer 32 bits | protocol 8 | port 16]: a rule for any port of a protocol has prefix 40, for every
 *   protocol prefix 32, and a port range becomes the aligned power-of-two blocks that cover it.
 *
 * A packet's verdict in one direction: isolated ? rules(identity, proto, port) || rules(0, ...) ||
 * rules(class, ...) : allow. Five lookups with the ipcache and the address table; `verdict` below is exactly
 * that, and policy/compile.test.ts checks it against the reference evaluator on random policies.
 */
import { type Cidr, type Ip, cidrContainsCidr, cidrOf, familyBits, parseIp } from '../core/address';
import { type Connection, type PolicyPod, type World, governs } from './evaluate';
import type { Policy, PolicyPeer, PolicyPort, PolicyRule, Protocol } from './parse';
import { matches } from './selector';

export const ANY_PEER = 0;
export const WORLD = 1;
const FIRST_ID = 16;
const CLASS_BASE = 0x8000_0000; // ipBlock classes share the peer field with identities: the top half

const PROTO_NUMBER: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

/** A longest-prefix-match table over bigint keys of `bits` bits, as a BPF LPM trie answers. */
export class Lpm<V> {
  private readonly byLen = new Map<number, Map<bigint, V>>();
  /** The prefix lengths in use, longest first. */
  private lens: number[] = [];

  constructor(readonly bits: number) {}

  set(key: bigint, len: number, value: V): void {
    let m = this.byLen.get(len);
    if (!m) {
      this.byLen.set(len, (m = new Map()));
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    m.set(this.mask(key, len), value);
  }

  lookup(key: bigint): V | undefined {
    for (const len of this.lens) {
      const v = this.byLen.get(len)!.get(this.mask(key, len));
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /** Every entry: key, prefix length, value. */
  *entries(): Generator<{ key: bigint; len: number; value: V }> {
    for (const [len, m] of this.byLen) for (const [key, value] of m) yield { key, len, value };
  }

  get size(): number {
    let n = 0;
    for (const m of this.byLen.values()) n += m.size;
    return n;
  }

  private mask(key: bigint, len: number): bigint {
    const shift = BigInt(this.bits - len);
    return (key >> shift) << shift;
  }
}

/** A pod's interface on a network: what the ipcache and the endpoint maps are built from. */
export interface Attachment {
  readonly pod: PolicyPod;
  /** undefined: the cluster network; else the NAD `namespace/name`. */
  readonly network?: string;
  readonly ips: readonly string[];
}

export interface DirectionMaps {
  readonly isolated: boolean;
  /** Address (family-tagged: v4 in the low 32 bits of 129, v6 with the top bit set) -> ipBlock class. */
  readonly cidr: Lpm<number>;
  /** [peer | proto | port] -> allowed. */
  readonly rules: Lpm<true>;
}

export interface EndpointMaps {
  readonly ingress: DirectionMaps;
  readonly egress: DirectionMaps;
}

export interface Compiled {
  readonly identities: ReadonlyMap<string, number>;
  /** network ('' for the cluster network) -> address -> identity. */
  readonly ipcache: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** `${network}|${namespace}/${name}` -> maps. */
  readonly endpoints: ReadonlyMap<string, EndpointMaps>;
}

export const endpointKey = (network: string | undefined, pod: { namespace: string; name: string }): string => `${network ?? ''}|${pod.namespace}/${pod.name}`;

const identityKey = (p: PolicyPod): string =>
  JSON.stringify([p.namespace, Object.entries(p.labels).sort(([a], [b]) => (a < b ? -1 : 1)), [...p.ports].map((x) => `${x.name ?? ''}/${x.protocol}/${x.port}`).sort()]);

/** The address as a key of the address tables: one keyspace for both families (129 bits). */
function addrKey(ip: Ip): bigint {
  return ip.family === 'v6' ? (1n << 128n) | ip.value : ip.value;
}
const cidrKey = (c: Cidr): { key: bigint; len: number } => ({ key: addrKey({ family: c.family, value: c.base }), len: 1 + (c.family === 'v6' ? 0 : 96) + c.prefix });

/**
 * Identity numbers that outlive one compile: a pod keeps its number while its labels, namespace and ports stay,
 * so the datapath's rules and ipcache can be updated one entry at a time (bpf-maps.ts) without a moment in
 * which an old rule means another pod. Numbers are never reused.
 */
export class IdentityAllocator {
  private readonly ids = new Map<string, number>();
  private next = FIRST_ID;

  idOf(key: string): number {
    let id = this.ids.get(key);
    if (id === undefined) this.ids.set(key, (id = this.next++));
    return id;
  }

  /** Forgets the identities no pod has any more (their numbers are never given again, so this is safe). */
  retain(keys: ReadonlySet<string>): void {
    for (const k of this.ids.keys()) if (!keys.has(k)) this.ids.delete(k);
  }
}

/**
 * `attachments` are this node's endpoints (each gets maps); `remote` are other nodes' pods, which get an
 * identity and ipcache entries only: a policy here names them as peers, their own policies are their node's.
 */
export function compile(world: World, attachments: readonly Attachment[], allocator = new IdentityAllocator(), remote: readonly Attachment[] = []): Compiled {
  const identities = new Map<string, number>();
  const podOf = new Map<number, PolicyPod>();
  const ipcache = new Map<string, Map<string, number>>();
  for (const a of [...remote, ...attachments]) {
    if (a.pod.hostNetwork) continue;
    const k = identityKey(a.pod);
    const id = allocator.idOf(k);
    identities.set(k, id);
    podOf.set(id, a.pod);
    let m = ipcache.get(a.network ?? '');
    if (!m) ipcache.set(a.network ?? '', (m = new Map()));
    for (const ip of a.ips) m.set(ip, id);
  }
  allocator.retain(new Set(identities.keys()));
  // Endpoints of one identity on one network have the same maps (the pod's name plays no part): computed once,
  // so a namespace of a thousand alike pods costs one endpoint's work, not a thousand.
  const endpoints = new Map<string, EndpointMaps>();
  const byIdentity = new Map<string, EndpointMaps>();
  const classes = new Map<string, ClassTable>();
  for (const a of attachments) {
    const key = `${a.network ?? ''}|${a.pod.hostNetwork ? 'host' : ''}|${identityKey(a.pod)}`;
    let maps = byIdentity.get(key);
    if (!maps) {
      const cache = ipcache.get(a.network ?? '') ?? new Map<string, number>();
      const ctx: Ctx = { world, network: a.network, pod: a.pod, podOf, ipcache: cache, here: new Set(cache.values()), classes };
      byIdentity.set(key, (maps = { ingress: direction(ctx, 'ingress'), egress: direction(ctx, 'egress') }));
    }
    endpoints.set(endpointKey(a.network, a.pod), maps);
  }
  return { identities, ipcache, endpoints };
}

interface Ctx {
  readonly world: World;
  readonly network: string | undefined;
  readonly pod: PolicyPod;
  readonly podOf: ReadonlyMap<number, PolicyPod>;
  readonly ipcache: ReadonlyMap<string, number>;
  /** The identities with an address on this network. */
  readonly here: ReadonlySet<number>;
  /** ipBlock class tables already built in this compile, by network, direction and the policies they come from. */
  readonly classes: Map<string, ClassTable>;
}

interface ClassTable {
  readonly table: Lpm<number>;
  readonly classes: Map<number, { peers: Set<PolicyPeer>; owner?: PolicyPod }>;
  /** The classes each ipBlock peer is in (the rules' side of `classes`, so a rule does not scan them all). */
  readonly byPeer: Map<PolicyPeer, number[]>;
}

function direction(ctx: Ctx, dir: 'ingress' | 'egress'): DirectionMaps {
  const policies = ctx.pod.hostNetwork ? [] : ctx.world.policies.filter((p) =>
    p[dir] !== undefined && p.namespace === ctx.pod.namespace && governs(p, ctx.network) && matches(p.podSelector, ctx.pod.labels));
  const rules = new Lpm<true>(56);
  if (policies.length === 0) return { isolated: false, cidr: new Lpm<number>(129), rules };
  const { table: cidr, classes, byPeer } = ipBlockClasses(ctx, policies, dir);
  for (const p of policies) {
    for (const r of p[dir] as readonly PolicyRule[]) {
      // Named ports resolve on the destination (F10): the endpoint itself for ingress, the peer for egress.
      const ports = (dest: PolicyPod | undefined) => portKeys(r.ports, dest);
      if (!r.peers) {
        if (dir === 'ingress' || !r.ports?.some((x) => typeof x.port === 'string')) add(rules, ANY_PEER, ports(ctx.pod));
        else {
          add(rules, ANY_PEER, portKeys(r.ports.filter((x) => typeof x.port !== 'string'), undefined));
          for (const [id, pod] of ctx.podOf) if (ctx.here.has(id)) add(rules, id, ports(pod));
        }
        continue;
      }
      for (const peer of r.peers) {
        if (peer.kind === 'pods') {
          for (const [id, pod] of ctx.podOf) {
            if (!ctx.here.has(id) || !podPeerMatches(ctx.world, p, peer, pod)) continue;
            add(rules, id, ports(dir === 'ingress' ? ctx.pod : pod));
          }
        } else {
          for (const cls of byPeer.get(peer) ?? []) add(rules, cls, ports(dir === 'ingress' ? ctx.pod : classes.get(cls)!.owner));
        }
      }
    }
  }
  return { isolated: true, cidr, rules };
}

function podPeerMatches(world: World, p: Policy, x: Extract<PolicyPeer, { kind: 'pods' }>, pod: PolicyPod): boolean {
  if (x.namespaces === undefined ? pod.namespace !== p.namespace : !matches(x.namespaces, world.namespaces.get(pod.namespace) ?? {})) return false;
  return matches(x.pods, pod.labels);
}

/**
 * The address table of one endpoint and direction: every ipBlock cidr and except, and every pod address inside
 * one (so a named port can resolve on the pod owning it), each mapped to its class: the peers that contain the
 * address and do not except it (for any address, the longest inserted prefix containing it has exactly its
 * peers), and the pod at exactly that address. It depends only on the policies and the network: endpoints
 * selected by the same policies share one (built once per compile).
 */
function ipBlockClasses(ctx: Ctx, policies: readonly Policy[], dir: 'ingress' | 'egress'): ClassTable {
  const memo = `${ctx.network ?? ''}|${dir}|${policies.map((p) => ctx.world.policies.indexOf(p)).join(',')}`;
  const known = ctx.classes.get(memo);
  if (known) return known;
  const table = new Lpm<number>(129);
  const classes = new Map<number, { peers: Set<PolicyPeer>; owner?: PolicyPod }>();
  const byPeer = new Map<PolicyPeer, number[]>();
  const built = { table, classes, byPeer };
  ctx.classes.set(memo, built);
  const blocks = policies.flatMap((p) => (p[dir] ?? []).flatMap((r) => (r.peers ?? []).filter((x): x is Extract<PolicyPeer, { kind: 'ipBlock' }> => x.kind === 'ipBlock')));
  if (blocks.length === 0) return built;
  const prefixes = new Map<string, { cidr: Cidr; owner?: PolicyPod }>();
  for (const b of blocks) for (const c of [b.cidr, ...b.except]) prefixes.set(`${c.family}/${c.base}/${c.prefix}`, { cidr: c });
  // A pod's own prefix is needed only where a named port must resolve on the pod an ipBlock contains (egress
  // rules naming ports by name): elsewhere it would be an entry per pod address per endpoint for nothing.
  const named = dir === 'egress' && policies.some((p) => (p.egress ?? []).some((r) => r.peers?.some((x) => x.kind === 'ipBlock') && r.ports?.some((x) => typeof x.port === 'string')));
  const containing = blockIndex(blocks);
  for (const [ip, id] of named ? ctx.ipcache : []) {
    const a = parseIp(ip);
    const host = cidrOf(a, familyBits(a.family));
    if (containing(host).length > 0) prefixes.set(`${a.family}/${a.value}/${familyBits(a.family)}`, { cidr: host, owner: ctx.podOf.get(id) });
  }
  const byKey = new Map<string, number>();
  for (const { cidr, owner } of prefixes.values()) {
    const inside = containing(cidr).filter((i) => !blocks[i]!.except.some((e) => cidrContainsCidr(e, cidr)));
    const key = JSON.stringify([inside, owner ? identityKey(owner) : '']);
    let cls = byKey.get(key);
    if (cls === undefined) {
      byKey.set(key, (cls = CLASS_BASE + byKey.size));
      const peers = new Set<PolicyPeer>(inside.map((i) => blocks[i]!));
      classes.set(cls, { peers, ...(owner ? { owner } : {}) });
      for (const peer of peers) {
        const list = byPeer.get(peer);
        if (list) list.push(cls);
        else byPeer.set(peer, [cls]);
      }
    }
    const { key: k, len } = cidrKey(cidr);
    table.set(k, len, cls);
  }
  return built;
}

/**
 * For a prefix, the indexes (ascending) of the blocks whose cidr contains it: one map lookup per prefix length
 * the blocks use, instead of a comparison with every block (1,000 ipBlock rules made that a million).
 */
function blockIndex(blocks: ReadonlyArray<Extract<PolicyPeer, { kind: 'ipBlock' }>>): (c: Cidr) => number[] {
  const byLen = new Map<string, Map<bigint, number[]>>(); // family/length -> base -> block indexes
  blocks.forEach((b, i) => {
    const at = `${b.cidr.family}/${b.cidr.prefix}`;
    let bases = byLen.get(at);
    if (!bases) byLen.set(at, (bases = new Map()));
    const same = bases.get(b.cidr.base);
    if (same) same.push(i);
    else bases.set(b.cidr.base, [i]);
  });
  const lengths = [...byLen.keys()].map((k) => k.split('/') as [Cidr['family'], string]).map(([family, len]) => ({ family, len: Number(len) }));
  return (c) => {
    const out: number[] = [];
    for (const { family, len } of lengths) {
      if (family !== c.family || len > c.prefix) continue;
      out.push(...(byLen.get(`${family}/${len}`)!.get(cidrOf({ family, value: c.base }, len).base) ?? []));
    }
    return out.sort((a, b) => a - b);
  };
}

type PortKey = { proto?: number; port?: number; len: number };

/** A rule's ports as LPM suffixes: undefined ports = every protocol; a name resolves on `dest` (none: no port). */
function portKeys(ports: readonly PolicyPort[] | undefined, dest: PolicyPod | undefined): PortKey[] {
  if (!ports) return [{ len: 32 }];
  const out: PortKey[] = [];
  for (const x of ports) {
    const proto = PROTO_NUMBER[x.protocol];
    if (x.port === undefined) out.push({ proto, len: 40 });
    else if (typeof x.port === 'string') {
      for (const cp of dest?.hostNetwork ? [] : dest?.ports ?? []) if (cp.name === x.port && cp.protocol === x.protocol) out.push({ proto, port: cp.port, len: 56 });
    } else for (const [port, bits] of rangeBlocks(x.port, x.endPort ?? x.port)) out.push({ proto, port, len: 40 + bits });
  }
  return out;
}

/** [lo, hi] as aligned power-of-two blocks: (start, prefix bits of the 16). At most 30 of them. */
export function rangeBlocks(lo: number, hi: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = lo;
  while (start <= hi) {
    let size = start === 0 ? 1 << 16 : start & -start;
    while (start + size - 1 > hi) size >>= 1;
    out.push([start, 16 - Math.log2(size)]);
    start += size;
  }
  return out;
}

function add(rules: Lpm<true>, peer: number, ports: readonly PortKey[]): void {
  for (const p of ports) rules.set(ruleKey(peer, p.proto ?? 0, p.port ?? 0), p.len, true);
}

const ruleKey = (peer: number, proto: number, port: number): bigint => (BigInt(peer) << 24n) | (BigInt(proto) << 16n) | BigInt(port);

/** One direction's verdict at an endpoint, with the lookups the datapath makes. */
export function allowsAt(maps: DirectionMaps, ipcache: ReadonlyMap<string, number> | undefined, peerIp: string, protocol: Protocol, port: number): boolean {
  if (!maps.isolated) return true;
  const proto = PROTO_NUMBER[protocol];
  const id = ipcache?.get(peerIp) ?? WORLD;
  if (maps.rules.lookup(ruleKey(id, proto, port))) return true;
  if (maps.rules.lookup(ruleKey(ANY_PEER, proto, port))) return true;
  const cls = maps.cidr.lookup(addrKey(parseIp(peerIp)));
  return cls !== undefined && maps.rules.lookup(ruleKey(cls, proto, port)) === true;
}

/** A connection's verdict from the compiled maps alone: the source's egress and the destination's ingress. */
export function verdict(c: Compiled, conn: Connection): boolean {
  const cache = c.ipcache.get(conn.network ?? '');
  const src = conn.src.pod && c.endpoints.get(endpointKey(conn.network, conn.src.pod));
  const dst = conn.dst.pod && c.endpoints.get(endpointKey(conn.network, conn.dst.pod));
  const egress = !src || allowsAt(src.egress, cache, conn.dst.ip, conn.protocol, conn.port);
  const ingress = !dst || allowsAt(dst.ingress, cache, conn.src.ip, conn.protocol, conn.port) || (conn.src.node === true && conn.network === undefined);
  return egress && ingress;
}
