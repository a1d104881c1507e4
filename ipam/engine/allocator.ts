/**
 * Handing out one address of one family from one pool. Three ways, by what the address must survive:
 * - any address: from this node's reserve without touching the shared store (the fast path), growing the
 *   reserve, claiming or reclaiming a block, or borrowing when needed;
 * - a specific address (`ips`): from the reserve if it is there, else through the shared store, and a clear
 *   conflict naming the address, the pool and the holder when someone has it;
 * - a fixed address (IPAMClaim, S37-S38, or a sticky StatefulSet pod): always a foreign entry in the shared
 *   store plus a fixed record, because it must outlive this node and this pod.
 */
import { PlexusError } from '../../core/errors';
import { type Family, type Ip, formatIp } from '../../core/address';
import { type Engine, conflict, emptyBlock, exhausted, geomOf, holderOf, withLane } from './engine';
import { podKeyOf } from './node-book';
import { type BlockGeom, type Pool, blockOfIp, ipOf, isUsable, ordinalOf } from '../model/pool';
import type { FixedAddress, FixedRecord, ForeignEntry, PodAddress } from '../model/records';
import { refillSoon } from './refill';
import { findBorrowTargets, claimBlock, grow, growSome, findOwnTarget, reclaimBlocks } from './space';
import { candidates, firstCooled, firstMatching, markTaken } from '../model/slot';
import type { WriteOp } from '../stores/store';

export interface AddressRequest {
  readonly pod: { readonly namespace: string; readonly name: string; readonly uid?: string };
  readonly containerId: string;
  readonly ifName: string;
  readonly network: string;
  readonly pool: Pool;
}

const ROUNDS = 8;

/** Raised inside a compare-and-swap loop when the world changed so that the whole step must start over. */
class StartOver extends Error {}

function addressFor(req: AddressRequest, g: BlockGeom, o: number, via: PodAddress['via'], fixed?: string): PodAddress {
  const a: PodAddress = {
    ip: formatIp(ipOf(g, o)), prefixLength: g.subnet.cidr.prefix, family: g.family, pool: g.pool, network: req.network,
    block: g.key, ordinal: o, containerId: req.containerId, ifName: req.ifName, via,
  };
  if (fixed) a.fixed = fixed;
  return a;
}

/** Book ordinal `o` of an owned block, which must be in its reserve. Synchronous: nothing can interleave. */
function bookOwn(e: Engine, req: AddressRequest, g: BlockGeom, o: number): PodAddress {
  // The slot's change is not written now: the pod record makes `o` taken after any restart, so an older
  // cursor or a queue that still lists `o` picks the same next address. The next release writes it.
  markTaken(e.book.slot(g.key, g.pool), o);
  e.book.lastActive.set(g.key, e.now());
  const addr = addressFor(req, g, o, 'own');
  e.book.addAddress(req.pod, addr);
  return addr;
}

/**
 * The fast path: an address from the reserve of an owned block, with no I/O at all. Unless `anyAge`,
 * addresses released less than cooldownMs ago are left for later. It looks at the block it used last, then
 * at the blocks the reserve index says may have something (block-index.ts), never at every owned block:
 * a block found with nothing usable is parked until its first released address cools down.
 */
export function tryReserve(e: Engine, req: AddressRequest, family: Family, anyAge = false): PodAddress | undefined {
  if (!e.leaseValid()) return undefined;
  const now = e.now();
  const cooledBy = anyAge ? Infinity : now - e.opts.cooldownMs;
  const lane = `${req.pool.name}/${family}`;
  const index = e.blocks.reserve.lane(lane);
  const hint = e.blocks.hint.get(lane);
  if (hint !== undefined && index.has(hint)) {
    const got = reserveOf(e, req, hint, cooledBy);
    if (got) return got;
  }
  for (const key of index.candidates(now, anyAge)) {
    const got = reserveOf(e, req, key, cooledBy);
    if (got) {
      e.blocks.hint.set(lane, key);
      return got;
    }
    index.park(key, anyAge ? Infinity : reserveCoolsAt(e, key, now));
  }
  return undefined;
}

/** When a reserve address of `key` that is cooling down now may be handed out; Infinity if none is. */
function reserveCoolsAt(e: Engine, key: string, now: number): number {
  const blk = e.blocks.get(key)?.value;
  const slot = blk?.owner === e.node && e.book.hasSlot(key) ? e.book.slot(key, blk.pool) : undefined;
  if (!blk || !slot) return Infinity;
  const owned = e.book.ownedIn(key);
  const at = firstCooled(slot, e.opts.cooldownMs, (o) => blk.held[o] !== undefined && !owned.has(o));
  // Already cooled yet not handed out: it is in flight or unusable; a change to the block will wake it.
  return at <= now ? Infinity : at;
}

