/**
 * The node's book: its pod records and per-block slots, held in memory and written through to the node
 * store. Only one live process serves a node (the node registration in the node store guarantees it), so
 * memory is authoritative and the store is its durable copy.
 *
 * Mutations are synchronous (no await between choosing an address and marking it taken, so concurrent
 * requests cannot pick the same one); `persist()` then resolves once a commit that includes them is
 * written to the node store, where a crash of this process cannot undo it; the store syncs it to disk
 * lazily (D-6 in docs/decisions.md). Commits are grouped: while one is in flight, later changes accumulate
 * into the next. If a commit fails, memory is reloaded from the store, so nothing that was not written is
 * ever handed out later.
 */
import { PlexusError } from '../../core/errors';
import { type Kind, type PodAddress, type PodRecord, type SlotRecord, attachmentKey } from '../model/records';
import type { Store, WriteOp } from '../stores/store';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined); // a flush nobody awaits must not become an unhandled rejection
  return { promise, resolve, reject };
}

export const podKeyOf = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;

export class NodeBook {
  private readonly pods = new Map<string, PodRecord>();
  private readonly slots = new Map<string, SlotRecord>();
  private readonly revs = new Map<string, number>();
  /** attachment (cid/ifName) -> pod key */
  private readonly attachments = new Map<string, string>();
  /** container -> its interface names, so DEL of a whole container is not a scan */
  private readonly containers = new Map<string, Set<string>>();
  /** block -> ordinal -> pod key, for addresses held `via: 'own'` */
  private readonly owned = new Map<string, Map<number, string>>();
  private dirty = new Map<string, { kind: Kind; key: string }>();
  private next: Deferred | null = null;
  private flushing = false;
  /** Last time (ms) an address of a block was handed out: reserves of idle blocks shrink. */
  readonly lastActive = new Map<string, number>();
  /** attachment -> sequence number of the last ADD that returned its addresses (GC must not undo it). */
  private readonly served = new Map<string, number>();
  private servedSeq = 0;

  private constructor(private readonly store: Store) {}

  static async load(store: Store): Promise<NodeBook> {
    const b = new NodeBook(store);
    await b.reload();
    return b;
  }

  /** Replace memory with the store's content; `beforeSwap` runs synchronously just before the swap. */
  private async reload(beforeSwap?: () => void): Promise<void> {
    const [pods, slots] = await Promise.all([this.store.list<PodRecord>('pod'), this.store.list<SlotRecord>('slot')]);
    beforeSwap?.();
    this.pods.clear();
    this.slots.clear();
    this.revs.clear();
    this.attachments.clear();
    this.containers.clear();
    this.owned.clear();
    this.dirty.clear();
    for (const [k, v] of slots) {
      this.slots.set(k, v.value);
      this.revs.set(`slot\0${k}`, v.rev);
    }
    for (const [k, v] of pods) {
      this.revs.set(`pod\0${k}`, v.rev);
      this.setPod(k, v.value, false);
    }
  }

  /** Note that an ADD just returned this attachment's addresses; returns the sequence number. */
  markServed(containerId: string, ifName: string): number {
    this.served.set(attachmentKey(containerId, ifName), ++this.servedSeq);
    return this.servedSeq;
  }
  get servedNow(): number {
    return this.servedSeq;
  }
  /** Whether the attachment was served by an ADD after sequence number `seq`. */
  servedSince(containerId: string, ifName: string, seq: number): boolean {
    return (this.served.get(attachmentKey(containerId, ifName)) ?? 0) > seq;
  }

  // ---- reads
  podKeys(): string[] {
    return [...this.pods.keys()];
  }
  pod(key: string): PodRecord | undefined {
    return this.pods.get(key);
  }
  podOf(containerId: string, ifName: string): string | undefined {
    return this.attachments.get(attachmentKey(containerId, ifName));
  }
  /** Every address of an attachment, or of every attachment of a container when ifName is omitted. */
  addressesOf(containerId: string, ifName?: string): { podKey: string; addr: PodAddress }[] {
    const out: { podKey: string; addr: PodAddress }[] = [];
    for (const ifn of ifName === undefined ? [...(this.containers.get(containerId) ?? [])] : [ifName]) {
      const podKey = this.attachments.get(attachmentKey(containerId, ifn));
      if (podKey === undefined) continue;
      for (const addr of this.pods.get(podKey)?.addresses ?? []) {
        if (addr.containerId === containerId && addr.ifName === ifn) out.push({ podKey, addr });
      }
    }
    return out;
  }
  allAddresses(): { podKey: string; addr: PodAddress }[] {
    return [...this.pods].flatMap(([podKey, p]) => p.addresses.map((addr) => ({ podKey, addr })));
  }
  ownedIn(block: string): ReadonlyMap<number, string> {
    return this.owned.get(block) ?? new Map();
  }
  slotKeys(): string[] {
    return [...this.slots.keys()];
  }
  hasSlot(block: string): boolean {
    return this.slots.has(block);
  }
  /** The slot of an owned block, created on first use. */
  slot(block: string, pool: string): SlotRecord {
    let s = this.slots.get(block);
    if (!s) {
      this.slots.set(block, (s = { pool, cursor: 0, queue: [] }));
      this.touch('slot', block);
    }
    return s;
  }

