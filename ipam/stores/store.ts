/**
 * The IPAM store: a small versioned key-value interface in the spirit of host-local's `Store` and Calico's
 * backend: records have a revision, and every change is one atomic commit of puts, deletes and checks, each
 * compared against the revision the caller read (compare-and-swap). One commit is one write (one etcd
 * transaction, one journal record), whatever it touches, which is what lets the allocator batch.
 *
 * Node liveness is part of the store because reclaiming a dead node's blocks must be atomic with the check
 * that the node is dead: a `check` op on a `node` record with rev 0 means "this node is not alive".
 */
import { PlexusError } from '../../core/errors';
import type { Kind } from '../model/records';

export interface Versioned<T> {
  readonly value: T;
  /** Revision of the commit that last wrote the record (> 0). */
  readonly rev: number;
}

/** `rev` is the revision the caller expects the record to have now; 0 means "must not exist". */
export type WriteOp =
  | { readonly op: 'put'; readonly kind: Kind; readonly key: string; readonly value: unknown; readonly rev: number }
  | { readonly op: 'delete'; readonly kind: Kind; readonly key: string; readonly rev: number }
  | { readonly op: 'check'; readonly kind: Kind; readonly key: string; readonly rev: number };

/** `ok: false` means a compare failed and nothing was written; `rev` is the new revision of written records. */
export interface CommitResult {
  readonly ok: boolean;
  readonly rev: number;
}

/** A node's registration. `valid()` is false once the store may consider the node dead (fencing). */
export interface NodeLease {
  readonly node: string;
  valid(): boolean;
  revoke(): Promise<void>;
}

export interface AcquireNodeOptions {
  token: string;
  /** How long the registration outlives the last keepalive (etcd); the other stores ignore it. */
  ttlMs?: number;
  /** Published in the node record (NodeRecord.info), e.g. the node's underlay addresses. */
  info?: Readonly<Record<string, string>>;
}

export interface StoreStats {
  /** Successful commits that wrote something: the number to divide by allocations. */
  writes: number;
  /** Commits refused because a compare failed. */
  conflicts: number;
  /** fdatasync calls, for a store on a local disk (one may cover many commits). */
  syncs?: number;
  /** Requests that changed objects, for a store whose multi-record commit takes several (Kubernetes). */
  apiWrites?: number;
}

export interface CommitOptions {
  /**
   * Resolve once the change is written where a crash of this process cannot undo it, without waiting for
   * the disk: it reaches the disk shortly after, or with the next commit that is not lazy (which covers it).
   * Only for node-local records whose loss in a crash of the whole machine loses nothing that outlives the
   * crash (the node book, D-6 in docs/decisions.md). Stores that are always durable ignore it.
   */
  lazy?: boolean;
}

export interface Store {
  get<T>(kind: Kind, key: string): Promise<Versioned<T> | undefined>;
  /** All records of a kind whose key starts with `prefix`. */
  list<T>(kind: Kind, prefix?: string): Promise<Map<string, Versioned<T>>>;
  commit(ops: readonly WriteOp[], opts?: CommitOptions): Promise<CommitResult>;
  /**
   * Register `node` as alive. Fails with StoreConflict if it is alive under another token; the same token
   * takes over (a restarted daemon replacing its own dead registration before its lease ran out), except
   * that the local store also refuses while another live process holds it. Revoking a registration that
   * was taken over leaves the new one alone. `info` is stored in the node record for other nodes to read.
   */
  acquireNode(node: string, opts: AcquireNodeOptions): Promise<NodeLease>;
  stats(): StoreStats;
  close(): Promise<void>;
}

/** The `info` part of a node record: a copy, and absent rather than empty. */
export const infoOf = (opts: AcquireNodeOptions): { info?: Record<string, string> } =>
  opts.info && Object.keys(opts.info).length > 0 ? { info: { ...opts.info } } : {};

export const nodeBusy = (node: string, detail: string): PlexusError =>
  new PlexusError('StoreConflict', `node ${node} is already registered in the IPAM store (${detail})`);

/**
 * Records as JSON strings in memory, shared by MemoryStore and LocalStore. Keeping strings, not objects,
 * means no caller can ever alias a stored value, and the local store serialises each value exactly once.
 */
export class RecordTable {
  private readonly tables = new Map<Kind, Map<string, { json: string; rev: number }>>();
  rev = 0;

  private table(kind: Kind): Map<string, { json: string; rev: number }> {
    let t = this.tables.get(kind);
    if (!t) this.tables.set(kind, (t = new Map()));
    return t;
  }

  getRaw(kind: Kind, key: string): { json: string; rev: number } | undefined {
    return this.tables.get(kind)?.get(key);
  }

  get<T>(kind: Kind, key: string): Versioned<T> | undefined {
    const r = this.getRaw(kind, key);
    return r && { value: JSON.parse(r.json) as T, rev: r.rev };
  }

  list<T>(kind: Kind, prefix = ''): Map<string, Versioned<T>> {
    const out = new Map<string, Versioned<T>>();
    for (const [k, r] of this.tables.get(kind) ?? []) {
      if (k.startsWith(prefix)) out.set(k, { value: JSON.parse(r.json) as T, rev: r.rev });
    }
    return out;
  }

  /** Set (json defined) or delete (json undefined) one record at `rev`; used by commits and journal replay. */
  set(kind: Kind, key: string, json: string | undefined, rev: number): void {
    if (json === undefined) this.table(kind).delete(key);
    else this.table(kind).set(key, { json, rev });
    if (rev > this.rev) this.rev = rev;
  }

  /** Whether every compare of `ops` holds. `revOf` lets a store override presence (dead nodes). */
  matches(ops: readonly WriteOp[], revOf = (kind: Kind, key: string) => this.getRaw(kind, key)?.rev ?? 0): boolean {
    return ops.every((op) => revOf(op.kind, op.key) === op.rev);
  }

  entries(): { kind: Kind; key: string; json: string; rev: number }[] {
    const out: { kind: Kind; key: string; json: string; rev: number }[] = [];
    for (const [kind, t] of this.tables) for (const [key, r] of t) out.push({ kind, key, ...r });
    return out;
  }

  clear(): void {
    this.tables.clear();
    this.rev = 0;
  }
}

/** The writes of a commit as (kind, key, json|undefined); checks write nothing. */
export function writesOf(ops: readonly WriteOp[]): { kind: Kind; key: string; json: string | undefined }[] {
  const out: { kind: Kind; key: string; json: string | undefined }[] = [];
  for (const op of ops) {
    if (op.op === 'put') out.push({ kind: op.kind, key: op.key, json: JSON.stringify(op.value) });
    else if (op.op === 'delete') out.push({ kind: op.kind, key: op.key, json: undefined });
  }
  return out;
}

/** Reject malformed commits the same way in every store, so the contract suite can pin it. */
export function checkOps(ops: readonly WriteOp[]): void {
  const seen = new Set<string>();
  for (const op of ops) {
    const id = `${op.kind}\0${op.key}`;
    if (seen.has(id)) throw new PlexusError('Internal', `IPAM commit touches ${op.kind} ${op.key} twice`);
    seen.add(id);
    if (op.op === 'delete' && op.rev === 0) throw new PlexusError('Internal', `IPAM commit deletes absent ${op.kind} ${op.key}`);
    if (op.kind === 'node' && op.op !== 'check') throw new PlexusError('Internal', 'node records change only through acquireNode');
  }
}
