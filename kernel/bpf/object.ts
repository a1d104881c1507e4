/**
 * A BPF object file (clang -target bpf output) opened and loaded through libbpf.
 *
 *   const obj = BpfObject.open('/usr/lib/plexus/bpf/from_pod.o', { pinRoot: '/sys/fs/bpf/plexus' });
 *   try {
 *     obj.load();                                   // every program through the verifier, maps created
 *     new TcHook(ifindex, 'ingress', podNetns).attach(obj.program('from_pod'));
 *     obj.map('endpoints', EndpointKey, Endpoint).update(key, value);
 *   } finally { obj.close(); }                      // pinned maps and attached programs stay in the kernel
 *
 * Maps declared in C with `__uint(pinning, LIBBPF_PIN_BY_NAME)` are pinned by libbpf at load as
 * `<pinRoot>/<map name>`, and a map already pinned there is reused instead of created, which is what lets a
 * restarted daemon pick up the datapath's state. Other maps can be pinned after load (pinMap) or made to use a
 * pinned map before load (reuseMap).
 */
import { ERRNO, invalidArgument, KernelError } from '../errno';
import type { Codec } from './codec';
import { checkInt, checkPointer, type Libbpf, type Pointer, sizeOf } from './libbpf';
import { BpfMap, type FdHandle } from './map';
import { checkPinPath, DEFAULT_PIN_ROOT, ensurePinDir, pinPathOf } from './pins';

export interface BpfOpenOptions {
  /** Directory of the maps pinned by name; default /sys/fs/bpf/plexus. Must be inside /sys/fs/bpf. */
  pinRoot?: string;
}

/** A program of a loaded object. Its fd belongs to the object: valid while the object is open. */
export interface BpfProgram {
  readonly name: string;
  readonly fd: number;
}

/** BPF object and program names: C identifiers (what clang accepts), at most 63 bytes here. */
const C_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** A custom read-only data section of the object (libbpf makes each its own internal map). */
const RODATA_SECTION = /^\.rodata\.[A-Za-z_][A-Za-z0-9_]{0,40}$/;

export class BpfObject implements FdHandle {
  private obj: Pointer | null;
  private isLoaded = false;
  readonly what: string;

  private constructor(
    obj: Pointer,
    readonly path: string,
    readonly pinRoot: string,
  ) {
    this.obj = obj;
    this.what = `BPF object ${path}`;
  }

  /**
   * Opens (parses) the object file; nothing reaches the kernel yet. ENOENT for a missing file, EINVAL (with
   * libbpf's reason) for a file that is no BPF ELF object.
   */
  static open(path: string, opts: BpfOpenOptions = {}): BpfObject {
    const what = `open BPF object ${path}`;
    if (path.length === 0 || path.includes('\0')) throw invalidArgument(what, 'invalid path');
    const pinRoot = checkPinPath(opts.pinRoot ?? DEFAULT_PIN_ROOT, what);
    // sz makes the struct self-describing: libbpf reads only the fields both it and we know.
    const openOpts = { sz: sizeOf('struct bpf_object_open_opts'), pin_root_path: pinRoot };
    const obj = checkPointer(what, (l) => l.bpf_object__open_file(path, openOpts));
    return new BpfObject(obj, path, pinRoot);
  }

  get closed(): boolean {
    return this.obj === null;
  }

  get loaded(): boolean {
    return this.isLoaded;
  }

  /**
   * Creates the maps (reusing those pinned by name under pinRoot), loads every program through the verifier.
   * A refused program fails with the kernel's errno (often EACCES or EINVAL) and the verifier log in the
   * error's extack. Once only: EALREADY on a second call.
   */
  load(): void {
    const what = `load ${this.what}`;
    const obj = this.live(what);
    if (this.isLoaded) throw new KernelError(what, ERRNO.EALREADY);
    ensurePinDir(this.pinRoot);
    checkInt(what, (l) => l.bpf_object__load(obj));
    this.isLoaded = true;
  }

  /** The loaded program named `name` (the C function name). ENOENT when the object has none of that name. */
  program(name: string): BpfProgram {
    const what = `find program ${name} in ${this.path}`;
    this.requireLoaded(what);
    const prog = this.find(what, name, (l, obj) => l.bpf_object__find_program_by_name(obj, name));
    const fd = checkInt(what, (l) => l.bpf_program__fd(prog));
    return { name, fd };
  }

