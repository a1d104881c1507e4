/**
 * Typed access to a BPF map: lookup, update, delete and iteration through key and value codecs.
 *
 *   const stats = BpfMap.openPinned('/sys/fs/bpf/plexus/proto_stats', u32, ProtoStats);
 *   try { stats.lookup(6); for (const [proto, s] of stats.entries()) ...; } finally { stats.close(); }
 *
 * A map is either owned (opened from a pin: close() closes its fd) or borrowed from a BpfObject (valid while the
 * object is open: the object's close() ends it, and a borrowed map used after that fails with EBADF instead of
 * touching whatever file later reuses the fd number).
 *
 * Per-CPU maps hold one value per possible CPU: use lookupPerCpu/updatePerCpu/entriesPerCpu on them (lookup
 * and update refuse with EINVAL, since one value would silently mean "CPU 0").
 */
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { ERRNO, hasErrno, invalidArgument, KernelError } from '../errno';
import { closeFd } from '../libc';
import { type Codec, raw } from './codec';
import { BPF_UPDATE, PER_CPU_MAP_TYPES } from './constants';
import { checkInt, type MapInfo, mapInfo, possibleCpus } from './libbpf';
import { checkPinPath, ensurePinDir } from './pins';

export type UpdateMode = 'any' | 'noexist' | 'exist';
const MODES: Record<UpdateMode, number> = { any: BPF_UPDATE.ANY, noexist: BPF_UPDATE.NOEXIST, exist: BPF_UPDATE.EXIST };

/** Who keeps a map's fd valid: the map itself (opened from a pin) or the BpfObject it came from. */
export interface FdHandle {
  readonly closed: boolean;
  /** "object /path/x.o": what the fd belongs to, for messages. */
  readonly what: string;
}

/** An fd this module opened and closes. */
class OwnedFd implements FdHandle {
  closed = false;

  constructor(
    readonly fd: number,
    readonly what: string,
  ) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

const align8 = (n: number): number => (n + 7) & ~7;

export class BpfMap<K = Buffer, V = Buffer> {
  private viewClosed = false;

  private constructor(
    private readonly mapFd: number,
    readonly info: MapInfo,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
    private readonly handle: FdHandle,
    /** Set when this map (and the views made from it) own the fd. */
    private readonly owned: OwnedFd | null,
  ) {}

  /** @internal A map of a loaded BpfObject; valid while `owner` is open. */
  static borrow(fd: number, owner: FdHandle): BpfMap {
    const info = mapInfo(fd, `inspect a map of ${owner.what}`);
    return new BpfMap(fd, info, raw(info.keySize), raw(info.valueSize), owner, null);
  }

  /** Opens a pinned map (BPF_OBJ_GET). ENOENT when nothing is pinned there; EINVAL when the pin is no map. */
  static openPinned(path: string): BpfMap;
  static openPinned<K2, V2>(path: string, key: Codec<K2>, value: Codec<V2>): BpfMap<K2, V2>;
  static openPinned<K2, V2>(path: string, key?: Codec<K2>, value?: Codec<V2>): BpfMap<K2, V2> | BpfMap {
    const what = `open pinned map ${path}`;
    checkPinPath(path, what);
    const owned = new OwnedFd(checkInt(what, (l) => l.bpf_obj_get(path)), `pinned map ${path}`);
    try {
      // bpf_obj_get_info_by_fd answers for programs and links too, in another layout: check the kind first.
      if (!/^map_type:/m.test(readFileSync(`/proc/self/fdinfo/${owned.fd}`, 'utf8'))) {
        throw invalidArgument(what, 'the pinned object is not a map');
      }
      const info = mapInfo(owned.fd, what);
      const map = new BpfMap(owned.fd, info, raw(info.keySize), raw(info.valueSize), owned, owned);
      return key && value ? map.typed(key, value) : map;
    } catch (err) {
      owned.close();
      throw err;
    }
  }

  get fd(): number {
    return this.liveFd();
  }

  get name(): string {
    return this.info.name;
  }

  get perCpu(): boolean {
    return PER_CPU_MAP_TYPES.has(this.info.type);
  }

  /**
   * The same map seen through other codecs, whose sizes must match the map's key and value sizes. A view
   * shares the fd: closing an owned map or any of its views closes them all.
   */
  typed<K2, V2>(key: Codec<K2>, value: Codec<V2>): BpfMap<K2, V2> {
    const what = `use map ${this.name} as ${key.cName} -> ${value.cName}`;
    if (key.size !== this.info.keySize) throw invalidArgument(what, `key is ${this.info.keySize} bytes, codec ${key.size}`);
    if (value.size !== this.info.valueSize) {
      throw invalidArgument(what, `value is ${this.info.valueSize} bytes, codec ${value.size}`);
    }
    return new BpfMap(this.mapFd, this.info, key, value, this.handle, this.owned);
  }

  /** Pins the map at `path` (creating its directory); EEXIST when something is pinned there already. */
  pin(path: string): void {
    const what = `pin map ${this.name} at ${path}`;
    checkPinPath(path, what);
    ensurePinDir(posix.dirname(path));
    checkInt(what, (l) => l.bpf_obj_pin(this.liveFd(), path));
  }

