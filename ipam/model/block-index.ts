/**
 * Which of this node's blocks may have room, per lane (pool and family), so an allocation looks at a few
 * blocks, not at every block the node owns. Two indexes use it (shared-blocks.ts): blocks whose reserve may
 * have an address to hand out, and blocks with addresses that could join a reserve.
 *
 * A block is `ready` until the allocator looked and found nothing usable; then it is parked until the
 * moment its first released address has cooled down (a min-heap of wake-up times), or until anything about
 * it changes (`add`: its record was written, an address was released into it). It is an index of candidates
 * only: a block missing from it costs a shared write at worst, and the allocator re-indexes a lane before
 * it declares the pool exhausted.
 */

interface Wake {
  at: number;
  key: string;
}

export class LaneIndex {
  /** Insertion order: the oldest ready block first. */
  private readonly ready = new Set<string>();
  private readonly heap: Wake[] = [];
  /** key -> the earliest wake-up scheduled for it, so parking twice does not grow the heap. */
  private readonly scheduled = new Map<string, number>();
  /** Blocks handed to the caller so far: the work the index saves is visible in tests and metrics. */
  examined = 0;

  add(key: string): void {
    this.ready.add(key);
  }

  /** The block left the lane (given up, reclaimed by another node, its pool redefined). */
  remove(key: string): void {
    this.ready.delete(key);
    this.scheduled.delete(key);
  }

  has(key: string): boolean {
    return this.ready.has(key);
  }

  /** The ready blocks as they are, without waking parked ones or counting a look. */
  readyKeys(): IterableIterator<string> {
    return this.ready.values();
  }

  /** Nothing usable in `key` now; look again at `at` (ms, the engine clock), or only once it changes (Infinity). */
  park(key: string, at: number): void {
    this.ready.delete(key);
    if (!Number.isFinite(at) || (this.scheduled.get(key) ?? Infinity) <= at) return;
    this.scheduled.set(key, at);
    this.push({ at, key });
  }

  /**
   * Ready blocks, oldest first, after waking those whose time has come (`all`: every parked one too, for
   * the rare path that takes addresses still cooling down). The caller parks what it finds unusable.
   */
  *candidates(now: number, all = false): Generator<string> {
    while (this.heap.length > 0 && ((this.heap[0] as Wake).at <= now || all)) {
      const w = this.pop();
      if (this.scheduled.get(w.key) !== w.at) continue; // superseded by an earlier wake-up, already done
      this.scheduled.delete(w.key);
      this.ready.add(w.key);
    }
    for (const key of this.ready) {
      this.examined++;
      yield key;
    }
  }

  private push(w: Wake): void {
    const h = this.heap;
    h.push(w);
    for (let i = h.length - 1; i > 0;) {
      const up = (i - 1) >> 1;
      if ((h[up] as Wake).at <= w.at) break;
      h[i] = h[up] as Wake;
      h[up] = w;
      i = up;
    }
  }

  private pop(): Wake {
    const h = this.heap;
    const top = h[0] as Wake;
    const last = h.pop() as Wake;
    if (h.length === 0) return top;
    h[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && (h[l] as Wake).at < (h[m] as Wake).at) m = l;
      if (r < h.length && (h[r] as Wake).at < (h[m] as Wake).at) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m] as Wake, h[i] as Wake];
      i = m;
    }
    return top;
  }
}

/** One LaneIndex per lane (`pool/family`). */
export class BlockIndex {
  private readonly lanes = new Map<string, LaneIndex>();

  lane(lane: string): LaneIndex {
    let l = this.lanes.get(lane);
    if (!l) this.lanes.set(lane, (l = new LaneIndex()));
    return l;
  }

  clear(): void {
    this.lanes.clear();
  }

  /** Blocks handed out for a look, over every lane. */
  examined(): number {
    let n = 0;
    for (const l of this.lanes.values()) n += l.examined;
    return n;
  }
}
