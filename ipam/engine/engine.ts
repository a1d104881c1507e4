/**
 * What the allocator, release, recovery and GC code share: the node, both stores, the caches, the clock.
 * Handlers receive this and return data (STYLE 4); only the Ipam class builds it.
 */
import type { Family } from '../../core/address';
import { PlexusError } from '../../core/errors';
import type { NodeBook } from './node-book';
import type { BlockGeom, Pool } from '../model/pool';
import type { BlockRecord, ForeignEntry } from '../model/records';
import type { SharedBlocks } from './shared-blocks';
import type { Store } from '../stores/store';

export interface EngineOptions {
  /** Addresses added to an owned block's reserve per shared write (the etcd writes/allocation lever). */
  growBy: number;
  /** A block with no allocation for this long gives its unused reserve back (ms, injected clock). */
  reserveIdleMs: number;
  /** A released address is not handed out again for this long while the pool has other room (ms). */
  cooldownMs: number;
  /** GC grace period (ms, injected clock). */
  graceMs: number;
}

export interface Engine {
  readonly node: string;
  /** This node's incarnation: its node store token, written into what it owns in the shared store. */
  readonly inc: string;
  readonly shared: Store;
  readonly book: NodeBook;
  readonly blocks: SharedBlocks;
  readonly pools: () => ReadonlyMap<string, Pool>;
  readonly now: () => number;
  /** Whether the node's registration is surely alive, so its reserve may be used without a compare. */
  readonly leaseValid: () => boolean;
  /** Re-register the node (and re-validate its blocks) if its registration lapsed. */
  readonly ensureLease: () => Promise<void>;
  readonly opts: EngineOptions;
}

/** Who holds ordinal `o` of a block, as far as the shared record and this node's book know; undefined = free. */
export function holderOf(e: Engine, key: string, cur: BlockRecord | undefined, o: number): string | undefined {
  if (!cur) return undefined;
  const f = cur.foreign[o];
  if (f) return describeForeign(f);
  if (cur.owner === e.node) {
    const pod = e.book.ownedIn(key).get(o);
    return pod === undefined ? undefined : `pod ${pod} on node ${e.node}`;
  }
  const h = cur.held[o];
  if (h === undefined) return undefined;
  return h ? `pod ${h} on node ${cur.owner}` : `node ${cur.owner} (reserved, not yet synced)`;
}

export function describeForeign(f: ForeignEntry): string {
  const who = f.fixed ? `${f.fixed.replace(':', ' ')}${f.pod ? ` (pod ${f.pod})` : ''}` : f.pod ? `pod ${f.pod}` : 'an unknown pod';
  const where = f.lost !== undefined ? `lost node ${f.node} (quarantined)` : `node ${f.node}`;
  return `${who} on ${where}`;
}

export const exhausted = (pool: Pool, family: Family, detail = ''): PlexusError =>
  new PlexusError('PoolExhausted', `pool ${pool.name} has no free ${family === 'v4' ? 'IPv4' : 'IPv6'} address${detail}`);

export const conflict = (ip: string, pool: string, holder: string): PlexusError =>
  new PlexusError('AddressConflict', `address ${ip} in pool ${pool} is already held by ${holder}`);

export const emptyBlock = (pool: string): BlockRecord => ({ pool, owner: null, held: {}, foreign: {} });

/** Run `fn` alone among this process's searches for room in one pool and family (a lane). */
export function withLane<T>(e: Engine, pool: Pool, family: Family, fn: () => Promise<T>): Promise<T> {
  return e.blocks.withLock(`lane:${pool.name}/${family}`, fn);
}

/** Geometry of a block key, which must belong to a configured pool. */
export function geomOf(e: Engine, key: string): BlockGeom {
  const g = e.blocks.geom(key);
  if (!g) throw new PlexusError('Internal', `block ${key} belongs to no configured pool`);
  return g;
}
