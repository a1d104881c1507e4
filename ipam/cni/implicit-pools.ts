/**
 * The pools that networks with inline ranges imply (host-local `ranges`, Whereabouts `range`/`ipRanges`,
 * cni-ranges.ts), registered next to the configured pools.
 *
 * A pool is named after its definition, not after a network: `cni-<first CIDR>-<hash of the definition>`.
 * So two networks with identical ranges (the same CIDRs, bounds, gateways and exclusions, in any order)
 * allocate from one pool and never hand out one address twice, which is what Whereabouts users with two
 * NetworkAttachmentDefinitions over one range expect; and every node and every restart arrives at the same
 * name whichever network comes first. Ranges that overlap without being identical are refused, naming both
 * networks and the field: two pools over one address would hand it out twice.
 *
 * A network whose definition changes moves to another pool. The old one stays in force while it holds
 * addresses (its pods keep them; DEL, GC and status still see it) and is dropped once it holds none. A new
 * definition that overlaps addresses still held under another definition, here or in the shared store
 * (from before a restart, or another node's), is refused until those pods are gone.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { PlexusError, context, errorText } from '../../core/errors';
import { type Cidr, cidrsOverlap, compareIp, formatCidr, parseCidr, parseIp } from '../../core/address';
import type { InlinePool } from './ranges';
import type { PoolSpec } from '../model/pool';
import type { Ipam } from '../engine/ipam';

const bad = (field: string, msg: string): PlexusError => new PlexusError('InvalidConfig', `plexus-ipam: ${field} ${msg}`);

const cidrOrder = (a: string, b: string): number => {
  const [x, y] = [parseCidr(a), parseCidr(b)];
  return compareIp({ family: x.family, value: x.base }, { family: y.family, value: y.base }) || x.prefix - y.prefix;
};
const ipOrder = (a: string, b: string): number => compareIp(parseIp(a), parseIp(b));
const listOf = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? [...v] : [v]);

/** A definition with its lists in one order: identical sets of ranges are then identical definitions. */
function canonical(spec: Omit<PoolSpec, 'name'>): Omit<PoolSpec, 'name'> {
  const out: Omit<PoolSpec, 'name'> = { cidrs: [...spec.cidrs].sort(cidrOrder) };
  const [start, end, exclude] = [listOf(spec.rangeStart).sort(ipOrder), listOf(spec.rangeEnd).sort(ipOrder), listOf(spec.exclude).sort(cidrOrder)];
  if (start.length) out.rangeStart = start;
  if (end.length) out.rangeEnd = end;
  if (exclude.length) out.exclude = exclude;
  return out;
}

/** The implicit pool of a definition: readable (its first CIDR) and unique (a hash of all of it). */
export function implicitPoolSpec(inline: Pick<InlinePool, 'spec'>): PoolSpec {
  const spec = canonical(inline.spec);
  const hash = createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 10);
  const first = (spec.cidrs[0] ?? '').toLowerCase().replace(/[:/]/g, '-');
  return { name: `cni-${first}-${hash}`, ...spec };
}

/** Kept with the node's IPAM state, so a restarted daemon has them in force before the first request. */
const SAVED_KEY = 'implicit-pools';
interface Saved {
  pools: { spec: PoolSpec; networks: string[] }[];
}

interface Registered {
  spec: PoolSpec;
  /** Networks that allocate from it now (a network moves to another pool when its definition changes). */
  networks: Set<string>;
}

export interface PoolRef {
  name: string;
  spec: PoolSpec;
}

