/**
 * Which address of an owned block to hand out next. Fresh addresses (never released here) come first,
 * scanning on from a cursor and wrapping around; released addresses come last, oldest release first (a FIFO
 * cooldown queue, not lowest-free), so a freed address is not handed out again at once: stale ARP and
 * conntrack entries and lagging DNS then point at nothing rather than at a new pod.
 */
import { type BlockGeom, isUsable, nextUsable } from './pool';
import type { SlotRecord } from './records';

/**
 * Free ordinals of a block in preference order. `taken(o)` covers held-by-anyone and in-flight changes.
 * With `cooledBy`, addresses released after that time (still cooling down) are left out.
 */
export function* candidates(g: BlockGeom, slot: SlotRecord, taken: (o: number) => boolean, cooledBy = Infinity): Generator<number> {
  const queued = queuedOf(slot);
  const start = slot.cursor % g.size;
  for (const [from, to] of [[start, g.size], [0, start]] as const) {
    for (let o = nextUsable(g, from); o >= 0 && o < to; o = nextUsable(g, o + 1)) {
      if (!queued.has(o) && !taken(o)) yield o;
    }
  }
  for (const [o, at] of slot.queue) {
    if (at > cooledBy) return; // the queue is in release order: everything after is still cooling too
    // A redefined pool (narrower range, new exclusions) may have made a released address unusable.
    if (!taken(o) && isUsable(g, o)) yield o;
  }
}

export function firstMatching(it: Iterable<number>, pred: (o: number) => boolean): number | undefined {
  for (const o of it) if (pred(o)) return o;
  return undefined;
}

export function takeN(it: Iterable<number>, n: number, pred: (o: number) => boolean = () => true): number[] {
  const out: number[] = [];
  if (n <= 0) return out;
  for (const o of it) {
    if (!pred(o)) continue;
    out.push(o);
    if (out.length >= n) break;
  }
  return out;
}

/**
 * The ordinals in a slot's queue as a set, kept beside the record (which is plain JSON for the store) so
 * `candidates` does not rebuild it per allocation. Slot records change only through markTaken/markReleased.
 */
const queuedSets = new WeakMap<SlotRecord, Set<number>>();

function queuedOf(slot: SlotRecord): Set<number> {
  let s = queuedSets.get(slot);
  if (!s) queuedSets.set(slot, (s = new Set(slot.queue.map(([o]) => o))));
  return s;
}

/** Record that `o` was handed out: leaves the queue, or moves the fresh cursor past it. */
export function markTaken(slot: SlotRecord, o: number): void {
  const queued = queuedOf(slot);
  if (queued.has(o)) {
    slot.queue.splice(slot.queue.findIndex(([q]) => q === o), 1);
    queued.delete(o);
  } else slot.cursor = o + 1;
}

/** Record that `o` was released at `now`: it joins the back of the cooldown queue. */
export function markReleased(slot: SlotRecord, o: number, now: number): void {
  const queued = queuedOf(slot);
  if (queued.has(o)) slot.queue.splice(slot.queue.findIndex(([q]) => q === o), 1);
  slot.queue.push([o, now]);
  queued.add(o);
}

/** When the first queued ordinal that passes `pred` has cooled down (released + cooldownMs); Infinity if none. */
export function firstCooled(slot: SlotRecord, cooldownMs: number, pred: (o: number) => boolean): number {
  for (const [o, at] of slot.queue) if (pred(o)) return at + cooldownMs;
  return Infinity;
}
