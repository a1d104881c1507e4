/**
 * Reconcile the node's book with the shared store after a start, a crash, or a lapsed registration:
 * 0. what an earlier incarnation of this node held (same name, another disk: its pods died with it) is
 *    treated like a dead node's: quarantined for GC;
 * 1. a reserve address whose block is still ours stays; if the block was reclaimed while we were away and
 *    the address sits quarantined under our name (or is free), it becomes a foreign entry of ours;
 *    anything else means someone else holds it now, which is reported, never silently shared;
 * 2. a foreign address whose shared entry is gone or was taken over (a claim moved on) leaves the book;
 * 3. a foreign entry of ours the book does not know (a crash between the shared commit and the book's)
 *    is adopted, unless the attachment already got another address of that family, then it is freed;
 * 4. quarantined entries under our name that the book does not hold are freed: our book is the authority;
 * 5. after the machine restarted, the book may lack its last changes (they are synced lazily, D-6 in
 *    docs/decisions.md): a reserve address it does not know may have been handed out just before the crash.
 *    Its pod died with the machine, so it is free, but it goes to the back of the cooldown queue like a
 *    just-released address instead of out again first.
 */
import { formatIp } from '../../core/address';
import { type Engine, geomOf } from './engine';
import { ipOf } from '../model/pool';
import type { ForeignEntry, PodAddress } from '../model/records';
import { markReleased } from '../model/slot';
import { grow, quarantineDeadForeign, quarantineHeld } from './space';

export async function recover(e: Engine, opts: { machineRestarted?: boolean } = {}): Promise<string[]> {
  const warnings: string[] = [];
  for (const name of e.pools().keys()) await e.blocks.refreshPool(name);
  // 0. What an earlier incarnation of this node (another disk) held is a dead node's: quarantine it.
  for (const key of e.blocks.keys()) {
    const cur = e.blocks.get(key)?.value;
    if (cur?.owner !== e.node || cur.inc === undefined || cur.inc === e.inc) continue;
    await e.blocks.update(key, (c) => c?.owner === e.node && c.inc !== undefined && c.inc !== e.inc
      ? { next: { pool: c.pool, owner: e.node, inc: e.inc, held: {}, foreign: quarantineHeld(c, e.now()) } }
      : { next: undefined });
  }
  await quarantineDeadForeign(e);
  for (const { podKey, addr } of e.book.allAddresses()) {
    if (!e.blocks.geom(addr.block)) continue; // pool no longer configured: keep the record, touch nothing
    const keep = addr.via === 'own' ? await recoverOwn(e, podKey, addr) : await recoverForeign(e, addr);
    if (!keep) {
      warnings.push(`${addr.ip} of pod ${podKey} (${addr.containerId}/${addr.ifName}) is no longer held by this node; dropped`);
      e.book.removeAddress(podKey, addr);
    }
  }
  for (const key of e.blocks.keys()) {
    const cur = e.blocks.get(key)?.value;
    if (!cur || !e.blocks.geom(key)) continue;
    for (const [os, ent] of Object.entries(cur.foreign)) {
      if (ent.node === e.node && (ent.inc ?? e.inc) === e.inc) await adoptOrFree(e, key, Number(os), ent);
    }
    if (cur.owner === e.node) e.book.slot(key, cur.pool);
    if (cur.owner === e.node && opts.machineRestarted) requeueUnknown(e, key);
  }
  for (const key of e.book.slotKeys()) if (e.blocks.get(key)?.value.owner !== e.node) e.book.dropSlot(key);
  await e.book.persist();
  return warnings;
}

