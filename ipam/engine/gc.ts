/**
 * Garbage collection, Calico style: something looks unused (an attachment missing from CNI GC's valid
 * list, a pod the source no longer knows, a sticky pod that is gone, an address quarantined from a lost
 * node, an owned block left empty), it must keep looking unused for a whole grace period, and it is checked
 * once more right before it is released: the caller's `recheck` asks the runtime or API server, and our own
 * state is re-read inside the compare-and-swap. An address a live attachment or pod uses is never released.
 *
 * The grace period of quarantined addresses starts at the quarantine time stored with them; for the other
 * kinds it starts when this collector first saw them unused (a restart starts it again: the safe direction).
 */
import { formatIp } from '../../core/address';
import type { Engine } from './engine';
import { ipOf } from '../model/pool';
import { podKeyOf } from './node-book';
import { type FixedRecord, attachmentKey } from '../model/records';
import { releaseAttachment, releaseFixed } from './release';
import { assessNode, quarantineDeadForeign, reclaimBlocks } from './space';

export interface GcInput {
  /** Every attachment that is still valid on this node (CNI GC's `cni.dev/valid-attachments`). */
  attachments?: Iterable<{ containerId: string; ifName: string }>;
  /** Every pod that exists (the source's view); used for sticky addresses and quarantined ones too. */
  pods?: Iterable<{ namespace: string; name: string }>;
  /**
   * Pods the caller knows are gone (its source listed them and no longer does): their attachments and
   * sticky addresses are candidates. Unlike `pods`, it says nothing about any other pod.
   */
  gonePods?: Iterable<{ namespace: string; name: string }>;
  /** Asked right before a release; return false if the candidate turns out to be in use after all. */
  recheck?: (c: GcCandidate) => boolean | Promise<boolean>;
}

export interface GcCandidate {
  kind: 'attachment' | 'sticky' | 'quarantined' | 'block';
  id: string;
  pod?: string;
  containerId?: string;
  ifName?: string;
  addresses: string[];
}

export interface GcReport {
  released: GcCandidate[];
  /** Unused but still inside the grace period (or vetoed by the recheck). */
  waiting: GcCandidate[];
  /** Blocks taken over from dead nodes (their addresses are quarantined, not freed). */
  reclaimed: string[];
}

export class Collector {
  /**
   * When a candidate was first seen unused. Attachments and sticky addresses are judged by what the caller
   * passed (CNI GC's attachments, the source's pods), so their times are kept per kind of input: a run on
   * other input (the daemon's source GC between two CNI GCs) neither restarts nor borrows their grace.
   */
  private readonly firstSeen = new Map<string, number>();

  constructor(private readonly e: Engine) {}

  /** `servedBefore`: the book's serve sequence when the caller took its snapshot of what is live. */
  async run(input: GcInput, servedBefore = this.e.book.servedNow): Promise<GcReport> {
    const e = this.e;
    const liveAtt = input.attachments && new Set([...input.attachments].map((a) => attachmentKey(a.containerId, a.ifName)));
    const livePods = input.pods && new Set([...input.pods].map(podKeyOf));
    const gone = new Set([...(input.gonePods ?? [])].map(podKeyOf));
    const isGone = (pod: string): boolean => (livePods !== undefined && !livePods.has(pod)) || gone.has(pod);
    const report: GcReport = { released: [], waiting: [], reclaimed: [] };
    for (const pool of e.pools().values()) {
      await e.blocks.refreshPool(pool.name);
      report.reclaimed.push(...(await reclaimBlocks(e, pool, undefined, true)));
    }
    await quarantineDeadForeign(e);
    const found = await this.candidates(liveAtt, livePods, livePods !== undefined || gone.size > 0 ? isGone : undefined);
    const basis = `${liveAtt ? 'a' : ''}${livePods ? 'p' : ''}${input.gonePods ? 'g' : ''}|`;
    const keyOf = (c: GcCandidate): string => (c.kind === 'attachment' || c.kind === 'sticky' ? basis + c.id : c.id);
    const now = e.now();
    for (const c of found) {
      const key = keyOf(c);
      const since = c.kind === 'quarantined' ? now - e.opts.graceMs : (this.firstSeen.get(key) ?? now);
      this.firstSeen.set(key, since);
      if (now - since < e.opts.graceMs) {
        report.waiting.push(c);
        continue;
      }
      const outcome = await this.guarded(c, async () => {
        // An ADD that returned these addresses after the caller's snapshot is proof of use, recheck or not.
        if (c.containerId !== undefined && e.book.servedSince(c.containerId, c.ifName as string, servedBefore)) return 'vetoed';
        return !input.recheck || (await input.recheck(c)) ? this.release(c) : 'vetoed';
      });
      if (outcome === 'vetoed') report.waiting.push(c);
      else if (outcome) report.released.push(c);
      if (outcome !== 'vetoed') this.firstSeen.delete(key);
    }
    const keys = new Set(found.map(keyOf));
    for (const k of this.firstSeen.keys()) if ((k.startsWith(basis) || !k.includes('|')) && !keys.has(k)) this.firstSeen.delete(k);
    return report;
  }

