/**
 * This node's view of the shared block records, and the one way it changes them: `update`, a
 * read-modify-compare-and-swap loop serialised per block within the process (so our own concurrent changes
 * do not fight over revisions) and retried against fresh reads when another node got there first.
 *
 * For blocks this node owns, the cache is exact for `owner` and `held` (only the owner changes them while it
 * is alive); `foreign` may lag, which is safe because the owner only hands out reserve (`held`) addresses
 * without a compare, and nobody else may add a foreign entry on a held address.
 */
import type { Family } from '../../core/address';
import { PlexusError } from '../../core/errors';
import { BlockIndex } from '../model/block-index';
import { type BlockGeom, type Pool, blockByKey, usableCount } from '../model/pool';
import type { BlockRecord } from '../model/records';
import type { Store, Versioned, WriteOp } from '../stores/store';

export interface BlockChange {
  /** The new record; null deletes it; undefined leaves it (and the commit) alone. */
  next: BlockRecord | null | undefined;
  /** Further ops for the same commit (a fixed record, a node-is-dead check). */
  extra?: WriteOp[];
}

export class SharedBlocks {
  private readonly cache = new Map<string, Versioned<BlockRecord>>();
  private readonly geoms = new Map<string, BlockGeom | null>();
  private readonly own = new Map<string, Set<string>>();
  private readonly ownSorted = new Map<string, string[]>();
  private readonly heldSize = new Map<string, number>();
  private readonly foreignSize = new Map<string, number>();
  private readonly usableSize = new Map<string, number>();
  /** pool/family -> the owned block an address last came from: where the fast path looks first. */
  readonly hint = new Map<string, string>();
  /** pool/family -> requests waiting for room: reserves grow by at least this much, so a burst costs one write. */
  readonly waiting = new Map<string, number>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Ordinals of owned blocks with a change in flight: the reserve fast path must not hand them out. */
  readonly leaving = new Map<string, Set<number>>();
  /** Owned blocks whose reserve may have an address to hand out (the fast path looks only at these). */
  readonly reserve = new BlockIndex();
  /** Owned blocks that may have addresses to add to their reserve (growing looks only at these). */
  readonly room = new BlockIndex();
  /** Lanes with a reserve refill running in the background (allocator.ts), and how much the next one adds. */
  readonly refilling = new Map<string, Promise<void>>();
  readonly refillSize = new Map<string, number>();

  constructor(
    private readonly store: Store,
    readonly node: string,
    private readonly pools: () => ReadonlyMap<string, Pool>,
    private readonly maxRetries = 20,
  ) {}

