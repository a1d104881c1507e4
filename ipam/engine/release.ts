/**
 * Giving addresses back, and keeping the shared view of owned blocks honest.
 *
 * Releasing a reserve address is memory plus the node store: it stays in `held` (now as reserve) and joins
 * the cooldown queue. Releasing a foreign entry is a compare-and-swap on its block first and the book
 * second, so a crash in between leaves a book entry whose shared entry is gone, which recovery drops.
 * A fixed (claim or sticky) address is only detached on release: it stays with its claim (S38).
 */
import type { Engine } from './engine';
import type { PodAddress, FixedRecord } from '../model/records';
import { markReleased } from '../model/slot';

/** Release every address of an attachment (or of every attachment of a container). Idempotent. */
export async function releaseAttachment(e: Engine, containerId: string, ifName?: string): Promise<PodAddress[]> {
  return releaseAddresses(e, e.book.addressesOf(containerId, ifName));
}

/** Release the given book entries (an attachment's, or the ones an aborted allocation made). */
export async function releaseAddresses(e: Engine, list: { podKey: string; addr: PodAddress }[]): Promise<PodAddress[]> {
  for (const { podKey, addr } of list) {
    if (addr.via === 'shared') await releaseForeign(e, addr);
    else if (e.blocks.get(addr.block)?.value.owner === e.node) {
      markReleased(e.book.slot(addr.block, addr.pool), addr.ordinal, e.now());
      e.book.touch('slot', addr.block);
      e.blocks.touch(addr.block);
    }
    e.book.removeAddress(podKey, addr);
  }
  await e.book.persist();
  return list.map((l) => l.addr);
}

async function releaseForeign(e: Engine, addr: PodAddress): Promise<void> {
  let freed = false;
  await e.blocks.update(addr.block, (cur) => {
    freed = false;
    const ent = cur?.foreign[addr.ordinal];
    // Gone, or taken over by a later attachment of the same claim: nothing of ours to release.
    if (!cur || !ent || ent.node !== e.node || (ent.inc ?? e.inc) !== e.inc || ent.cid !== addr.containerId || ent.ifn !== addr.ifName) {
      return { next: undefined };
    }
    if (ent.fixed) {
      delete ent.cid;
      delete ent.ifn;
      return { next: cur };
    }
    delete cur.foreign[addr.ordinal];
    freed = true;
    const empty = cur.owner === null && Object.keys(cur.foreign).length === 0 && Object.keys(cur.held).length === 0;
    return { next: empty ? null : cur };
  });
  if (freed && e.blocks.get(addr.block)?.value.owner === e.node) {
    markReleased(e.book.slot(addr.block, addr.pool), addr.ordinal, e.now());
    e.book.touch('slot', addr.block);
    e.blocks.touch(addr.block);
  }
}

/** Free every address of a claim or sticky record for good (S38: only when the claim itself goes). */
export async function releaseFixed(e: Engine, key: string): Promise<string[]> {
  const rec = await e.shared.get<FixedRecord>('fixed', key);
  if (!rec) return [];
  for (const a of rec.value.addresses) {
    await e.blocks.update(a.block, (cur) => {
      if (cur?.foreign[a.ordinal]?.fixed !== key) return { next: undefined };
      delete cur.foreign[a.ordinal];
      const empty = cur.owner === null && Object.keys(cur.foreign).length === 0 && Object.keys(cur.held).length === 0;
      return { next: empty ? null : cur };
    });
    if (e.blocks.get(a.block)?.value.owner === e.node) {
      markReleased(e.book.slot(a.block, a.pool), a.ordinal, e.now());
      e.book.touch('slot', a.block);
      e.blocks.touch(a.block);
    }
  }
  // Addresses first, record last: a crash in between leaves a record whose entries are gone, and the
  // next releaseFixed (or allocation, which repairs) finishes the job.
  await e.blocks.withLock(`fixed:${key}`, async () => {
    const now = await e.shared.get<FixedRecord>('fixed', key);
    if (now) await e.shared.commit([{ op: 'delete', kind: 'fixed', key, rev: now.rev }]);
  });
  for (const { podKey, addr } of e.book.allAddresses()) if (addr.fixed === key) e.book.removeAddress(podKey, addr);
  await e.book.persist();
  return rec.value.addresses.map((a) => a.ip);
}

/**
 * Bring the shared `held` of every owned block in line with the book: holder names for what is handed out
 * (so other nodes and operators can name holders), and no reserve for blocks idle for `reserveIdleMs`.
 * At most one write per changed block per call, and none when nothing changed: this runs on a timer.
 */
export async function syncReserve(e: Engine): Promise<number> {
  let writes = 0;
  for (const key of e.blocks.keys()) {
    if (e.blocks.get(key)?.value.owner !== e.node) continue;
    let shrunk: string[] = [];
    try {
      await e.blocks.update(key, (cur) => {
        e.blocks.setLeaving(key, shrunk.map(Number), false);
        shrunk = [];
        if (!cur || cur.owner !== e.node) return { next: undefined };
        const owned = e.book.ownedIn(key);
        const idle = e.now() - (e.book.lastActive.get(key) ?? -Infinity) >= e.opts.reserveIdleMs;
        const held: Record<string, string> = {};
        for (const [o, pod] of owned) if (cur.foreign[o] === undefined) held[o] = pod;
        for (const o of Object.keys(cur.held)) {
          if (held[o] !== undefined) continue;
          if (!idle || e.blocks.isLeaving(key, Number(o))) held[o] = '';
          else shrunk.push(o);
        }
        const same = Object.keys(held).length === Object.keys(cur.held).length && Object.entries(held).every(([o, p]) => cur.held[o] === p);
        if (same) return { next: undefined };
        // Until the shrink commits, the fast path must not hand these out: after it, they are not ours.
        e.blocks.setLeaving(key, shrunk.map(Number), true);
        writes++;
        return { next: { ...cur, held } };
      }, { trustCache: true }); // held and owner of our own block change only through us
    } finally {
      e.blocks.setLeaving(key, shrunk.map(Number), false);
    }
  }
  return writes;
}
