/**
 * Finding room in a pool, in the order that costs the shared store least:
 * 1. grow the reserve of a block this node owns (one compare-and-swap for `growBy` addresses);
 * 2. claim a block nobody owns (one compare-and-swap, with an initial reserve);
 * 3. reclaim a block whose owner is dead (atomic with the check that its node record is gone; its held
 *    addresses are quarantined as foreign entries for GC, never handed out directly);
 * 4. borrow: a free address in another node's block that is outside its owner's reserve (unless the pool
 *    asks for strict affinity).
 */
import type { Family } from '../../core/address';
import { type Engine, geomOf } from './engine';
import { type BlockGeom, type Pool, blocksOf, nextUsable } from '../model/pool';
import type { BlockRecord, ForeignEntry, NodeRecord } from '../model/records';
import type { WriteOp } from '../stores/store';
import { candidates, firstCooled, takeN } from '../model/slot';

/** Ordinals of `key` no one may be handed: held, foreign, owned here, or with a change in flight. */
export function takenIn(e: Engine, key: string, cur: BlockRecord): (o: number) => boolean {
  const owned = e.book.ownedIn(key);
  return (o) => cur.held[o] !== undefined || cur.foreign[o] !== undefined || owned.has(o) || e.blocks.isLeaving(key, o);
}

/**
 * Add up to `growBy` addresses (plus `want`) to the reserve of an owned block. True if it grew. Addresses
 * released after `cooledBy` (still cooling down) are not added.
 */
export async function grow(e: Engine, key: string, want: number[] = [], cooledBy = Infinity): Promise<boolean> {
  const g = geomOf(e, key);
  const count = growCount(e, g);
  let grew = false;
  await e.blocks.update(key, (cur) => {
    grew = false;
    if (!cur || cur.owner !== e.node) return { next: undefined };
    const taken = takenIn(e, key, cur);
    const add = new Set(want.filter((o) => !taken(o)));
    for (const o of takeN(candidates(g, e.book.slot(key, g.pool), taken, cooledBy), count - add.size)) add.add(o);
    if (add.size === 0) return { next: undefined };
    for (const o of add) cur.held[o] = '';
    grew = true;
    return { next: cur };
  });
  return grew;
}

/**
 * growBy, or more while many requests wait for room (a burst then costs one shared write, not many), or
 * while the lane's background refills cannot keep up with demand (allocator.ts refillSoon).
 */
function growCount(e: Engine, g: BlockGeom): number {
  const lane = `${g.pool}/${g.family}`;
  return Math.max(e.opts.growBy, 2 * (e.blocks.waiting.get(lane) ?? 0), e.blocks.refillSize.get(lane) ?? 0);
}

/**
 * Grow an owned block of the pool that still has free addresses (not cooling down, unless anyAge). Looks
 * only at the blocks the room index holds; one found without room is parked until a released address
 * outside its reserve cools down.
 */
export async function growSome(e: Engine, pool: Pool, family: Family, anyAge = false): Promise<boolean> {
  const now = e.now();
  const cooledBy = anyAge ? Infinity : now - e.opts.cooldownMs;
  const index = e.blocks.room.lane(`${pool.name}/${family}`);
  for (const key of index.candidates(now, anyAge)) {
    const cur = e.blocks.get(key);
    if (!cur || cur.value.owner !== e.node || !e.blocks.hasRoom(key)) {
      index.park(key, Infinity);
      continue;
    }
    const g = geomOf(e, key);
    const slot = e.book.slot(key, pool.name);
    const taken = takenIn(e, key, cur.value);
    if (candidates(g, slot, taken, cooledBy).next().done) {
      const at = anyAge ? Infinity : firstCooled(slot, e.opts.cooldownMs, (o) => !taken(o));
      index.park(key, at <= now ? Infinity : at);
      continue;
    }
    if (await grow(e, key, [], cooledBy)) return true;
  }
  return false;
}

function initialHeld(e: Engine, g: BlockGeom, foreign: Record<string, ForeignEntry>): Record<string, string> {
  const held: Record<string, string> = {};
  // A scratch slot unless we already have one: a claim that loses the race must leave no trace in the book.
  const slot = e.book.hasSlot(g.key) ? e.book.slot(g.key, g.pool) : { pool: g.pool, cursor: 0, queue: [] };
  for (const o of takeN(candidates(g, slot, (x) => foreign[x] !== undefined), growCount(e, g))) held[o] = '';
  return held;
}

/**
 * Take affinity of a block: first one nobody owns that exists (foreign entries only), then a new one. Works
 * from the cache: a block claimed by someone we did not know of fails its create-compare and is read then.
 */
export async function claimBlock(e: Engine, pool: Pool, family: Family): Promise<boolean> {
  const take = async (g: BlockGeom, mustExist: boolean): Promise<boolean> => {
    const v = await e.blocks.update(g.key, (cur) => {
      if (mustExist ? cur?.owner !== null : cur !== undefined) return { next: undefined };
      const foreign = cur?.foreign ?? {};
      const held = initialHeld(e, g, foreign);
      if (Object.keys(held).length === 0) return { next: undefined };
      return { next: { pool: pool.name, owner: e.node, inc: e.inc, held, foreign } };
    });
    return v?.value.owner === e.node;
  };
  for (const key of e.blocks.keys()) {
    const g = e.blocks.geom(key);
    if (g && g.pool === pool.name && g.family === family && e.blocks.get(key)?.value.owner === null && (await take(g, true))) return true;
  }
  for (const g of blocksOf(pool, family)) {
    if (e.blocks.get(g.key)) continue;
    if (await take(g, false)) return true;
  }
  return false;
}

