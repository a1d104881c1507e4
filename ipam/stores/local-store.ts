/**
 * The local store: crash-safe on one machine, shared safely by several processes, and cheap enough that the
 * allocation path is dominated by memory work.
 *
 * - Every record lives in memory (RecordTable); the disk holds a snapshot plus an append-only journal with
 *   one line per commit, so a commit costs one write(2) and (shared with concurrent commits) one fdatasync.
 * - Commits run under a cross-process FileLock held for a few syscalls. Before deciding a compare, a process
 *   catches up with lines other processes appended (or reloads everything if the journal was compacted, which
 *   replaces it with a new inode). A torn last line from a writer killed mid-write is cut off before appending.
 * - A commit resolves only after the fdatasync that covers its line: callers never hand out an address that
 *   a power cut could forget. Concurrent commits share one fdatasync (group commit).
 * - Except a lazy commit (the node book's pod and slot records, D-6 in docs/decisions.md): it resolves once
 *   its line is written, which a crash of this process cannot undo (the kernel holds it), and reaches the
 *   disk within `lazySyncMs` or with the next synced commit, which covers every line before it. So what a
 *   machine crash leaves is always a prefix of the journal that includes every commit anyone waited for.
 * - Compaction writes the snapshot atomically (tmp, fsync, rename, fsync dir) and then replaces the journal
 *   the same way; journal lines carry their revision, so lines already in the snapshot are skipped on replay.
 * - Node liveness is the registering process: a node record whose pid is gone counts as absent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../../core/atomic-file';
import { PlexusError } from '../../core/errors';
import { FileLock, processAlive, selfStart } from '../../core/file-lock';
import { KINDS, type Kind, type NodeRecord } from '../model/records';
import {
  type AcquireNodeOptions, type CommitOptions, type CommitResult, type NodeLease, type Store, type StoreStats, type Versioned, type WriteOp, RecordTable,
  checkOps, infoOf, nodeBusy, writesOf,
} from './store';

export interface LocalStoreOptions {
  /** Compact when the journal grows past this many bytes. */
  compactBytes?: number;
  lockTimeoutMs?: number;
  /** A lazy commit reaches the disk at most this long after it was written (default 10 ms). */
  lazySyncMs?: number;
}

const io = (what: string, e: unknown): PlexusError => new PlexusError('IoFailure', `failed to ${what}`, { cause: e });

export class LocalStore implements Store {
  private readonly table = new RecordTable();
  private readonly lock: FileLock;
  private readonly journalPath: string;
  private readonly snapshotPath: string;
  private fd = -1;
  private ino = -1;
  private offset = 0;
  /** Size of the last snapshot: the journal may grow to twice that before compacting, so compaction is O(1) amortised. */
  private snapshotBytes = 0;
  private retired: number[] = [];
  private inFlight: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private readonly counters: Required<Omit<StoreStats, 'apiWrites'>> = { writes: 0, conflicts: 0, syncs: 0 };
  private closed = false;
  /** Lines written by lazy commits that no fdatasync has covered yet, and the timer that will. */
  private unsynced = false;
  private lazyTimer: NodeJS.Timeout | undefined;
  /** A lazy line failed to reach the disk: nothing written after it can be trusted to either. */
  private broken: PlexusError | undefined;

  private constructor(readonly dir: string, private readonly opts: LocalStoreOptions) {
    this.lock = new FileLock(path.join(dir, 'lock'), opts.lockTimeoutMs);
    this.journalPath = path.join(dir, 'journal.log');
    this.snapshotPath = path.join(dir, 'snapshot.json');
  }