  /** The map named `name`, raw or through key and value codecs. ENOENT when the object has no such map. */
  map(name: string): BpfMap;
  map<K, V>(name: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V>;
  map<K, V>(name: string, key?: Codec<K>, value?: Codec<V>): BpfMap<K, V> | BpfMap {
    const what = `find map ${name} in ${this.path}`;
    this.requireLoaded(what);
    const map = this.find(what, name, (l, obj) => l.bpf_object__find_map_by_name(obj, name));
    const raw = BpfMap.borrow(checkInt(what, (l) => l.bpf_map__fd(map)), this);
    return key && value ? raw.typed(key, value) : raw;
  }

  /** Pins a loaded map at `path` (default `<pinRoot>/<name>`); returns the path. EEXIST when taken. */
  pinMap(name: string, path?: string): string {
    const what = `pin map ${name} of ${this.path}`;
    this.requireLoaded(what);
    const target = path === undefined ? pinPathOf(this.pinRoot, name, what) : checkPinPath(path, what);
    const map = this.find(what, name, (l, obj) => l.bpf_object__find_map_by_name(obj, name));
    ensurePinDir(target.slice(0, target.lastIndexOf('/')));
    checkInt(what, (l) => l.bpf_map__pin(map, target));
    return target;
  }

  /**
   * Before load: makes map `name` use the map pinned at `path` instead of creating a new one. EINVAL when its
   * type, key or value size differs from the declaration (libbpf checks at load).
   */
  reuseMap(name: string, path: string): void {
    const what = `reuse ${path} as map ${name} of ${this.path}`;
    if (this.isLoaded) throw new KernelError(what, ERRNO.EALREADY, { extack: 'the object is already loaded' });
    const map = this.find(what, name, (l, obj) => l.bpf_object__find_map_by_name(obj, name));
    const pinned = BpfMap.openPinned(path);
    try {
      // libbpf dups the fd, so ours is closed either way.
      checkInt(what, (l) => l.bpf_map__reuse_fd(map, pinned.fd));
    } finally {
      pinned.close();
    }
  }

  /**
   * Before load: sets the constants of a custom read-only data section, such as `.rodata.network` for
   * `const volatile __u32 network SEC(".rodata.network")` in C. The verifier then knows them, so one object file
   * loads as several programs each specialised by its constants. `bytes` must be the section's exact size
   * (EINVAL otherwise); ENOENT when the object has no such section.
   */
  setConstants(section: string, bytes: Buffer): void {
    const what = `set ${section} of ${this.path}`;
    if (this.isLoaded) throw new KernelError(what, ERRNO.EALREADY, { extack: 'the object is already loaded' });
    if (!RODATA_SECTION.test(section)) throw invalidArgument(what, `invalid section ${JSON.stringify(section)}: a .rodata.<name> section`);
    const obj = this.live(what);
    const map = checkPointer(what, (l) => l.bpf_object__find_map_by_name(obj, section));
    checkInt(what, (l) => l.bpf_map__set_initial_value(map, bytes, bytes.length));
  }

  /**
   * Frees the object: its fds close, so programs not attached anywhere and maps not pinned go away; attached
   * programs and pinned maps stay. Safe to call twice.
   */
  close(): void {
    const obj = this.obj;
    if (obj === null) return;
    this.obj = null;
    checkInt(`close ${this.what}`, (l) => {
      l.bpf_object__close(obj);
      return 0;
    });
  }

  /** Program and map fds exist only after load (before it libbpf answers -1, which is no errno). */
  private requireLoaded(what: string): void {
    if (!this.isLoaded) throw invalidArgument(what, 'load the object first');
  }

  private live(what: string): Pointer {
    if (this.obj === null) throw new KernelError(what, ERRNO.EBADF, { extack: 'the object is closed' });
    return this.obj;
  }

  private find(
    what: string,
    name: string,
    lookup: (l: Libbpf, obj: Pointer) => Pointer | null,
  ): Pointer {
    if (!C_NAME.test(name)) throw invalidArgument(what, `invalid name ${JSON.stringify(name)}`);
    const obj = this.live(what);
    return checkPointer(what, (l) => lookup(l, obj));
  }
}