/** An address from the reserve of owned block `key`, booked for `req`, or undefined if it has none free. */
function reserveOf(e: Engine, req: AddressRequest, key: string, cooledBy: number): PodAddress | undefined {
  const blk = e.blocks.get(key)?.value;
  const owned = e.book.ownedIn(key);
  if (!blk || blk.owner !== e.node || e.blocks.heldCount(key) <= owned.size) return undefined;
  const g = geomOf(e, key);
  const taken = (o: number): boolean => owned.has(o) || e.blocks.isLeaving(key, o);
  const o = firstMatching(candidates(g, e.book.slot(key, g.pool), taken, cooledBy), (x) => blk.held[x] !== undefined);
  return o === undefined ? undefined : bookOwn(e, req, g, o);
}

export async function allocateAny(e: Engine, req: AddressRequest, family: Family): Promise<PodAddress> {
  const fast = tryReserve(e, req, family);
  if (fast) {
    refillSoon(e, req.pool, family, fast.block);
    return fast;
  }
  const id = `${req.pool.name}/${family}`;
  e.blocks.waiting.set(id, (e.blocks.waiting.get(id) ?? 0) + 1);
  try {
    return await slowPath(e, req, family);
  } finally {
    e.blocks.waiting.set(id, (e.blocks.waiting.get(id) ?? 1) - 1);
  }
}

function slowPath(e: Engine, req: AddressRequest, family: Family): Promise<PodAddress> {
  return withLane(e, req.pool, family, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      await e.ensureLease();
      const got = tryReserve(e, req, family);
      if (got) return got;
      if (await growSome(e, req.pool, family)) continue;
      if (await claimBlock(e, req.pool, family)) continue;
      // No fresh room left in the pool's free blocks: now recently released addresses may go again.
      const recent = tryReserve(e, req, family, true);
      if (recent) return recent;
      if (await growSome(e, req.pool, family, true)) continue;
      // The rare paths need the whole pool as it is now, not as this node last saw it, and every owned
      // block looked at again, not only the ones the indexes hold.
      await e.blocks.refreshPool(req.pool.name);
      e.blocks.reindex(req.pool.name, family);
      const late = tryReserve(e, req, family, true);
      if (late) return late;
      if (await growSome(e, req.pool, family, true)) continue;
      if (await claimBlock(e, req.pool, family)) continue;
      if ((await reclaimBlocks(e, req.pool, family)).length) continue;
      if (req.pool.strictAffinity) throw exhausted(req.pool, family, ' in blocks of this node (strictAffinity)');
      for (const t of findBorrowTargets(e, req.pool, family)) {
        const b = await takeShared(e, req, t.g, t.o).catch(skipConflict);
        if (b) return b;
      }
      throw exhausted(req.pool, family, '; addresses may be in other nodes\' reserves, which shrink when idle');
    }
    throw new PlexusError('StoreConflict', `pool ${req.pool.name} kept changing while allocating (${ROUNDS} rounds)`);
  });
}

const skipConflict = (err: unknown): undefined => {
  if (err instanceof PlexusError && err.kind === 'AddressConflict') return undefined;
  throw err;
};

/**
 * Hold ordinal `o` of block `g` through the shared store (a foreign entry), in the same commit as `extra`.
 * An entry that is already ours (a retried commit whose answer was lost) counts as success.
 */
export async function takeShared(
  e: Engine, req: AddressRequest, g: BlockGeom, o: number, fixed?: string, extra?: () => Promise<WriteOp[]>,
): Promise<PodAddress> {
  const entry: ForeignEntry = { node: e.node, inc: e.inc, pod: podKeyOf(req.pod), cid: req.containerId, ifn: req.ifName };
  if (fixed) entry.fixed = fixed;
  e.blocks.setLeaving(g.key, [o], true);
  try {
    await e.blocks.update(g.key, async (cur) => {
      const mine = cur?.foreign[o];
      if (mine && mine.node === e.node && mine.inc === e.inc && mine.cid === entry.cid && mine.ifn === entry.ifn && mine.fixed === fixed && mine.lost === undefined) {
        return { next: undefined };
      }
      // On an owned block, holderOf only counts addresses handed out: our unused reserve may move to foreign.
      const holder = holderOf(e, g.key, cur, o);
      if (holder) throw conflict(formatIp(ipOf(g, o)), g.pool, holder);
      const next = cur ?? emptyBlock(g.pool);
      delete next.held[o];
      next.foreign[o] = entry;
      return { next, extra: extra ? await extra() : [] };
    });
  } finally {
    e.blocks.setLeaving(g.key, [o], false);
  }
  const addr = addressFor(req, g, o, 'shared', fixed);
  e.book.addAddress(req.pod, addr);
  return addr;
}