export class ImplicitPools {
  private readonly pools = new Map<string, Registered>();
  /** network -> the implicit pool it allocates from now */
  private readonly current = new Map<string, string>();
  /** Registration is check-then-set across awaits: one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ipam: Ipam,
    private readonly log: Logger,
  ) {}

  /**
   * After a restart: put the implicit pools registered before it back in force (they may hold addresses,
   * which GC and operators must see before the first request). One that no longer fits beside the pools
   * configured now is reported and left out; the next ADD of its network decides again.
   */
  restore(): Promise<void> {
    const run = this.queue.then(async () => {
      const saved = await this.ipam.readNodeMeta<Saved>(SAVED_KEY);
      for (const { spec, networks } of saved?.pools ?? []) {
        if (!this.ipam.poolSpec(spec.name)) {
          try {
            this.ipam.setPools([...this.ipam.poolSpecs(), spec]);
          } catch (err) {
            this.log.warn({ pool: spec.name, networks, err: errorText(err) }, 'implicit IPAM pool not restored');
            continue;
          }
        }
        const inForce = this.ipam.poolSpec(spec.name) as PoolSpec;
        this.pools.set(spec.name, { spec: inForce, networks: new Set() });
        for (const n of networks) this.join(n, spec.name, inForce);
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The implicit pools in force: whoever replaces the pool list (a config reload) keeps these. */
  specs(): PoolSpec[] {
    return [...this.pools.values()].map((r) => r.spec);
  }

  /** The network's pool for this definition: reused when it is in force, else registered. */
  poolFor(network: string, inline: InlinePool): Promise<PoolRef> {
    const spec = implicitPoolSpec(inline);
    const mine = this.pools.get(spec.name);
    // Fast path: in force (a config reload replaces the whole pool list), and the network already uses it.
    if (mine && this.ipam.poolSpec(spec.name) === mine.spec && this.current.get(network) === spec.name) {
      return Promise.resolve({ name: spec.name, spec: mine.spec });
    }
    const run = this.queue.then(() => this.register(network, inline, spec));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async register(network: string, inline: InlinePool, spec: PoolSpec): Promise<PoolRef> {
    const name = spec.name;
    const inForce = this.ipam.poolSpec(name);
    const mine = this.pools.get(name);
    if (inForce && (inForce === mine?.spec || JSON.stringify(inForce) === JSON.stringify(spec))) {
      const joined = this.current.get(network) !== name || !mine;
      this.join(network, name, inForce);
      if (joined) await this.save();
      return { name, spec: inForce };
    }
    if (inForce) {
      throw bad('name', `${JSON.stringify(network)}: its implicit pool name ${name} is taken by a configured pool; allocate from it with "pool": "${name}" or rename the pool`);
    }
    const cidrs = spec.cidrs.map((c) => parseCidr(c));
    const drop = await this.checkOverlaps(network, inline, spec, cidrs);
    await this.checkHeldElsewhere(network, inline, spec, cidrs, drop);
    try {
      this.ipam.setPools([...this.ipam.poolSpecs().filter((p) => !drop.has(p.name)), spec]);
    } catch (err) {
      throw context(err, `plexus-ipam: failed to register the implicit pool of network "${network}"`);
    }
    for (const d of drop) this.pools.delete(d);
    this.join(network, name, spec);
    await this.save();
    const moved = drop.size > 0 ? [...drop] : undefined;
    this.log.info({ network, pool: name, cidrs: spec.cidrs, replaces: moved }, 'implicit IPAM pool registered');
    return { name, spec };
  }

  /** Failing to keep the list costs only its restoring after a restart (the next ADD registers again). */
  private async save(): Promise<void> {
    const value: Saved = { pools: [...this.pools.values()].map((r) => ({ spec: r.spec, networks: [...r.networks].sort() })) };
    await this.ipam.writeNodeMeta(SAVED_KEY, value).catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'implicit IPAM pools not saved'));
  }

  private join(network: string, name: string, spec: PoolSpec): void {
    const before = this.current.get(network);
    if (before !== undefined && before !== name) this.pools.get(before)?.networks.delete(network);
    const reg = this.pools.get(name);
    if (reg) {
      reg.spec = spec;
      reg.networks.add(network);
    } else this.pools.set(name, { spec, networks: new Set([network]) });
    this.current.set(network, name);
  }

  /**
   * Pools in force that overlap the new one. A configured pool, or an implicit pool other networks use,
   * is an error. An implicit pool no other network uses (this network's previous definition, or nobody's)
   * is dropped when it holds nothing, else the change is refused. Returns the pools to drop.
   */
  private async checkOverlaps(network: string, inline: InlinePool, spec: PoolSpec, cidrs: Cidr[]): Promise<Set<string>> {
    const drop = new Set<string>();
    for (const other of this.ipam.poolSpecs()) {
      const clash = other.cidrs.map((c) => parseCidr(c)).find((c) => cidrs.some((x) => cidrsOverlap(x, c)));
      const reg = this.pools.get(other.name);
      const users = reg ? [...reg.networks].filter((n) => n !== network) : [];
      // An implicit pool no other network uses goes once it holds nothing, overlapping the new one or not.
      if (reg && users.length === 0 && (clash || reg.networks.size === 0)) {
        const held = await this.heldIn(other);
        if (held === 0) drop.add(other.name);
        else if (clash && reg.networks.has(network)) throw redefined(network, inline, reg.spec, spec, held);
        else if (clash) throw stillHeld(network, inline, spec, other.name, held, 'a range no network uses any more');
        continue;
      }
      if (!clash) continue;
      const r = inline.ranges.find((x) => cidrsOverlap(x.subnet, clash));
      const [field, text] = r ? [r.subnetField, formatCidr(r.subnet)] : [inline.fields.cidrs, spec.cidrs.join(', ')];
      if (!reg) {
        throw bad(field, `${text} of network "${network}" overlaps configured pool "${other.name}" (${formatCidr(clash)}); allocate from it with "pool": "${other.name}" instead`);
      }
      throw bad(
        field,
        `${text} of network "${network}" overlaps the range of network${users.length > 1 ? 's' : ''} ${users.map((n) => `"${n}"`).join(', ')} ` +
          `(implicit pool ${other.name}, ${formatCidr(clash)}): networks share addresses only when their ranges are identical ` +
          '(the same subnets, range bounds, gateways and exclusions); make them identical, or allocate from a configured pool',
      );
    }
    return drop;
  }

  /** Addresses inside the new ranges held under a pool not in force here (an earlier definition, another node's). */
  private async checkHeldElsewhere(network: string, inline: InlinePool, spec: PoolSpec, cidrs: Cidr[], drop: Set<string>): Promise<void> {
    const inForce = new Set(this.ipam.poolSpecs().map((p) => p.name).filter((n) => !drop.has(n)));
    for (const [pool, n] of await this.ipam.heldIn(cidrs.map(formatCidr))) {
      if (pool !== spec.name && !inForce.has(pool)) throw stillHeld(network, inline, spec, pool, n, 'an earlier definition of a range, here or on another node');
    }
  }

  /** Addresses of pool `p` held anywhere (this node's pods, other nodes' reserves and entries). */
  private async heldIn(p: PoolSpec): Promise<number> {
    return (await this.ipam.heldIn(p.cidrs)).get(p.name) ?? 0;
  }
}

function redefined(network: string, inline: InlinePool, previous: PoolSpec, next: PoolSpec, inUse: number): PlexusError {
  const fields = ['cidrs', 'rangeStart', 'rangeEnd', 'exclude'] as const;
  const show = (v: unknown): string => (v === undefined ? 'unset' : Array.isArray(v) ? v.join(', ') : String(v));
  const f = fields.find((k) => JSON.stringify(previous[k]) !== JSON.stringify(next[k])) ?? 'cidrs';
  return bad(
    inline.fields[f],
    `of network "${network}" changed (${show(previous[f])} -> ${show(next[f])}) while ${inUse} addresses of its implicit pool ${previous.name} are allocated; ` +
      'delete the pods on this network first, or keep the old definition',
  );
}

function stillHeld(network: string, inline: InlinePool, spec: PoolSpec, pool: string, n: number, what: string): PlexusError {
  return bad(
    inline.fields.cidrs,
    `of network "${network}" (${spec.cidrs.join(', ')}) overlaps ${n} addresses still held in pool ${pool} (${what}); ` +
      'delete the pods using them first, or keep that definition',
  );
}