  /** The value for `key`, or undefined when there is none. */
  lookup(key: K): V | undefined {
    const buf = this.lookupRaw(key, this.info.valueSize, `look up in map ${this.name}`, false);
    return buf && this.value.decode(buf);
  }

  /** Each possible CPU's value for `key` (index = CPU number), or undefined when there is none. */
  lookupPerCpu(key: K): V[] | undefined {
    const slot = align8(this.info.valueSize);
    const buf = this.lookupRaw(key, slot * possibleCpus(), `look up in per-CPU map ${this.name}`, true);
    if (!buf) return undefined;
    const out: V[] = [];
    for (let off = 0; off < buf.length; off += slot) out.push(this.value.decode(buf, off));
    return out;
  }

  /** Sets `key` to `value`. 'noexist': EEXIST when present; 'exist': ENOENT when absent; E2BIG when full. */
  update(key: K, value: V, mode: UpdateMode = 'any'): void {
    const what = `update map ${this.name}`;
    this.refusePerCpu(what, false);
    this.updateRaw(key, this.value.encode(value), mode, what);
  }

  /** Sets every possible CPU's value for `key` (one value per CPU, or one value for all). */
  updatePerCpu(key: K, values: V | readonly V[], mode: UpdateMode = 'any'): void {
    const what = `update per-CPU map ${this.name}`;
    this.refusePerCpu(what, true);
    const cpus = possibleCpus();
    const list = Array.isArray(values) ? (values as readonly V[]) : new Array<V>(cpus).fill(values as V);
    if (list.length !== cpus) throw invalidArgument(what, `${list.length} values for ${cpus} possible CPUs`);
    const slot = align8(this.info.valueSize);
    const buf = Buffer.alloc(slot * cpus);
    list.forEach((v, i) => this.value.encode(v).copy(buf, i * slot));
    this.updateRaw(key, buf, mode, what);
  }

  /** Removes `key`. False when it was not there (arrays cannot delete: EINVAL). */
  delete(key: K): boolean {
    const what = `delete from map ${this.name}`;
    try {
      checkInt(what, (l) => l.bpf_map_delete_elem(this.liveFd(), this.encodeKey(key, what)));
      return true;
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /**
   * Every key, in the kernel's order. A hash map changed meanwhile may yield a key twice or skip one (the
   * kernel restarts from the first bucket when the previous key is gone): callers reconcile, never count on it.
   */
  *keys(): Generator<K> {
    const what = `iterate map ${this.name}`;
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.info.keySize);
      try {
        checkInt(what, (l) => l.bpf_map_get_next_key(this.liveFd(), prev, next));
      } catch (err) {
        if (hasErrno(err, 'ENOENT')) return;
        throw err;
      }
      yield this.key.decode(next);
      prev = next;
    }
  }

  /** Every [key, value]; keys deleted between the two steps are skipped. */
  *entries(): Generator<[K, V]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v !== undefined) yield [k, v];
    }
  }

  *entriesPerCpu(): Generator<[K, V[]]> {
    for (const k of this.keys()) {
      const v = this.lookupPerCpu(k);
      if (v !== undefined) yield [k, v];
    }
  }

  /** Closes an owned map's fd; a map borrowed from a BpfObject only stops working. Safe to call twice. */
  close(): void {
    this.viewClosed = true;
    this.owned?.close();
  }

  private liveFd(): number {
    if (this.viewClosed || this.handle.closed) {
      const why = this.viewClosed ? 'it was closed' : `${this.handle.what} was closed`;
      throw new KernelError(`use map ${this.info.name} (${why})`, ERRNO.EBADF);
    }
    return this.mapFd;
  }

  private encodeKey(key: K, what: string): Buffer {
    const buf = this.key.encode(key);
    if (buf.length !== this.info.keySize) throw invalidArgument(what, `key codec gave ${buf.length} bytes, map wants ${this.info.keySize}`);
    return buf;
  }

  private refusePerCpu(what: string, wantPerCpu: boolean): void {
    if (this.perCpu !== wantPerCpu) {
      throw invalidArgument(what, this.perCpu ? 'a per-CPU map: use the PerCpu methods' : 'not a per-CPU map');
    }
  }

  private lookupRaw(key: K, size: number, what: string, perCpu: boolean): Buffer | undefined {
    this.refusePerCpu(what, perCpu);
    const out = Buffer.alloc(size);
    try {
      checkInt(what, (l) => l.bpf_map_lookup_elem(this.liveFd(), this.encodeKey(key, what), out));
      return out;
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  private updateRaw(key: K, value: Buffer, mode: UpdateMode, what: string): void {
    const flags = MODES[mode];
    if (flags === undefined) throw invalidArgument(what, `invalid update mode ${JSON.stringify(mode)}`);
    if (!this.perCpu && value.length !== this.info.valueSize) {
      throw invalidArgument(what, `value codec gave ${value.length} bytes, map wants ${this.info.valueSize}`);
    }
    checkInt(what, (l) => l.bpf_map_update_elem(this.liveFd(), this.encodeKey(key, what), value, flags));
  }
}