  static async open(dir: string, opts: LocalStoreOptions = {}): Promise<LocalStore> {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      FileLock.sweep(path.join(dir, 'lock'));
      const s = new LocalStore(dir, opts);
      s.lock.with(() => {
        if (!fs.existsSync(s.journalPath)) {
          fs.closeSync(fs.openSync(s.journalPath, 'a', 0o600));
          fsyncDir(dir);
        }
        s.catchUp();
      });
      return s;
    } catch (e) {
      throw e instanceof PlexusError ? e : io(`open the IPAM store in ${dir}`, e);
    }
  }

  /** Bring the in-memory table up to date with the disk. Caller holds the lock. */
  private catchUp(): void {
    const st = fs.statSync(this.journalPath);
    // A new inode is a compaction by another process; a shorter file than we read cannot be ours to trust.
    if (st.ino !== this.ino || st.size < this.offset) this.reload(st.ino);
    if (st.size === this.offset) return;
    const buf = Buffer.alloc(st.size - this.offset);
    fs.readSync(this.fd, buf, 0, buf.length, this.offset);
    let start = 0;
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
      if (!this.applyLine(buf.toString('utf8', start, nl))) break;
      start = nl + 1;
    }
    this.offset += start;
    // Bytes past the last good line are a torn write by a process that died holding the lock (we hold it
    // now): cut them off so our next line starts clean.
    if (this.offset < st.size) fs.ftruncateSync(this.fd, this.offset);
  }

  private reload(ino: number): void {
    this.table.clear();
    let text = '';
    try {
      text = fs.readFileSync(this.snapshotPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.snapshotBytes = text.length;
    for (const line of text.split('\n')) {
      const tab = line.indexOf('\t');
      if (tab < 0) continue;
      const [kind, key, rev] = JSON.parse(line.slice(0, tab)) as [Kind, string, number];
      this.table.set(kind, key, line.slice(tab + 1), rev);
    }
    const head = /^(\d+)\n/.exec(text);
    if (head) this.table.rev = Math.max(this.table.rev, Number(head[1]));
    if (this.fd >= 0) this.retired.push(this.fd);
    this.fd = fs.openSync(this.journalPath, 'a+', 0o600);
    this.ino = ino;
    this.offset = 0;
  }

  /** Apply one journal line; false if it is torn or garbled (the end of the usable journal). */
  private applyLine(line: string): boolean {
    let rec: { s: number; w: [Kind, string, unknown][] };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      return false;
    }
    if (typeof rec?.s !== 'number' || !Array.isArray(rec.w)) return false;
    if (rec.s <= this.table.rev) return true; // already in the snapshot
    for (const [kind, key, value] of rec.w) {
      if (!KINDS.includes(kind)) return false;
      this.table.set(kind, key, value === null ? undefined : JSON.stringify(value), rec.s);
    }
    this.table.rev = rec.s;
    return true;
  }

  private revOf = (kind: Kind, key: string): number => {
    const r = this.table.getRaw(kind, key);
    if (!r) return 0;
    if (kind === 'node' && !this.nodeAlive(JSON.parse(r.json) as NodeRecord)) return 0;
    return r.rev;
  };

  private nodeAlive = (n: NodeRecord): boolean => n.pid !== undefined && processAlive(n.pid, n.start);

  private read<T>(fn: () => T): T {
    if (this.closed) throw new PlexusError('Internal', 'IPAM local store is closed');
    try {
      return this.lock.with(() => {
        this.catchUp();
        return fn();
      });
    } catch (e) {
      throw e instanceof PlexusError ? e : io(`read the IPAM store in ${this.dir}`, e);
    }
  }

  async get<T>(kind: Kind, key: string): Promise<Versioned<T> | undefined> {
    return this.read(() => (this.revOf(kind, key) === 0 ? undefined : this.table.get<T>(kind, key)));
  }

  async list<T>(kind: Kind, prefix?: string): Promise<Map<string, Versioned<T>>> {
    return this.read(() => {
      const out = this.table.list<T>(kind, prefix);
      if (kind === 'node') for (const [k] of out) if (this.revOf('node', k) === 0) out.delete(k);
      return out;
    });
  }

  async commit(ops: readonly WriteOp[], opts: CommitOptions = {}): Promise<CommitResult> {
    checkOps(ops);
    if (this.broken) throw this.broken;
    const res = this.read(() => this.commitLocked(ops, writesOf(ops)));
    if (res.ok && res.wrote) {
      if (opts.lazy) this.syncSoon();
      else await this.durable();
    }
    return { ok: res.ok, rev: res.rev };
  }

  /** Cover lazily committed lines with an fdatasync within lazySyncMs (unless a synced commit does it first). */
  private syncSoon(): void {
    this.unsynced = true;
    if (this.lazyTimer) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      if (!this.unsynced || this.closed) return;
      this.durable().catch((e: unknown) => {
        this.broken ??= e instanceof PlexusError ? e : io(`sync ${this.journalPath}`, e);
      });
    }, this.opts.lazySyncMs ?? 10);
    // A process that exits without close() loses nothing by it: the kernel still writes the lines back.
    this.lazyTimer.unref();
  }

  private commitLocked(ops: readonly WriteOp[], writes: ReturnType<typeof writesOf>): CommitResult & { wrote: boolean } {
    if (!this.table.matches(ops, this.revOf)) {
      this.counters.conflicts++;
      return { ok: false, rev: this.table.rev, wrote: false };
    }
    if (writes.length === 0) return { ok: true, rev: this.table.rev, wrote: false };
    const rev = this.table.rev + 1;
    const body = writes.map((w) => `[${JSON.stringify(w.kind)},${JSON.stringify(w.key)},${w.json ?? 'null'}]`);
    const line = Buffer.from(`{"s":${rev},"w":[${body.join(',')}]}\n`);
    const n = fs.writeSync(this.fd, line);
    if (n !== line.length) {
      fs.ftruncateSync(this.fd, this.offset);
      throw new PlexusError('IoFailure', `short write to ${this.journalPath} (${n} of ${line.length} bytes)`);
    }
    this.offset += n;
    for (const w of writes) this.table.set(w.kind, w.key, w.json, rev);
    this.counters.writes++;
    if (this.offset > Math.max(this.opts.compactBytes ?? 4 << 20, 2 * this.snapshotBytes)) this.compact();
    return { ok: true, rev, wrote: true };
  }

  /** Snapshot everything, then start an empty journal. Caller holds the lock. */
  private compact(): void {
    const lines = [`${this.table.rev}`];
    for (const r of this.table.entries()) lines.push(`${JSON.stringify([r.kind, r.key, r.rev])}\t${r.json}`);
    writeFileAtomic(this.snapshotPath, `${lines.join('\n')}\n`);
    writeFileAtomic(this.journalPath, '');
    this.reload(fs.statSync(this.journalPath).ino);
  }

  /** Resolve once every line appended before this call is on disk; one fdatasync serves many commits. */
  private durable(): Promise<void> {
    if (!this.inFlight) return (this.inFlight = this.syncOnce());
    if (!this.queued) {
      this.queued = this.inFlight.catch(() => undefined).then(() => {
        this.queued = null;
        return this.durable();
      });
    }
    return this.queued;
  }

  private async syncOnce(): Promise<void> {
    const fd = this.fd;
    const retired = this.retired;
    this.retired = [];
    this.unsynced = false; // everything written so far is covered by this fdatasync
    this.counters.syncs++;
    try {
      await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(io(`sync ${this.journalPath}`, e)) : resolve())));
    } finally {
      for (const old of retired) fs.close(old, () => undefined);
      this.inFlight = null;
    }
  }

  async acquireNode(node: string, opts: AcquireNodeOptions): Promise<NodeLease> {
    const value: NodeRecord = { token: opts.token, pid: process.pid, start: selfStart(), ...infoOf(opts) };
    const res = this.read(() => {
      const cur = this.revOf('node', node) ? this.table.get<NodeRecord>('node', node) : undefined;
      if (cur && (cur.value.token !== opts.token || cur.value.pid !== process.pid)) {
        throw nodeBusy(node, `pid ${cur.value.pid} is serving it`);
      }
      return this.commitLocked([], [{ kind: 'node', key: node, json: JSON.stringify(value) }]);
    });
    if (res.wrote) await this.durable();
    const mine = res.rev;
    let valid = true;
    return {
      node,
      valid: () => valid && !this.closed,
      revoke: async () => {
        if (!valid) return;
        valid = false;
        const gone = this.read(() => this.table.getRaw('node', node)?.rev === mine && this.commitLocked([], [{ kind: 'node', key: node, json: undefined }]));
        if (gone) await this.durable();
      },
    };
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    if (this.unsynced) await this.durable().catch(() => undefined);
    while (this.inFlight || this.queued) await (this.queued ?? this.inFlight)?.catch(() => undefined);
    this.closed = true;
    for (const fd of [this.fd, ...this.retired]) if (fd >= 0) fs.closeSync(fd);
    this.fd = -1;
    this.lock.dispose();
  }
}
