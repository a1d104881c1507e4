/**
 * The in-memory store: passes the same contract suite as the real stores, for fast tests of the code above.
 * Node liveness is explicit: a lease lives until it is revoked or a test calls `expireNode` (node loss).
 * `delayMs` makes every call asynchronous by that much, so tests can widen race windows on purpose.
 */
import type { Kind, NodeRecord } from '../model/records';
import {
  type AcquireNodeOptions, type CommitResult, type NodeLease, type Store, type StoreStats, type Versioned, type WriteOp, RecordTable,
  checkOps, infoOf, nodeBusy, writesOf,
} from './store';

export class MemoryStore implements Store {
  private readonly table = new RecordTable();
  private readonly leases = new Map<string, { valid: boolean }>();
  private readonly counters: StoreStats = { writes: 0, conflicts: 0 };

  constructor(private readonly opts: { delayMs?: number } = {}) {}

  private async tick(): Promise<void> {
    if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    else await Promise.resolve();
  }

  async get<T>(kind: Kind, key: string): Promise<Versioned<T> | undefined> {
    await this.tick();
    return this.table.get<T>(kind, key);
  }

  async list<T>(kind: Kind, prefix?: string): Promise<Map<string, Versioned<T>>> {
    await this.tick();
    return this.table.list<T>(kind, prefix);
  }

  async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    checkOps(ops);
    await this.tick();
    if (!this.table.matches(ops)) {
      this.counters.conflicts++;
      return { ok: false, rev: this.table.rev };
    }
    const writes = writesOf(ops);
    if (writes.length === 0) return { ok: true, rev: this.table.rev };
    const rev = this.table.rev + 1;
    for (const w of writes) this.table.set(w.kind, w.key, w.json, rev);
    this.counters.writes++;
    return { ok: true, rev };
  }

  async acquireNode(node: string, opts: AcquireNodeOptions): Promise<NodeLease> {
    await this.tick();
    const cur = this.table.get<NodeRecord>('node', node);
    if (cur && cur.value.token !== opts.token) throw nodeBusy(node, 'another token holds it');
    const old = this.leases.get(node);
    if (old) old.valid = false;
    const state = { valid: true };
    this.leases.set(node, state);
    const value: NodeRecord = { token: opts.token, ...infoOf(opts) };
    const mine = this.table.rev + 1;
    this.table.set('node', node, JSON.stringify(value), mine);
    this.counters.writes++;
    return {
      node,
      valid: () => state.valid,
      revoke: async () => {
        if (!state.valid) return;
        state.valid = false;
        if (this.table.getRaw('node', node)?.rev === mine) this.expireNode(node);
      },
    };
  }

  /** Simulate the lease of `node` running out: it is dead for everyone, and its own lease says so. */
  expireNode(node: string): void {
    const l = this.leases.get(node);
    if (l) l.valid = false;
    this.leases.delete(node);
    if (this.table.getRaw('node', node)) this.table.set('node', node, undefined, this.table.rev + 1);
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    for (const l of this.leases.values()) l.valid = false;
  }
}