/** A specific address, e.g. from the `ips` annotation or runtimeConfig.ips. */
export async function allocateIp(e: Engine, req: AddressRequest, ip: Ip): Promise<PodAddress> {
  const text = formatIp(ip);
  const g = blockOfIp(req.pool, ip);
  if (!g) throw new PlexusError('InvalidConfig', `address ${text} is not in pool ${req.pool.name}`);
  const o = ordinalOf(g, ip);
  if (!isUsable(g, o)) {
    throw new PlexusError('AddressConflict', `address ${text} in pool ${req.pool.name} is excluded, a gateway, or outside the pool's range`);
  }
  await e.ensureLease();
  for (let round = 0; round < ROUNDS; round++) {
    const cur = (await e.blocks.reread(g.key))?.value;
    if (cur === undefined) {
      // Nobody has the block yet: take affinity of it, like any other claim, with this address reserved.
      await e.blocks.update(g.key, (c) => (c ? { next: undefined } : { next: { pool: g.pool, owner: e.node, inc: e.inc, held: { [o]: '' }, foreign: {} } }));
      continue;
    }
    const holder = holderOf(e, g.key, cur, o);
    if (holder) throw conflict(text, req.pool.name, holder);
    if (cur.owner !== e.node) return takeShared(e, req, g, o);
    // A change of ours is in flight on this address (a reserve shrink): wait for it to finish.
    if (e.blocks.isLeaving(g.key, o)) await e.blocks.withLock(g.key, async () => undefined);
    if (cur.held[o] === undefined && !(await grow(e, g.key, [o]))) continue;
    if (e.blocks.get(g.key)?.value.held[o] !== undefined && !e.blocks.isLeaving(g.key, o) && !e.book.ownedIn(g.key).has(o)) {
      return bookOwn(e, req, g, o);
    }
  }
  throw new PlexusError('StoreConflict', `address ${text} in pool ${req.pool.name} kept changing hands (${ROUNDS} rounds)`);
}

/** Where a new fixed address goes: own blocks first, then a claimed or reclaimed block, then borrowing. */
async function fixedTarget(e: Engine, pool: Pool, family: Family): Promise<{ g: BlockGeom; o: number }> {
  return withLane(e, pool, family, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const own = findOwnTarget(e, pool, family);
      if (own) return own;
      if (await claimBlock(e, pool, family)) continue;
      await e.blocks.refreshPool(pool.name);
      if (await claimBlock(e, pool, family)) continue;
      if ((await reclaimBlocks(e, pool, family)).length) continue;
      if (pool.strictAffinity) break;
      const [b] = findBorrowTargets(e, pool, family);
      if (b) return b;
      break;
    }
    throw exhausted(pool, family);
  });
}

/** The address of claim/sticky `key` for this pool and family: the one it has, or a new one for good. */
export async function allocateFixed(e: Engine, req: AddressRequest, family: Family, key: string): Promise<PodAddress> {
  for (let round = 0; round < ROUNDS; round++) {
    const rec = await e.shared.get<FixedRecord>('fixed', key);
    const have = rec?.value.addresses.find((a) => a.pool === req.pool.name && a.family === family);
    if (have) return attachFixed(e, req, have, key);
    const t = await fixedTarget(e, req.pool, family);
    const [type, rest] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
    const fa: FixedAddress = { pool: req.pool.name, family, block: t.g.key, ordinal: t.o, ip: formatIp(ipOf(t.g, t.o)) };
    const extra = async (): Promise<WriteOp[]> => {
      const now = await e.shared.get<FixedRecord>('fixed', key);
      if ((now?.rev ?? 0) !== (rec?.rev ?? 0)) throw new StartOver();
      const base: FixedRecord = now?.value ??
        { type: type as FixedRecord['type'], namespace: rest.slice(0, rest.indexOf('/')), name: rest.slice(rest.indexOf('/') + 1), addresses: [] };
      return [{ op: 'put', kind: 'fixed', key, value: { ...base, addresses: [...base.addresses, fa] }, rev: now?.rev ?? 0 }];
    };
    try {
      return await takeShared(e, req, t.g, t.o, key, extra);
    } catch (err) {
      if (!(err instanceof StartOver) && !(err instanceof PlexusError && err.kind === 'AddressConflict')) throw err;
    }
  }
  throw new PlexusError('StoreConflict', `${key} kept changing while allocating (${ROUNDS} rounds)`);
}

/** Attach an existing fixed address to this attachment (taking it over from an earlier one). */
async function attachFixed(e: Engine, req: AddressRequest, have: FixedAddress, key: string): Promise<PodAddress> {
  const g = geomOf(e, have.block);
  const entry: ForeignEntry = { node: e.node, inc: e.inc, pod: podKeyOf(req.pod), cid: req.containerId, ifn: req.ifName, fixed: key };
  await e.blocks.update(have.block, (cur) => {
    const ent = cur?.foreign[have.ordinal];
    if (ent && ent.fixed !== key) throw conflict(have.ip, have.pool, holderOf(e, have.block, cur, have.ordinal) ?? '?');
    if (ent && ent.node === entry.node && ent.inc === entry.inc && ent.cid === entry.cid && ent.ifn === entry.ifn && ent.pod === entry.pod) return { next: undefined };
    // A missing entry is repaired (a crash between writing the block and the fixed record), if still free.
    const holder = ent ? undefined : holderOf(e, have.block, cur, have.ordinal);
    if (holder) throw conflict(have.ip, have.pool, holder);
    const next = cur ?? emptyBlock(have.pool);
    next.foreign[have.ordinal] = entry;
    return { next };
  });
  const addr = addressFor(req, g, have.ordinal, 'shared', key);
  e.book.addAddress(req.pod, addr);
  return addr;
}