/**
 * Whether incarnation `inc` of `node` is dead: the node has no registration, or is registered as another
 * incarnation (re-created with a new disk). `check` is the op that makes acting on the answer atomic.
 */
export async function assessNode(e: Engine, node: string, inc: string | undefined): Promise<{ dead: boolean; check?: WriteOp }> {
  if (node === e.node) return { dead: inc !== undefined && inc !== e.inc };
  const rec = await e.shared.get<NodeRecord>('node', node);
  if (!rec) return { dead: true, check: { op: 'check', kind: 'node', key: node, rev: 0 } };
  if (inc === undefined || rec.value.token === inc) return { dead: false };
  return { dead: true, check: { op: 'check', kind: 'node', key: node, rev: rec.rev } };
}

/** The held addresses of a dead owner, quarantined as foreign entries under its name. */
export function quarantineHeld(cur: BlockRecord, now: number): Record<string, ForeignEntry> {
  const foreign = { ...cur.foreign };
  for (const [o, pod] of Object.entries(cur.held)) {
    foreign[o] = { node: cur.owner as string, ...(pod ? { pod } : {}), lost: now, ...(cur.inc ? { inc: cur.inc } : {}) };
  }
  return foreign;
}

/** Take over one block of the pool whose owner is dead. Returns the keys taken (at most one unless `all`). */
export async function reclaimBlocks(e: Engine, pool: Pool, family: Family | undefined, all = false): Promise<string[]> {
  const out: string[] = [];
  for (const key of e.blocks.keys()) {
    const g = e.blocks.geom(key);
    const blk = e.blocks.get(key)?.value;
    const owner = blk?.owner;
    if (!g || !blk || g.pool !== pool.name || (family && g.family !== family) || !owner || owner === e.node) continue;
    if (!(await assessNode(e, owner, blk.inc)).dead) continue;
    const v = await e.blocks.update(key, async (cur) => {
      if (!cur || cur.owner !== owner) return { next: undefined };
      const d = await assessNode(e, owner, cur.inc);
      if (!d.dead) return { next: undefined };
      return {
        next: { pool: pool.name, owner: e.node, inc: e.inc, held: {}, foreign: quarantineHeld(cur, e.now()) },
        extra: d.check ? [d.check] : [],
      };
    });
    if (v?.value.owner === e.node) {
      out.push(key);
      if (!all) break;
    }
  }
  return out;
}

/**
 * Foreign entries made by nodes that are now dead (a borrowed or requested address of a pod that died with
 * its node) are quarantined like a dead owner's held addresses. Fixed ones stay as they are: they belong to
 * their claim (S38), and the next pod using the claim takes them over.
 */
export async function quarantineDeadForeign(e: Engine): Promise<number> {
  const cache = new Map<string, Promise<{ dead: boolean; check?: WriteOp }>>();
  const state = (node: string, inc: string | undefined) => {
    const id = `${node}\0${inc ?? ''}`;
    if (!cache.has(id)) cache.set(id, assessNode(e, node, inc));
    return cache.get(id) as Promise<{ dead: boolean; check?: WriteOp }>;
  };
  let n = 0;
  for (const key of e.blocks.keys()) {
    const cur = e.blocks.get(key)?.value;
    if (!cur) continue;
    let any = false;
    for (const ent of Object.values(cur.foreign)) {
      if (ent.lost === undefined && !ent.fixed && (await state(ent.node, ent.inc)).dead) any = true;
    }
    if (!any) continue;
    await e.blocks.update(key, async (c) => {
      if (!c) return { next: undefined };
      const checks = new Map<string, WriteOp>();
      let changed = false;
      for (const ent of Object.values(c.foreign)) {
        if (ent.lost !== undefined || ent.fixed) continue;
        const d = await state(ent.node, ent.inc);
        if (!d.dead) continue;
        ent.lost = e.now();
        if (d.check) checks.set(ent.node, d.check);
        changed = true;
      }
      if (!changed) return { next: undefined };
      n++;
      return { next: c, extra: [...checks.values()] };
    });
  }
  return n;
}

/** A free address of this node's own blocks (reserve first), for addresses that must live in the shared store. */
export function findOwnTarget(e: Engine, pool: Pool, family: Family): { g: BlockGeom; o: number } | undefined {
  let fallback: { g: BlockGeom; o: number } | undefined;
  for (const key of e.blocks.owned(pool.name, family)) {
    const cur = e.blocks.get(key);
    if (!cur) continue;
    const g = geomOf(e, key);
    const owned = e.book.ownedIn(key);
    const free = (o: number): boolean => cur.value.foreign[o] === undefined && !owned.has(o) && !e.blocks.isLeaving(key, o);
    for (const o of candidates(g, e.book.slot(key, pool.name), (o) => !free(o))) {
      if (cur.value.held[o] !== undefined) return { g, o };
      fallback ??= { g, o };
    }
  }
  return fallback;
}

/** A free address in another node's block, outside its reserve: borrowing. Blocks must be fresh (refreshPool). */
export function findBorrowTargets(e: Engine, pool: Pool, family: Family): { g: BlockGeom; o: number }[] {
  const out: { g: BlockGeom; o: number }[] = [];
  for (const key of e.blocks.keys()) {
    const g = e.blocks.geom(key);
    const cur = e.blocks.get(key)?.value;
    if (!g || !cur || g.pool !== pool.name || g.family !== family || cur.owner === e.node) continue;
    for (let o = nextUsable(g, 0); o >= 0; o = nextUsable(g, o + 1)) {
      if (cur.held[o] === undefined && cur.foreign[o] === undefined) {
        out.push({ g, o });
        break;
      }
    }
  }
  return out;
}