  get(key: string): Versioned<BlockRecord> | undefined {
    return this.cache.get(key);
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  geom(key: string): BlockGeom | undefined {
    let g = this.geoms.get(key);
    if (g === undefined) {
      const pool = this.pools().get(key.slice(0, key.indexOf(':')));
      g = (pool && blockByKey(pool, key)) ?? null;
      this.geoms.set(key, g);
    }
    return g ?? undefined;
  }

  /** Forget cached geometry (pools were reconfigured). */
  resetGeometry(): void {
    this.geoms.clear();
    this.usableSize.clear();
    // Re-index ownership: a block whose key no longer fits its pool (the pool's CIDRs changed) must leave
    // the owned lanes, or the allocator would ask for a geometry that no longer exists.
    this.own.clear();
    this.ownSorted.clear();
    this.hint.clear();
    this.reserve.clear();
    this.room.clear();
    for (const [k, v] of [...this.cache]) this.put(k, v);
  }

  /** Something about owned block `key` changed that may give it reserve or room: look at it again. */
  touch(key: string): void {
    const g = this.geom(key);
    if (!g || this.cache.get(key)?.value.owner !== this.node) return;
    const lane = `${g.pool}/${g.family}`;
    this.reserve.lane(lane).add(key);
    this.room.lane(lane).add(key);
  }

  /** Put every owned block of a lane back into both indexes (before the allocator gives up on a pool). */
  reindex(pool: string, family: Family): void {
    for (const key of this.owned(pool, family)) this.touch(key);
  }

  /** Keys of the blocks this node owns for a pool and family, in key order (cached: this is the hot path). */
  owned(pool: string, family: Family): readonly string[] {
    const lane = `${pool}/${family}`;
    let sorted = this.ownSorted.get(lane);
    if (!sorted) this.ownSorted.set(lane, (sorted = [...(this.own.get(lane) ?? [])].sort()));
    return sorted;
  }

  heldCount(key: string): number {
    return this.heldSize.get(key) ?? 0;
  }

  /** Whether a block has addresses that are neither held nor foreign (a cheap upper bound for growing). */
  hasRoom(key: string): boolean {
    let usable = this.usableSize.get(key);
    if (usable === undefined) {
      const g = this.geom(key);
      this.usableSize.set(key, (usable = g ? usableCount(g) : 0));
    }
    return this.heldCount(key) + (this.foreignSize.get(key) ?? 0) < usable;
  }

  isLeaving(key: string, o: number): boolean {
    return this.leaving.get(key)?.has(o) ?? false;
  }

  setLeaving(key: string, ords: Iterable<number>, on: boolean): void {
    let s = this.leaving.get(key);
    if (!s) this.leaving.set(key, (s = new Set()));
    for (const o of ords) if (on) s.add(o); else s.delete(o);
    if (s.size === 0) this.leaving.delete(key);
    if (!on) this.touch(key); // a change that did not commit gives its addresses back to the reserve
  }

  private put(key: string, v: Versioned<BlockRecord> | undefined): void {
    const g = this.geom(key);
    const idx = g ? `${g.pool}/${g.family}` : '';
    if (v) this.cache.set(key, v);
    else this.cache.delete(key);
    this.heldSize.set(key, v ? Object.keys(v.value.held).length : 0);
    this.foreignSize.set(key, v ? Object.keys(v.value.foreign).length : 0);
    let s = this.own.get(idx);
    const mine = v?.value.owner === this.node && g !== undefined;
    if (mine !== (s?.has(key) ?? false)) this.ownSorted.delete(idx);
    if (mine) {
      if (!s) this.own.set(idx, (s = new Set()));
      s.add(key);
      this.reserve.lane(idx).add(key);
      this.room.lane(idx).add(key);
    } else {
      s?.delete(key);
      this.reserve.lane(idx).remove(key);
      this.room.lane(idx).remove(key);
    }
  }

  async reread(key: string): Promise<Versioned<BlockRecord> | undefined> {
    const v = await this.store.get<BlockRecord>('block', key);
    this.put(key, v);
    return v;
  }

  /** Replace the cached records of one pool with what the store holds now. */
  async refreshPool(pool: string): Promise<void> {
    const all = await this.store.list<BlockRecord>('block', `${pool}:`);
    for (const k of this.keys()) if (k.startsWith(`${pool}:`) && !all.has(k)) this.put(k, undefined);
    for (const [k, v] of all) this.put(k, v);
  }

  /** Run `fn` alone among this process's changes to block `key`. */
  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  /**
   * Compare-and-swap loop on one block. `change` sees the current record and returns the new one; it may
   * throw to abort (a conflict error naming the holder, for example). A write is checked by the compare, but
   * a decision not to write (no change, or a throw) is only trusted when made on a fresh read: the cache may
   * lag behind other nodes' foreign entries. `trustCache` skips that re-read for decisions that only depend
   * on what the owner alone changes (its held set).
   * Returns the committed record, or the unchanged one when `change` chose not to write.
   */
  async update(
    key: string,
    change: (cur: BlockRecord | undefined, attempt: number) => BlockChange | Promise<BlockChange>,
    opts: { trustCache?: boolean } = {},
  ): Promise<Versioned<BlockRecord> | undefined> {
    return this.withLock(key, async () => {
      let cur = this.cache.get(key);
      let fresh = cur === undefined || opts.trustCache === true;
      if (cur === undefined) cur = await this.reread(key);
      for (let attempt = 0; attempt < this.maxRetries; attempt++) {
        let decided: BlockChange;
        try {
          decided = await change(cur && structuredClone(cur.value), attempt);
        } catch (err) {
          if (fresh) throw err;
          decided = { next: undefined };
        }
        const { next, extra = [] } = decided;
        if (next === undefined) {
          if (fresh) return cur;
          cur = await this.reread(key);
          fresh = true;
          continue;
        }
        const rev = cur?.rev ?? 0;
        const op: WriteOp = next === null
          ? { op: 'delete', kind: 'block', key, rev }
          : { op: 'put', kind: 'block', key, value: next, rev };
        if (next === null && rev === 0) return undefined;
        const res = await this.store.commit([op, ...extra]);
        if (res.ok) {
          const v = next === null ? undefined : { value: next, rev: res.rev };
          this.put(key, v);
          return v;
        }
        cur = await this.reread(key);
        fresh = true;
      }
      throw new PlexusError('StoreConflict', `block ${key} kept changing under us (${this.maxRetries} attempts)`);
    });
  }
}
