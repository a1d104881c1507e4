/**
 * The Kubernetes IPAM store: the shared store's records as custom resources, for clusters that give Plexus no
 * etcd of its own. One `IPAMRecord` (plexus.io/v1alpha1, cluster-scoped, crds/plexus-ipamrecord.yaml) per
 * record, named from its kind and key, labelled with its kind (and, for a block, its pool and the node it has
 * affinity to), so `kubectl get ipamrecords -l plexus.io/kind=block` is the cluster's block map.
 *
 * Revisions are resourceVersions, which Kubernetes lets clients compare as integers for objects of one
 * resource (KEP-5504, stable in 1.35; they always were etcd revisions): every record and every transaction is
 * an object of that one resource, so a record's revision grows with each write and is never reused.
 *
 * A commit of one put or delete is one update, create or delete with the resourceVersion as precondition (409
 * is the compare failing): the store's hot path (a node growing its reserve in its own block) costs one
 * request, as with etcd. A commit of several records (a block and a fixed address, a block and a dead node's
 * registration) has no API transaction to use, so it runs a small two-phase protocol:
 *   1. create a transaction object (`txn-<id>`, state pending) listing the ops;
 *   2. lock each record, in name order, by writing the transaction's name into it (a record that does not
 *      exist yet gets an `absent` placeholder), each write compared with the resourceVersion just read, after
 *      checking the op's expected revision; a failed check aborts;
 *   3. the commit point: the transaction's state set to committed, compared with its resourceVersion (someone
 *      who found it stale may have aborted it); its new resourceVersion is the revision of every record written;
 *   4. apply each op (value written, lock removed), then delete the transaction.
 * Whoever meets a locked record settles it before writing: a committed transaction is finished (rolled
 * forward), an aborted or missing one rolled back, a pending one waited for, and aborted once older than
 * `txnTimeoutMs`. Readers never wait: a record locked by a committed transaction reads as that transaction
 * wrote it; otherwise as it was. So a daemon killed at any point leaves nothing a reader can see half done.
 *
 * A node's registration is a record with a lease (renewal time, TTL) renewed by its own loop. Other nodes
 * take it as dead `clockSkewMs` after it expired by their clock; the node stops trusting it `FENCE_MARGIN_MS`
 * before it expires by its own (the same fencing as the etcd store). Renewals keep the record's revision, as
 * etcd's keepalives keep the key's: a revision changes only when a node registers.
 */