  /** `isGone`: whether the caller's pod view says a pod is gone; undefined when it has none. */
  private async candidates(liveAtt: Set<string> | undefined, livePods: Set<string> | undefined, isGone?: (pod: string) => boolean): Promise<GcCandidate[]> {
    const e = this.e;
    const out: GcCandidate[] = [];
    const byAtt = new Map<string, GcCandidate>();
    for (const { podKey, addr } of e.book.allAddresses()) {
      const att = attachmentKey(addr.containerId, addr.ifName);
      if (!((liveAtt && !liveAtt.has(att)) || isGone?.(podKey))) continue;
      let c = byAtt.get(att);
      if (!c) {
        c = { kind: 'attachment', id: `attachment:${att}`, pod: podKey, containerId: addr.containerId, ifName: addr.ifName, addresses: [] };
        byAtt.set(att, c);
        out.push(c);
      }
      c.addresses.push(addr.ip);
    }
    if (isGone) {
      for (const [key, rec] of await e.shared.list<FixedRecord>('fixed', 'sticky:')) {
        const pod = podKeyOf(rec.value);
        if (!isGone(pod) || (await this.attachedAlive(rec.value))) continue;
        out.push({ kind: 'sticky', id: key, pod, addresses: rec.value.addresses.map((a) => a.ip) });
      }
    }
    const firstOwned = new Set<string>();
    for (const key of e.blocks.keys().sort()) {
      const cur = e.blocks.get(key)?.value;
      const g = e.blocks.geom(key);
      if (!cur || !g) continue;
      for (const [o, ent] of Object.entries(cur.foreign)) {
        if (ent.lost === undefined || e.now() - ent.lost < e.opts.graceMs) continue;
        if (livePods && ent.pod && livePods.has(ent.pod)) continue; // its pod still runs somewhere: keep
        const ip = formatIp(ipOf(g, Number(o)));
        out.push({ kind: 'quarantined', id: `${key}#${o}`, ...(ent.pod ? { pod: ent.pod } : {}), addresses: [ip] });
      }
      if (cur.owner !== e.node) continue;
      const lane = `${g.pool}/${g.family}`;
      const empty = e.book.ownedIn(key).size === 0 && Object.keys(cur.foreign).length === 0;
      // Keep one block per pool and family so a lone pod does not make the node claim and release blocks.
      if (empty && firstOwned.has(lane)) out.push({ kind: 'block', id: `block:${key}`, addresses: [key] });
      firstOwned.add(lane);
    }
    return out;
  }

  /** Whether any address of a fixed record is attached by a live node: in use, whatever the pod list says. */
  private async attachedAlive(rec: FixedRecord): Promise<boolean> {
    for (const a of rec.addresses) {
      const ent = this.e.blocks.get(a.block)?.value.foreign[a.ordinal];
      if (ent?.cid !== undefined && !(await assessNode(this.e, ent.node, ent.inc)).dead) return true;
    }
    return false;
  }

  /**
   * Run the re-check and the release under the container's lock, which ADD and DEL of that container also
   * take: a retried ADD cannot slip in between "still unused" and the release and be handed freed addresses.
   */
  private guarded<T>(c: GcCandidate, fn: () => Promise<T>): Promise<T> {
    return c.containerId === undefined ? fn() : this.e.blocks.withLock(`ctr:${c.containerId}`, fn);
  }

  private async release(c: GcCandidate): Promise<boolean> {
    const e = this.e;
    switch (c.kind) {
      case 'attachment':
        return (await releaseAttachment(e, c.containerId as string, c.ifName)).length > 0;
      case 'sticky':
        return (await releaseFixed(e, c.id)).length > 0;
      case 'quarantined': {
        const [key, os] = c.id.split('#') as [string, string];
        let done = false;
        await e.blocks.update(key, async (cur) => {
          const ent = cur?.foreign[os];
          done = cur !== undefined && ent?.lost !== undefined && e.now() - ent.lost >= e.opts.graceMs;
          if (!done || !cur || !ent) return { next: undefined };
          // A node that came back as the same incarnation sorts out its own quarantined addresses (recovery).
          const d = await assessNode(e, ent.node, ent.inc);
          done = d.dead;
          if (!done) return { next: undefined };
          delete cur.foreign[os];
          return { next: cur, extra: d.check ? [d.check] : [] };
        });
        return done;
      }
      case 'block': {
        const key = c.addresses[0] as string;
        let done = false;
        const held: number[] = [];
        try {
          await e.blocks.update(key, (cur) => {
            done = !!cur && cur.owner === e.node && e.book.ownedIn(key).size === 0 && Object.keys(cur.foreign).length === 0;
            if (!done || !cur) return { next: undefined };
            // Nothing may be handed out of the reserve while the block is being given up.
            held.push(...Object.keys(cur.held).map(Number));
            e.blocks.setLeaving(key, held, true);
            return { next: null };
          });
        } finally {
          e.blocks.setLeaving(key, held, false);
        }
        if (done) {
          e.book.dropSlot(key);
          await e.book.persist();
        }
        return done;
      }
    }
  }
}