  // ---- mutations (synchronous; follow with persist())
  touch(kind: Kind, key: string): void {
    this.dirty.set(`${kind}\0${key}`, { kind, key });
  }

  dropSlot(block: string): void {
    if (this.slots.delete(block)) this.touch('slot', block);
  }

  addAddress(pod: { namespace: string; name: string; uid?: string }, addr: PodAddress): void {
    const key = podKeyOf(pod);
    const cur = this.pods.get(key);
    const rec: PodRecord = cur ?? { namespace: pod.namespace, name: pod.name, addresses: [] };
    if (pod.uid) rec.uid = pod.uid;
    this.setPod(key, { ...rec, addresses: [...rec.addresses, addr] });
  }

  removeAddress(podKey: string, addr: PodAddress): void {
    const rec = this.pods.get(podKey);
    if (!rec) return;
    const rest = rec.addresses.filter((a) => !sameAddress(a, addr));
    this.setPod(podKey, rest.length ? { ...rec, addresses: rest } : undefined);
    const att = attachmentKey(addr.containerId, addr.ifName);
    if (!this.attachments.has(att)) this.served.delete(att);
  }

  replaceAddress(podKey: string, old: PodAddress, next: PodAddress): void {
    const rec = this.pods.get(podKey);
    if (!rec) return;
    this.setPod(podKey, { ...rec, addresses: rec.addresses.map((a) => (sameAddress(a, old) ? next : a)) });
  }

  private setPod(key: string, rec: PodRecord | undefined, dirty = true): void {
    for (const a of this.pods.get(key)?.addresses ?? []) {
      this.attachments.delete(attachmentKey(a.containerId, a.ifName));
      const ifs = this.containers.get(a.containerId);
      ifs?.delete(a.ifName);
      if (ifs?.size === 0) this.containers.delete(a.containerId);
      if (a.via === 'own') this.owned.get(a.block)?.delete(a.ordinal);
    }
    if (rec) this.pods.set(key, rec);
    else this.pods.delete(key);
    for (const a of rec?.addresses ?? []) {
      this.attachments.set(attachmentKey(a.containerId, a.ifName), key);
      let ifs = this.containers.get(a.containerId);
      if (!ifs) this.containers.set(a.containerId, (ifs = new Set()));
      ifs.add(a.ifName);
      if (a.via !== 'own') continue;
      let m = this.owned.get(a.block);
      if (!m) this.owned.set(a.block, (m = new Map()));
      m.set(a.ordinal, key);
    }
    if (dirty) this.touch('pod', key);
  }

  // ---- durability
  /** Resolves when every mutation made before the call is durable in the node store. */
  persist(): Promise<void> {
    if (this.dirty.size === 0 && !this.flushing) return Promise.resolve();
    if (!this.next) this.next = deferred();
    const p = this.next.promise;
    if (!this.flushing) {
      // Start on the next turn of the event loop, not now: requests woken by the previous commit are
      // still on their way to their next change, and should share this commit rather than queue behind it.
      this.flushing = true;
      setImmediate(() => void this.flushLoop());
    }
    return p;
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    while (this.next) {
      const d = this.next;
      this.next = null;
      const batch = [...this.dirty.values()];
      this.dirty = new Map();
      try {
        await this.commitBatch(batch);
        d.resolve();
      } catch (e) {
        d.reject(e);
        // Memory is ahead of the disk: go back to what is durable. Changes made until the swap were built on
        // the failed state and are wiped by it, so their waiters fail too.
        await this.reload(() => {
          const late = this.next as Deferred | null;
          this.next = null;
          late?.reject(e);
        }).catch(() => undefined);
      }
    }
    this.flushing = false;
  }

  private async commitBatch(batch: { kind: Kind; key: string }[]): Promise<void> {
    const ops: WriteOp[] = [];
    for (const { kind, key } of batch) {
      const id = `${kind}\0${key}`;
      const rev = this.revs.get(id) ?? 0;
      const value = kind === 'pod' ? this.pods.get(key) : this.slots.get(key);
      if (value) ops.push({ op: 'put', kind, key, value, rev });
      else if (rev > 0) ops.push({ op: 'delete', kind, key, rev });
    }
    if (ops.length === 0) return;
    // Lazy (D-6): written before the caller hears of it, so a crash of the daemon loses nothing; the disk
    // catches up within milliseconds. A crash of the machine may lose the last lines, and with them only
    // attachments of pods that died in the same crash; every address in them was in a synced reserve.
    const res = await this.store.commit(ops, { lazy: true });
    if (!res.ok) throw new PlexusError('StoreConflict', 'the node IPAM store was changed by another process serving this node');
    for (const op of ops) this.revs.set(`${op.kind}\0${op.key}`, op.op === 'delete' ? 0 : res.rev);
  }
}

export const sameAddress = (a: PodAddress, b: PodAddress): boolean =>
  a.block === b.block && a.ordinal === b.ordinal && a.containerId === b.containerId && a.ifName === b.ifName;