async function recoverOwn(e: Engine, podKey: string, addr: PodAddress): Promise<boolean> {
  const cur = e.blocks.get(addr.block)?.value;
  if (cur?.owner === e.node) {
    return cur.held[addr.ordinal] !== undefined || (await grow(e, addr.block, [addr.ordinal])) &&
      e.blocks.get(addr.block)?.value.held[addr.ordinal] !== undefined;
  }
  let ok = false;
  const entry: ForeignEntry = { node: e.node, inc: e.inc, pod: podKey, cid: addr.containerId, ifn: addr.ifName };
  await e.blocks.update(addr.block, (c) => {
    const ent = c?.foreign[addr.ordinal];
    const free = !ent && c?.held[addr.ordinal] === undefined;
    const ours = ent?.node === e.node && (ent.inc ?? e.inc) === e.inc;
    ok = free || (ours && ent?.lost !== undefined) || (ours && ent?.cid === addr.containerId && ent.ifn === addr.ifName);
    if (!ok || (ent && ent.lost === undefined)) return { next: undefined };
    const next = c ?? { pool: addr.pool, owner: null, held: {}, foreign: {} };
    next.foreign[addr.ordinal] = entry;
    return { next };
  });
  if (ok) e.book.replaceAddress(podKey, addr, { ...addr, via: 'shared' });
  return ok;
}

/** Our foreign entry must still be there; if it was quarantined while our registration lapsed, take it back. */
async function recoverForeign(e: Engine, addr: PodAddress): Promise<boolean> {
  const ours = (ent: ForeignEntry | undefined): ent is ForeignEntry => ent !== undefined && ent.node === e.node &&
    (ent.inc ?? e.inc) === e.inc && ent.cid === addr.containerId && ent.ifn === addr.ifName;
  const ent = e.blocks.get(addr.block)?.value.foreign[addr.ordinal];
  if (!ours(ent)) return false;
  if (ent.lost === undefined) return true;
  let ok = false;
  await e.blocks.update(addr.block, (c) => {
    const now = c?.foreign[addr.ordinal];
    ok = ours(now);
    if (!ok || !c || now?.lost === undefined) return { next: undefined };
    delete now.lost;
    return { next: c };
  });
  return ok;
}

async function adoptOrFree(e: Engine, key: string, o: number, ent: ForeignEntry): Promise<void> {
  const g = geomOf(e, key);
  const mine = ent.cid !== undefined && ent.ifn !== undefined ? e.book.addressesOf(ent.cid, ent.ifn) : [];
  if (mine.some((a) => a.addr.block === key && a.addr.ordinal === o)) return;
  const sameFamily = mine.some((a) => a.addr.pool === g.pool && a.addr.family === g.family);
  if (ent.lost === undefined && ent.cid !== undefined && ent.ifn !== undefined && ent.pod && (!sameFamily || ent.fixed)) {
    const slash = ent.pod.indexOf('/');
    const addr: PodAddress = {
      ip: formatIp(ipOf(g, o)), prefixLength: g.subnet.cidr.prefix, family: g.family, pool: g.pool, network: '',
      block: key, ordinal: o, containerId: ent.cid, ifName: ent.ifn, via: 'shared',
    };
    if (ent.fixed) addr.fixed = ent.fixed;
    e.book.addAddress({ namespace: ent.pod.slice(0, slash), name: ent.pod.slice(slash + 1) }, addr);
    return;
  }
  if (ent.fixed) return; // parked claim or sticky address: it belongs to the claim, not to us
  await e.blocks.update(key, (cur) => {
    const now = cur?.foreign[o];
    if (!cur || !now || now.node !== e.node || now.cid !== ent.cid || now.lost !== ent.lost) return { next: undefined };
    delete cur.foreign[o];
    return { next: cur };
  });
}

/** 5. Reserve addresses of owned block `key` the book does not hold join the back of the cooldown queue. */
function requeueUnknown(e: Engine, key: string): void {
  const cur = e.blocks.get(key)?.value;
  if (!cur) return;
  const slot = e.book.slot(key, cur.pool);
  const owned = e.book.ownedIn(key);
  const now = e.now();
  for (const os of Object.keys(cur.held)) {
    const o = Number(os);
    if (!owned.has(o) && cur.foreign[os] === undefined) markReleased(slot, o, now);
  }
  e.book.touch('slot', key);
  e.blocks.touch(key);
}
