/**
 * Read-only views for operators (`plexusctl ipam pools|blocks|pods`) and metrics. They read the shared
 * store afresh, so they show the cluster, not just this node's cache.
 */
import { type Cidr, type Family, cidrContains, cidrsOverlap, formatCidr, formatIp } from '../../core/address';
import type { Engine } from './engine';
import type { PoolUsage } from './metrics';
import { cidrOfKey } from './placement';
import { ipOf, poolCapacity } from '../model/pool';
import type { BlockRecord, ForeignEntry, PodRecord } from '../model/records';

export interface BlockView {
  key: string;
  pool: string;
  family: Family;
  cidr: string;
  owner: string | null;
  /** Addresses the owner holds (handed out or reserved), by ordinal -> holder pod ('' = reserve/unsynced). */
  held: number;
  /** For blocks of this node: addresses handed out here, and the unused reserve. */
  allocatedHere: number;
  reserve: number;
  foreign: { ip: string; entry: ForeignEntry }[];
}

export async function viewBlocks(e: Engine): Promise<BlockView[]> {
  for (const name of e.pools().keys()) await e.blocks.refreshPool(name);
  const out: BlockView[] = [];
  for (const key of e.blocks.keys().sort()) {
    const cur = e.blocks.get(key)?.value;
    const g = e.blocks.geom(key);
    if (!cur || !g) continue;
    const mine = cur.owner === e.node;
    const allocatedHere = mine ? e.book.ownedIn(key).size : 0;
    const held = Object.keys(cur.held).length;
    out.push({
      key, pool: g.pool, family: g.family, cidr: formatCidr(g.cidr), owner: cur.owner, held, allocatedHere,
      reserve: mine ? held - allocatedHere : 0,
      foreign: Object.entries(cur.foreign).map(([o, entry]) => ({
        ip: formatIp(ipOf(g, Number(o))),
        entry,
      })),
    });
  }
  return out;
}

export async function viewPools(e: Engine): Promise<PoolUsage[]> {
  const blocks = await viewBlocks(e);
  const here = e.book.allAddresses();
  const out: PoolUsage[] = [];
  for (const pool of e.pools().values()) {
    for (const family of pool.families) {
      const mine = blocks.filter((b) => b.pool === pool.name && b.family === family);
      const capacity = poolCapacity(pool, family);
      const heldShared = mine.reduce((n, b) => n + b.held + b.foreign.length, 0);
      out.push({
        pool: pool.name, family, capacity: capacity.toString(), blocks: mine.length,
        ownedBlocks: mine.filter((b) => b.owner === e.node).length, heldShared,
        allocatedHere: here.filter((a) => a.addr.pool === pool.name && a.addr.family === family).length,
        utilisation: capacity === 0n ? 0 : Number((BigInt(heldShared) * 1000000n) / capacity) / 1000000,
      });
    }
  }
  return out;
}

export function viewPods(e: Engine): PodRecord[] {
  return e.book.podKeys().sort().map((k) => structuredClone(e.book.pod(k) as PodRecord));
}

/**
 * Addresses in use inside `cidrs`, by pool, over every block in the shared store: pools configured on this
 * node or not (an earlier definition of an implicit pool, another node's). What a new pool over these
 * ranges would collide with. In this node's blocks that is what its book handed out; in other nodes'
 * blocks their whole held set (their reserves too: from here, a reserve address may be in use).
 */
export async function heldInRanges(e: Engine, cidrs: readonly Cidr[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const [key, v] of await e.shared.list<BlockRecord>('block')) {
    const blk = cidrOfKey(key);
    if (!blk || !cidrs.some((c) => cidrsOverlap(c, blk))) continue;
    const held = v.value.owner === e.node ? [...e.book.ownedIn(key).keys()].map(String) : Object.keys(v.value.held);
    let n = 0;
    for (const o of [...held, ...Object.keys(v.value.foreign)]) {
      const ip = { family: blk.family, value: blk.base + BigInt(o) };
      if (cidrs.some((c) => cidrContains(c, ip))) n++;
    }
    if (n > 0) out.set(v.value.pool, (out.get(v.value.pool) ?? 0) + n);
  }
  return out;
}
