/**
 * The etcd v3 store. Every commit is one transaction whose compares are the mod revisions the caller read
 * (create revision 0 for "absent"), so no change is ever based on a stale read. Keys live under a prefix
 * (default /plexus/ipam/) as `<kind>/<key>`, values are JSON.
 *
 * Node liveness uses leases: the node record is attached to the node's lease and vanishes when the lease
 * expires. The lease is kept alive by our own loop, not etcd3's, because fencing needs to know a time
 * before which the lease surely has not expired: a keepalive sent at t0 and acknowledged renews the lease
 * until at least t0 + TTL on the server, so `valid()` is true until t0 + TTL - margin.
 * A node that cannot prove its lease is alive stops allocating from its reserve (see allocator.ts).
 */
import { Etcd3, type IOperation, type Lease, type Namespace } from 'etcd3';
import { PlexusError, errorText } from '../../core/errors';
import type { Kind, NodeRecord } from '../model/records';
import {
  type AcquireNodeOptions, type CommitResult, type NodeLease, type Store, type StoreStats, type Versioned, type WriteOp, checkOps, infoOf,
  nodeBusy,
} from './store';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix?: string;
  /** Deadline of every unary call, so a cluster without quorum fails a request instead of hanging it. */
  callTimeoutMs?: number;
}

const FENCE_MARGIN_MS = 1000;

const unavailable = (what: string, e: unknown): PlexusError =>
  e instanceof PlexusError ? e : new PlexusError('TryAgainLater', `failed to ${what} in etcd: ${errorText(e)}`, { cause: e });

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly counters: StoreStats = { writes: 0, conflicts: 0 };
  private readonly leases = new Set<Lease>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(opts: EtcdStoreOptions) {
    const timeout = opts.callTimeoutMs ?? 5000;
    this.client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: timeout,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    const prefix = opts.prefix ?? '/plexus/ipam';
    this.ns = this.client.namespace(prefix.endsWith('/') ? prefix : `${prefix}/`);
  }

  private k = (kind: Kind, key: string): string => `${kind}/${key}`;

  async get<T>(kind: Kind, key: string): Promise<Versioned<T> | undefined> {
    try {
      const res = await this.ns.get(this.k(kind, key)).exec();
      const kv = res.kvs[0];
      return kv && { value: JSON.parse(kv.value.toString()) as T, rev: Number(kv.mod_revision) };
    } catch (e) {
      throw unavailable(`read ${kind} ${key}`, e);
    }
  }

  async list<T>(kind: Kind, prefix = ''): Promise<Map<string, Versioned<T>>> {
    try {
      const res = await this.ns.getAll().prefix(this.k(kind, prefix)).exec();
      const out = new Map<string, Versioned<T>>();
      const strip = kind.length + 1;
      for (const kv of res.kvs) {
        out.set(kv.key.toString().slice(strip), { value: JSON.parse(kv.value.toString()) as T, rev: Number(kv.mod_revision) });
      }
      return out;
    } catch (e) {
      throw unavailable(`list ${kind}`, e);
    }
  }

  async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    checkOps(ops);
    if (ops.length === 0) return { ok: true, rev: 0 };
    const [first, ...rest] = ops.map((op) => {
      const key = this.k(op.kind, op.key);
      return op.rev === 0 ? ([key, 'Create', 0] as const) : ([key, 'Mod', op.rev] as const);
    });
    const f = first as readonly [string, 'Create' | 'Mod', number];
    let txn = this.ns.if(f[0], f[1], '==', f[2]);
    for (const [key, col, rev] of rest) txn = txn.and(key, col, '==', rev);
    const writes: IOperation[] = [];
    for (const op of ops) {
      const key = this.k(op.kind, op.key);
      if (op.op === 'put') writes.push(this.ns.put(key).value(JSON.stringify(op.value)));
      else if (op.op === 'delete') writes.push(this.ns.delete().key(key));
    }
    try {
      const res = await txn.then(...writes).commit();
      if (!res.succeeded) this.counters.conflicts++;
      else if (writes.length > 0) this.counters.writes++;
      return { ok: res.succeeded, rev: Number(res.header.revision) };
    } catch (e) {
      throw unavailable('commit an IPAM change', e);
    }
  }

  async acquireNode(node: string, opts: AcquireNodeOptions): Promise<NodeLease> {
    const ttl = Math.max(1, Math.ceil((opts.ttlMs ?? 30000) / 1000));
    const key = this.k('node', node);
    const lease = this.ns.lease(ttl, { autoKeepAlive: false });
    lease.on('lost', () => undefined); // surfaced through valid(); an unheard 'lost' must not crash anything
    const t0 = Date.now();
    try {
      await lease.grant();
      const cur = await this.get<NodeRecord>('node', node);
      if (cur && cur.value.token !== opts.token) throw nodeBusy(node, 'its etcd lease is alive under another token');
      const value: NodeRecord = { token: opts.token, pid: process.pid, ...infoOf(opts) };
      const res = await this.ns
        .if(key, cur ? 'Mod' : 'Create', '==', cur ? cur.rev : 0)
        .then(lease.put(key).value(JSON.stringify(value)))
        .commit();
      if (!res.succeeded) throw nodeBusy(node, 'it was registered concurrently');
      this.counters.writes++;
    } catch (e) {
      await lease.revoke().catch(() => undefined);
      throw unavailable(`register node ${node}`, e);
    }
    this.leases.add(lease);
    let validUntil = t0 + ttl * 1000 - FENCE_MARGIN_MS;
    let lost = false;
    const timer = setInterval(() => {
      const sent = Date.now();
      // A deadline, or a keepalive stream to a member that lost quorum would hang (and pile up) forever.
      lease.keepaliveOnce({ deadline: sent + (ttl * 1000) / 3 }).then(
        () => void (validUntil = Math.max(validUntil, sent + ttl * 1000 - FENCE_MARGIN_MS)),
        () => void (lost = lost || lease.revoked() || Date.now() > validUntil),
      );
    }, Math.max(200, (ttl * 1000) / 3));
    timer.unref();
    this.timers.add(timer);
    return {
      node,
      valid: () => !lost && !lease.revoked() && Date.now() < validUntil,
      revoke: async () => {
        clearInterval(timer);
        this.timers.delete(timer);
        this.leases.delete(lease);
        lost = true;
        await lease.revoke().catch(() => undefined);
      },
    };
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    // Leases are left to expire, not revoked: closing the client is not the node leaving for good.
    for (const l of this.leases) l.release();
    this.client.close();
  }
}