import { randomBytes, createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { PlexusError, errorText } from '../../core/errors';
import type { Kind, NodeRecord } from '../model/records';
import {
  type AcquireNodeOptions, type CommitResult, type NodeLease, type Store, type StoreStats, type Versioned, type WriteOp, checkOps, infoOf,
  nodeBusy,
} from './store';

/** What the store needs of an API client: one request, its status and JSON (meta-plugin's KubeClient is one). */
export interface KubeApi {
  request(method: string, path: string, opts?: { body?: unknown }): Promise<{ status: number; json: unknown }>;
}

export interface KubeStoreOptions {
  api: KubeApi;
  /** A pending transaction older than this is taken as abandoned and aborted by whoever meets it. */
  txnTimeoutMs?: number;
  /** How much later than its expiry by our clock another node's registration is taken as dead. */
  clockSkewMs?: number;
  clock?: () => number;
}

export const IPAM_RECORD_API = '/apis/plexus.io/v1alpha1/ipamrecords';
const KIND_LABEL = 'plexus.io/kind';
const FENCE_MARGIN_MS = 1000;
/** Rounds of read-compare-write on one record before giving up (each lost round means someone else wrote). */
const MAX_ROUNDS = 200;
const AGAIN = Symbol('again');

type RecordKind = Kind | 'txn';

interface Lease {
  renewed: number;
  ttlMs: number;
}

interface RecordSpec {
  kind: RecordKind;
  key: string;
  value?: unknown;
  /** The revision when it is not the resourceVersion: set by a transaction's commit, kept by locks and renewals. */
  rev?: string;
  /** A placeholder for a record a pending transaction creates: absent until it commits. */
  absent?: boolean;
  /** The transaction holding the record. */
  txn?: string;
  /** A node registration's lease. */
  lease?: Lease;
}

interface RecordObject {
  metadata: { name: string; resourceVersion: string };
  spec: RecordSpec;
}

type TxnState = 'pending' | 'committed' | 'aborted';

interface TxnValue {
  state: TxnState;
  ops: WriteOp[];
  /** When it began, by its owner's clock. */
  started: number;
  /** host/pid of the owner, for whoever reads it with kubectl. */
  owner: string;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** The object name of a record: readable, a valid DNS subdomain whatever the key, and unique (a hash of kind and key). */
export function recordName(kind: RecordKind, key: string): string {
  if (kind === 'txn') return key;
  const readable = key.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 180);
  const hash = createHash('sha256').update(`${kind}\0${key}`).digest('hex').slice(0, 12);
  return `${kind}-${readable ? `${readable}-` : ''}${hash}`;
}

const revOf = (o: RecordObject): number => Number(o.spec.rev ?? o.metadata.resourceVersion);
const rvOf = (json: unknown): number => Number((json as RecordObject | undefined)?.metadata?.resourceVersion ?? 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ok = (status: number): boolean => status === 200 || status === 201;

const failed = (what: string, detail: string, cause?: unknown): PlexusError =>
  new PlexusError('TryAgainLater', `failed to ${what} in the Kubernetes API: ${detail}`, cause === undefined ? undefined : { cause });

export class KubeStore implements Store {
  private readonly api: KubeApi;
  private readonly now: () => number;
  private readonly txnTimeoutMs: number;
  private readonly skewMs: number;
  private readonly counters = { writes: 0, conflicts: 0, apiWrites: 0 };
  private readonly timers = new Set<NodeJS.Timeout>();
  /**
   * The resourceVersion at which this process last saw each unlocked record, with its revision: a commit whose
   * expected revision is that one writes at once, compared with that resourceVersion (one request, not two).
   */
  private readonly seen = new Map<string, { rv: string; rev: number }>();

  private constructor(opts: KubeStoreOptions) {
    this.api = opts.api;
    this.now = opts.clock ?? Date.now;
    this.txnTimeoutMs = opts.txnTimeoutMs ?? 10_000;
    this.skewMs = opts.clockSkewMs ?? 2000;
  }

  /** Checks that the IPAMRecord kind is served (the CRD applied) and that we may list it, then finishes abandoned transactions. */
  static async open(opts: KubeStoreOptions): Promise<KubeStore> {
    const s = new KubeStore(opts);
    const r = await s.send('GET', listPath('txn'), undefined, 'list IPAM transactions');
    if (r.status === 404) {
      throw new PlexusError('InvalidConfig', 'ipam.store: the Kubernetes API does not serve ipamrecords.plexus.io: apply crds/plexus-ipamrecord.yaml');
    }
    if (r.status === 401 || r.status === 403) {
      throw new PlexusError('InvalidConfig', `ipam.store: the Kubernetes API refuses to list ipamrecords.plexus.io (${r.status}): see deploy/rbac.yaml`);
    }
    if (r.status !== 200) throw failed('list IPAM transactions', statusText(r));
    for (const t of (r.json as { items?: RecordObject[] }).items ?? []) {
      if (s.now() - (t.spec.value as TxnValue).started > s.txnTimeoutMs) await s.settleTxn(t).catch(() => undefined);
    }
    return s;
  }

  // ---- the wire ----

  /** One request; a lost connection is TryAgainLater, any answer is the caller's to judge. */
  private async send(method: string, path: string, body: unknown, what: string): Promise<{ status: number; json: unknown }> {
    if (method !== 'GET') this.counters.apiWrites++;
    try {
      return await this.api.request(method, path, body === undefined ? {} : { body });
    } catch (e) {
      throw failed(what, errorText(e), e);
    }
  }

  /** One request whose overload, server error or refusal is TryAgainLater. */
  private async call(method: string, path: string, body: unknown, what: string): Promise<{ status: number; json: unknown }> {
    const r = await this.send(method, path, body, what);
    if (r.status >= 500 || r.status === 429 || r.status === 401 || r.status === 403) throw failed(what, statusText(r));
    return r;
  }

  private async fetch(name: string, what: string): Promise<RecordObject | undefined> {
    const r = await this.call('GET', `${IPAM_RECORD_API}/${name}`, undefined, what);
    if (r.status === 404) {
      this.seen.delete(name);
      return undefined;
    }
    if (r.status !== 200) throw failed(what, statusText(r));
    return this.saw(r.json as RecordObject);
  }

  private saw(obj: RecordObject): RecordObject {
    const name = obj.metadata.name;
    if (obj.spec.txn || obj.spec.absent || obj.spec.kind === 'txn') this.seen.delete(name);
    else {
      if (this.seen.size >= 65_536) this.seen.clear();
      this.seen.set(name, { rv: obj.metadata.resourceVersion, rev: revOf(obj) });
    }
    return obj;
  }

  /** The record once no transaction holds it (settling any that does), or undefined when it does not exist. */
  private async fetchUnlocked(name: string, what: string): Promise<RecordObject | undefined> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const obj = await this.fetch(name, what);
      if (!obj?.spec.txn) return obj;
      await this.settle(obj);
    }
    throw failed(what, `it kept changing (${MAX_ROUNDS} rounds)`);
  }

  /** Create (no resourceVersion) or update (compared with `rv`); the new object, or undefined when the compare failed. */
  private async write(spec: RecordSpec, rv: string | undefined, what: string): Promise<RecordObject | undefined> {
    const name = recordName(spec.kind, spec.key);
    const body = { apiVersion: 'plexus.io/v1alpha1', kind: 'IPAMRecord', metadata: { name, labels: labelsOf(spec), ...(rv ? { resourceVersion: rv } : {}) }, spec };
    const r = rv === undefined
      ? await this.call('POST', IPAM_RECORD_API, body, what)
      : await this.call('PUT', `${IPAM_RECORD_API}/${name}`, body, what);
    if (ok(r.status)) return this.saw(r.json as RecordObject);
    if (r.status === 409 || r.status === 404) return undefined;
    throw failed(what, statusText(r));
  }

  /** Delete compared with `rv`: false when the compare failed (or it is gone already). */
  private async remove(name: string, rv: string, what: string): Promise<{ done: boolean; rev: number }> {
    const r = await this.call('DELETE', `${IPAM_RECORD_API}/${name}`, { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { resourceVersion: rv } }, what);
    this.seen.delete(name);
    if (r.status === 200 || r.status === 202) return { done: true, rev: rvOf(r.json) };
    if (r.status === 409 || r.status === 404) return { done: false, rev: 0 };
    throw failed(what, statusText(r));
  }

  // ---- reads ----

  async get<T>(kind: Kind, key: string): Promise<Versioned<T> | undefined> {
    const what = `read ${kind} ${key}`;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const obj = await this.fetch(recordName(kind, key), what);
      if (!obj) return undefined;
      const v = await this.view<T>(obj, new Map());
      if (v !== AGAIN) return v;
      await this.settle(obj);
    }
    throw failed(what, `it kept changing (${MAX_ROUNDS} rounds)`);
  }

  async list<T>(kind: Kind, prefix = ''): Promise<Map<string, Versioned<T>>> {
    const what = `list ${kind}`;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const r = await this.call('GET', listPath(kind), undefined, what);
      if (r.status !== 200) throw failed(what, statusText(r));
      const list = r.json as { metadata?: { resourceVersion?: string }; items?: RecordObject[] };
      const snapshot = Number(list.metadata?.resourceVersion ?? Infinity);
      const txns = new Map<string, Promise<RecordObject | undefined>>();
      const out = new Map<string, Versioned<T>>();
      const unsettled: RecordObject[] = [];
      for (const obj of list.items ?? []) {
        if (obj.spec.kind !== kind || !obj.spec.key.startsWith(prefix)) continue;
        const v = await this.view<T>(obj, txns, snapshot);
        if (v === AGAIN) unsettled.push(obj);
        else if (v) out.set(obj.spec.key, v);
      }
      if (unsettled.length === 0) return out;
      for (const obj of unsettled) await this.settle(obj);
    }
    throw failed(what, `records kept changing (${MAX_ROUNDS} rounds)`);
  }

  /**
   * A record as a reader sees it: as its transaction wrote it when that committed (by `snapshot`, the list's
   * resourceVersion, for a list), else as stored. AGAIN when the transaction has ended since the record was read
   * (what it did is then only in the record itself: read it again).
   */
  private async view<T>(obj: RecordObject, txns: Map<string, Promise<RecordObject | undefined>>, snapshot = Infinity): Promise<Versioned<T> | undefined | typeof AGAIN> {
    const s = obj.spec;
    if (s.txn) {
      let t = txns.get(s.txn);
      if (!t) txns.set(s.txn, (t = this.fetch(s.txn, `read transaction ${s.txn}`)));
      const txn = await t;
      if (!txn) return AGAIN;
      const tv = txn.spec.value as TxnValue;
      const rev = Number(txn.metadata.resourceVersion);
      if (tv.state === 'committed' && rev <= snapshot) {
        const op = tv.ops.find((o) => o.kind === s.kind && o.key === s.key);
        if (op?.op === 'put') return { value: structuredClone(op.value) as T, rev };
        if (op?.op === 'delete' || (op?.op === 'check' && op.rev === 0)) return undefined;
      }
    }
    if (s.absent || this.expired(s)) return undefined;
    return { value: s.value as T, rev: revOf(obj) };
  }

  /** A node registration that other nodes may take as dead. */
  private expired(s: RecordSpec): boolean {
    return s.lease !== undefined && this.now() > s.lease.renewed + s.lease.ttlMs + this.skewMs;
  }

  /** The revision a commit compares against: 0 for a record that is absent, a placeholder, or a dead node. */
  private current(obj: RecordObject | undefined): number {
    return !obj || obj.spec.absent || this.expired(obj.spec) ? 0 : revOf(obj);
  }

  // ---- commits ----

  async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    checkOps(ops);
    if (ops.length === 0) return { ok: true, rev: 0 };
    const only = ops[0] as WriteOp;
    const res = ops.length === 1 && only.op !== 'check' ? await this.commitOne(only) : await this.commitMany(ops);
    if (!res.ok) this.counters.conflicts++;
    else if (ops.some((o) => o.op !== 'check')) this.counters.writes++;
    return res;
  }

  /** One put or delete: one request compared with the resourceVersion read, after the op's own compare. */
  private async commitOne(op: WriteOp): Promise<CommitResult> {
    const what = `write ${op.kind} ${op.key}`;
    const name = recordName(op.kind, op.key);
    // At once, when what we saw last decides the compare: a create, or the revision we last saw unlocked.
    const seen = this.seen.get(name);
    const fast = op.rev === 0 && op.op === 'put' ? await this.writeOp(op, name, undefined, what)
      : seen && seen.rev === op.rev ? await this.writeOp(op, name, seen.rv, what) : undefined;
    if (fast) return fast;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const obj = await this.fetchUnlocked(name, what);
      if (this.current(obj) !== op.rev) return { ok: false, rev: 0 };
      const done = await this.writeOp(op, name, obj?.metadata.resourceVersion, what);
      if (done) return done;
      // The object changed between the read and the write: read it again (the op's compare decides).
    }
    throw failed(what, `it kept changing (${MAX_ROUNDS} rounds)`);
  }

  /** A put (a create without `rv`) or a delete compared with `rv`; undefined when the compare failed. */
  private async writeOp(op: WriteOp, name: string, rv: string | undefined, what: string): Promise<CommitResult | undefined> {
    if (op.op === 'put') {
      const written = await this.write({ kind: op.kind, key: op.key, value: op.value }, rv, what);
      return written && { ok: true, rev: Number(written.metadata.resourceVersion) };
    }
    if (rv === undefined) return undefined;
    const r = await this.remove(name, rv, what);
    return r.done ? { ok: true, rev: r.rev } : undefined;
  }

  /** Several records, or a check: the two-phase protocol of the file comment. */
  private async commitMany(ops: readonly WriteOp[]): Promise<CommitResult> {
    const id = randomBytes(8).toString('hex');
    const value: TxnValue = { state: 'pending', ops: [...ops], started: this.now(), owner: `${hostname()}/${process.pid}` };
    const created = await this.write({ kind: 'txn', key: `txn-${id}`, value }, undefined, 'begin an IPAM transaction');
    if (!created) throw failed('begin an IPAM transaction', 'its name was taken');
    let txn = created;
    try {
      const order = [...ops].sort((a, b) => (recordName(a.kind, a.key) < recordName(b.kind, b.key) ? -1 : 1));
      for (const op of order) {
        if (!(await this.lock(txn.metadata.name, op))) {
          await this.abort(txn);
          return { ok: false, rev: 0 };
        }
      }
    } catch (e) {
      await this.abort(txn).catch(() => undefined);
      throw e;
    }
    // The commit point. A 409 means someone found the transaction stale and aborted it: then nothing happened.
    const committed = await this.write({ ...txn.spec, value: { ...value, state: 'committed' } }, txn.metadata.resourceVersion, 'commit an IPAM transaction')
      .catch(async (e: unknown) => {
        // The answer was lost: the transaction says what happened.
        const now = await this.fetch(txn.metadata.name, 'read an IPAM transaction').catch(() => undefined);
        if ((now?.spec.value as TxnValue | undefined)?.state === 'committed') return now;
        throw e;
      });
    if (!committed) {
      const now = await this.fetch(txn.metadata.name, 'read an IPAM transaction');
      if (now) txn = now;
      await this.abort(txn);
      return { ok: false, rev: 0 };
    }
    // Committed: readers see it already. Applying is tidying up, which whoever meets a lock also does.
    await this.finish(committed).catch(() => undefined);
    return { ok: true, rev: Number(committed.metadata.resourceVersion) };
  }

  /** Lock one record for transaction `txn`: true once locked, false when the op's compare fails. */
  private async lock(txn: string, op: WriteOp): Promise<boolean> {
    const what = `lock ${op.kind} ${op.key}`;
    const name = recordName(op.kind, op.key);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const obj = await this.fetch(name, what);
      if (obj?.spec.txn === txn) return true; // our own write, whose answer we lost
      if (obj?.spec.txn) {
        await this.settle(obj);
        continue;
      }
      if (this.current(obj) !== op.rev) return false;
      const spec: RecordSpec = obj ? { ...obj.spec, txn, rev: String(revOf(obj)) } : { kind: op.kind, key: op.key, absent: true, txn };
      if (await this.write(spec, obj?.metadata.resourceVersion, what)) return true;
    }
    throw failed(what, `it kept changing (${MAX_ROUNDS} rounds)`);
  }

  /** Abort a transaction that has not committed (ours, or an abandoned one) and roll back its locks. */
  private async abort(txn: RecordObject): Promise<void> {
    const name = txn.metadata.name;
    const ops = (txn.spec.value as TxnValue).ops;
    let cur: RecordObject | undefined = txn;
    for (let round = 0; cur && (cur.spec.value as TxnValue).state === 'pending'; round++) {
      if (round >= MAX_ROUNDS) throw failed(`abort transaction ${name}`, `it kept changing (${MAX_ROUNDS} rounds)`);
      const v = cur.spec.value as TxnValue;
      cur = (await this.write({ ...cur.spec, value: { ...v, state: 'aborted' } }, cur.metadata.resourceVersion, `abort transaction ${name}`))
        ?? (await this.fetch(name, `read transaction ${name}`));
    }
    if (cur && (cur.spec.value as TxnValue).state === 'committed') return this.finish(cur);
    return this.rollBack(name, ops, cur);
  }

  /** Undo the locks of an aborted (or vanished) transaction, then delete it. */
  private async rollBack(txn: string, ops: readonly WriteOp[], obj: RecordObject | undefined): Promise<void> {
    for (const op of ops) {
      await this.release(op, txn, unlocked);
    }
    if (obj) await this.remove(txn, obj.metadata.resourceVersion, 'delete an IPAM transaction');
  }

  /** Apply a committed transaction to every record it still holds, then delete it. */
  private async finish(txn: RecordObject): Promise<void> {
    const v = txn.spec.value as TxnValue;
    const rev = txn.metadata.resourceVersion;
    for (const op of v.ops) {
      await this.release(op, txn.metadata.name, (rec) => {
        if (op.op === 'put') return { kind: op.kind, key: op.key, value: op.value, rev };
        if (op.op === 'delete') return null;
        // A check: the record stays as it is, except a dead node's registration, which goes (as its etcd lease would).
        if (op.kind === 'node' && op.rev === 0) return null;
        return unlocked(rec);
      });
    }
    await this.remove(txn.metadata.name, rev, 'delete an IPAM transaction');
  }

  /** If `op`'s record is still locked by `txn`, replace it with `next(record)` (null: delete it). */
  private async release(op: WriteOp, txn: string, next: (rec: RecordObject) => RecordSpec | null): Promise<void> {
    const what = `release ${op.kind} ${op.key}`;
    const name = recordName(op.kind, op.key);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const obj = await this.fetch(name, what);
      if (!obj || obj.spec.txn !== txn) return;
      const spec = next(obj);
      if (spec === null ? (await this.remove(name, obj.metadata.resourceVersion, what)).done : await this.write(spec, obj.metadata.resourceVersion, what)) return;
    }
    throw failed(what, `it kept changing (${MAX_ROUNDS} rounds)`);
  }

  /** Settle the transaction that locks `obj`, so a writer can go on: finish, roll back, wait, or abort it. */
  private async settle(obj: RecordObject): Promise<void> {
    const name = obj.spec.txn as string;
    const txn = await this.fetch(name, `read transaction ${name}`);
    if (!txn) {
      // Ended: a lock left behind is a write that landed after its transaction was aborted, or a stale read.
      const op = { op: 'check', kind: obj.spec.kind as Kind, key: obj.spec.key, rev: 0 } as const;
      return this.release(op, name, unlocked);
    }
    const v = txn.spec.value as TxnValue;
    if (v.state === 'pending' && this.now() - v.started <= this.txnTimeoutMs) return sleep(5 + Math.random() * 20);
    return this.settleTxn(txn);
  }

  private async settleTxn(txn: RecordObject): Promise<void> {
    const v = txn.spec.value as TxnValue;
    return v.state === 'committed' ? this.finish(txn) : this.abort(txn);
  }

  // ---- nodes ----

  async acquireNode(node: string, opts: AcquireNodeOptions): Promise<NodeLease> {
    const ttlMs = opts.ttlMs ?? 30_000;
    const what = `register node ${node}`;
    const name = recordName('node', node);
    const value: NodeRecord = { token: opts.token, pid: process.pid, ...infoOf(opts) };
    let obj: RecordObject | undefined;
    let validUntil = 0;
    for (let round = 0; !obj; round++) {
      if (round >= MAX_ROUNDS) throw failed(what, `it kept changing (${MAX_ROUNDS} rounds)`);
      const cur = await this.fetchUnlocked(name, what);
      if (this.current(cur) !== 0 && (cur?.spec.value as NodeRecord).token !== opts.token) {
        throw nodeBusy(node, 'its registration in the Kubernetes API is alive under another token');
      }
      const t0 = this.now();
      obj = await this.write({ kind: 'node', key: node, value, lease: { renewed: t0, ttlMs } }, cur?.metadata.resourceVersion, what);
      validUntil = t0 + ttlMs - FENCE_MARGIN_MS;
    }
    this.counters.writes++;
    const rev = obj.metadata.resourceVersion; // the registration's revision, kept by renewals
    let rv = rev;
    let lost = false;
    let busy = false;
    const renew = async (): Promise<void> => {
      const sent = this.now();
      if (sent > validUntil) lost = true;
      if (lost || busy) return;
      busy = true;
      try {
        for (let round = 0; round < 20 && !lost; round++) {
          const done = await this.write({ kind: 'node', key: node, value, lease: { renewed: sent, ttlMs }, rev }, rv, `renew node ${node}`);
          if (done) {
            rv = done.metadata.resourceVersion;
            validUntil = Math.max(validUntil, sent + ttlMs - FENCE_MARGIN_MS);
            return;
          }
          const cur = await this.fetch(name, `renew node ${node}`);
          // Gone, taken over, or taken as dead by another node: this registration is over.
          if (!cur || cur.spec.absent || revOf(cur) !== Number(rev)) lost = true;
          else if (cur.spec.txn) await this.settle(cur);
          else rv = cur.metadata.resourceVersion;
        }
      } catch {
        // Unreachable API: try again at the next tick; valid() runs out by itself meanwhile.
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void renew(), Math.max(200, ttlMs / 3));
    timer.unref();
    this.timers.add(timer);
    return {
      node,
      valid: () => !lost && this.now() < validUntil,
      revoke: async () => {
        clearInterval(timer);
        this.timers.delete(timer);
        lost = true;
        for (let round = 0; round < MAX_ROUNDS; round++) {
          const cur = await this.fetchUnlocked(name, `revoke node ${node}`);
          if (!cur || cur.spec.absent || revOf(cur) !== Number(rev)) return; // taken over: not ours to remove
          if ((await this.remove(name, cur.metadata.resourceVersion, `revoke node ${node}`)).done) return;
        }
      },
    };
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    // Registrations are left to expire, not removed: closing is not the node leaving for good.
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
  }
}

/** Labels that let kubectl select records: the kind, and a block's pool and the node it has affinity to. */
function labelsOf(spec: RecordSpec): Record<string, string> {
  const labels: Record<string, string> = { [KIND_LABEL]: spec.kind };
  if (spec.kind === 'block' && spec.value && typeof spec.value === 'object') {
    const b = spec.value as { pool?: unknown; owner?: unknown };
    if (typeof b.pool === 'string' && LABEL_VALUE.test(b.pool)) labels['plexus.io/pool'] = b.pool;
    if (typeof b.owner === 'string' && LABEL_VALUE.test(b.owner)) labels['plexus.io/node'] = b.owner;
  }
  return labels;
}

/** A record released by a transaction that did not change it: a placeholder goes, anything else loses its lock. */
function unlocked(rec: RecordObject): RecordSpec | null {
  if (rec.spec.absent) return null;
  const { txn: _, ...spec } = rec.spec;
  return spec;
}

const listPath = (kind: RecordKind): string => `${IPAM_RECORD_API}?labelSelector=${encodeURIComponent(`${KIND_LABEL}=${kind}`)}`;

const statusText = (r: { status: number; json: unknown }): string =>
  `${r.status} ${(r.json as { message?: string } | undefined)?.message ?? ''}`.trim();
