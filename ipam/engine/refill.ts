/** Refilling a node's reserve in the background, before it runs dry. */
import type { Family } from '../../core/address';
import { type Engine, geomOf, withLane } from './engine';
import { type Pool, usableCount } from '../model/pool';
import { claimBlock, grow } from './space';

/**
 * Keep the reserve ahead of demand (D-6 in docs/decisions.md): when block `key` (just used) has less than
 * two reserves' worth of addresses left, grow it in the background, or, when it has no room left and no
 * other block of the lane has anything, claim the next block. Callers at low concurrency then never wait
 * for a synced shared write, which costs more than ten fast-path allocations; it is the write the next
 * slow path would have made, only earlier. One refill per lane at a time; errors are left to that slow
 * path. A block no bigger than two reserves is claimed when needed, not ahead: early, it would take a
 * share of a small pool this node may never use.
 */
export function refillSoon(e: Engine, pool: Pool, family: Family, key: string): void {
  const id = `${pool.name}/${family}`;
  const spare = (k: string): number => e.blocks.heldCount(k) - e.book.ownedIn(k).size;
  const claim = !e.blocks.hasRoom(key);
  // Two reserves of warning: a slow fdatasync must not run the reserve dry.
  const low = 2 * e.opts.growBy;
  if (e.blocks.refilling.has(id) || !e.leaseValid() || spare(key) >= low) return;
  if (claim && (usableCount(geomOf(e, key)) <= low || laneHasMore(e, id, key))) return;
  const run = withLane(e, pool, family, async () => {
    if (spare(key) >= low || !e.leaseValid()) return;
    const before = e.book.ownedIn(key).size;
    if (!claim) await grow(e, key, [], e.now() - e.opts.cooldownMs);
    else if (!laneHasMore(e, id, key)) await claimBlock(e, pool, family);
    // What was handed out while this waited for its write: the next refill adds twice that (up to 8 x
    // growBy), so a slow disk does not run the reserve dry; it falls back to growBy as demand does.
    const during = e.book.ownedIn(key).size - before;
    e.blocks.refillSize.set(id, Math.min(8 * e.opts.growBy, Math.max(e.opts.growBy, 2 * during)));
  }).catch(() => undefined).finally(() => e.blocks.refilling.delete(id));
  e.blocks.refilling.set(id, run);
}

/**
 * Whether another block of the lane may still have reserve or room. Blocks found with neither are parked
 * until they change, so each is looked at once per change, not once per allocation.
 */
function laneHasMore(e: Engine, lane: string, except: string): boolean {
  for (const index of [e.blocks.reserve.lane(lane), e.blocks.room.lane(lane)]) {
    for (const k of index.readyKeys()) {
      if (k === except) continue;
      index.examined++;
      if (e.blocks.heldCount(k) > e.book.ownedIn(k).size || e.blocks.hasRoom(k)) return true;
      index.park(k, Infinity);
    }
  }
  return false;
}
