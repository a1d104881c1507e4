/**
 * Every libbpf call Plexus makes, declared once as a C prototype (STYLE 11), with the structs they take as
 * koffi structs that name the C struct they mirror (struct-parity.test.ts checks sizes and offsets against
 * <bpf/libbpf.h> and <bpf/bpf.h>). Nothing outside kernel/ imports koffi; nothing outside kernel/bpf calls
 * these wrappers.
 *
 * libbpf 1.x error convention: functions returning int return a negative errno; functions returning a pointer
 * return NULL and set errno. Each wrapper here checks and throws a KernelError at once. Codes of libbpf's own
 * (LIBBPF_ERRNO__*, 4000 and up) become EINVAL with the code's name in the message.
 *
 * libbpf explains its failures through a print callback (e.g. the verifier log when a program is refused).
 * The callback installed here keeps the warnings printed during the current call and attaches them to the
 * KernelError (as its extack), and prints nothing itself: the kernel layer never logs.
 *
 * koffi type names are process-global, and jest loads this module once per test file into the same process,
 * so each named type is registered only when koffi does not know it yet (the definitions are identical).
 */
import { ERRNO, KernelError } from '../errno';
import { formatVaList } from '../libc';
import { LIBBPF_ERRNO } from './constants';

/** The part of koffi's API used here (see libc.ts for why it is typed by hand). */
interface TypeObject {
  readonly name: string;
  readonly size: number;
}
interface Koffi {
  load(path: string): { func(prototype: string): unknown; func(name: string, result: unknown, args: unknown[]): unknown };
  struct(name: string, def: Record<string, unknown>): TypeObject;
  opaque(name: string): TypeObject;
  array(type: string, length: number, hint?: string): TypeObject;
  proto(result: string, args: string[]): TypeObject;
  pointer(type: TypeObject): TypeObject;
  register(fn: (...args: never[]) => unknown, type: TypeObject): unknown;
  unregister(callback: unknown): void;
  view(pointer: unknown, length: number): ArrayBuffer;
  type(name: string): TypeObject;
  sizeof(type: TypeObject): number;
  offsetof(type: TypeObject, member: string): number;
  decode(buf: Buffer, type: TypeObject): Record<string, unknown>;
  errno(): number;
}

/** An opaque libbpf pointer (struct bpf_object *, struct bpf_program *, struct bpf_map *). */
export type Pointer = bigint & { readonly __pointer: unique symbol };

/** struct bpf_tc_hook (libbpf.h). */
export interface TcHookStruct {
  sz: number;
  ifindex: number;
  attach_point: number;
  parent: number;
}
/** struct bpf_tc_opts (libbpf.h). */
export interface TcOptsStruct {
  sz: number;
  prog_fd: number;
  flags: number;
  prog_id: number;
  handle: number;
  priority: number;
}
/** struct bpf_test_run_opts (bpf.h); the buffers are passed as pointers to their memory. */
export interface TestRunOptsStruct {
  sz: number;
  data_in: Buffer | null;
  data_out: Buffer | null;
  data_size_in: number;
  data_size_out: number;
  ctx_in: Buffer | null;
  ctx_out: Buffer | null;
  ctx_size_in: number;
  ctx_size_out: number;
  retval: number;
  repeat: number;
  duration: number;
  flags: number;
  cpu: number;
  batch_size: number;
}
/** struct bpf_map_info (linux/bpf.h), the fields read here. */
export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

/** The koffi struct types, by the C struct they mirror, for the parity test. */
export interface StructTypes {
  readonly 'struct bpf_tc_hook': TypeObject;
  readonly 'struct bpf_tc_opts': TypeObject;
  readonly 'struct bpf_test_run_opts': TypeObject;
  readonly 'struct bpf_object_open_opts': TypeObject;
  readonly 'struct bpf_map_info': TypeObject;
}

export interface Libbpf {
  types: StructTypes;
  koffi: Koffi;
  bpf_object__open_file(path: string, opts: Record<string, unknown> | null): Pointer | null;
  bpf_object__load(obj: Pointer): number;
  bpf_object__close(obj: Pointer): void;
  bpf_object__find_program_by_name(obj: Pointer, name: string): Pointer | null;
  bpf_object__find_map_by_name(obj: Pointer, name: string): Pointer | null;
  bpf_program__fd(prog: Pointer): number;
  bpf_map__fd(map: Pointer): number;
  bpf_map__pin(map: Pointer, path: string): number;
  bpf_map__reuse_fd(map: Pointer, fd: number): number;
  bpf_map__set_initial_value(map: Pointer, data: Buffer, size: number): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get(path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, len: number[]): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_tc_hook_create(hook: TcHookStruct): number;
  bpf_tc_hook_destroy(hook: TcHookStruct): number;
  bpf_tc_attach(hook: TcHookStruct, opts: TcOptsStruct): number;
  bpf_tc_detach(hook: TcHookStruct, opts: TcOptsStruct): number;
  bpf_tc_query(hook: TcHookStruct, opts: TcOptsStruct): number;
  bpf_prog_test_run_opts(fd: number, opts: TestRunOptsStruct): number;
  libbpf_num_possible_cpus(): number;
}

let bound: Libbpf | undefined;
/** The warnings libbpf printed during the current call; null between calls. */
let printed: string[] | null = null;

/** enum libbpf_print_level: LIBBPF_WARN 0, LIBBPF_INFO 1, LIBBPF_DEBUG 2. */
const LIBBPF_INFO = 1;

function namedOnce(koffi: Koffi, name: string, make: () => TypeObject): TypeObject {
  try {
    return koffi.type(name);
  } catch {
    return make();
  }
}

/** libbpf is loaded on first use, so importing kernel/ loads no native code. */
export function libbpf(): Libbpf {
  if (bound) return bound;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi = require('koffi') as Koffi;
  const lib = koffi.load('libbpf.so.1');
  for (const name of ['bpf_object', 'bpf_program', 'bpf_map']) namedOnce(koffi, name, () => koffi.opaque(name));
  const types: StructTypes = {
    'struct bpf_tc_hook': namedOnce(koffi, 'bpf_tc_hook', () =>
      koffi.struct('bpf_tc_hook', { sz: 'size_t', ifindex: 'int', attach_point: 'int', parent: 'uint32_t' }),
    ),
    'struct bpf_tc_opts': namedOnce(koffi, 'bpf_tc_opts', () =>
      koffi.struct('bpf_tc_opts', {
        sz: 'size_t',
        prog_fd: 'int',
        flags: 'uint32_t',
        prog_id: 'uint32_t',
        handle: 'uint32_t',
        priority: 'uint32_t',
      }),
    ),
    'struct bpf_test_run_opts': namedOnce(koffi, 'bpf_test_run_opts', () =>
      koffi.struct('bpf_test_run_opts', {
        sz: 'size_t',
        data_in: 'void *',
        data_out: 'void *',
        data_size_in: 'uint32_t',
        data_size_out: 'uint32_t',
        ctx_in: 'void *',
        ctx_out: 'void *',
        ctx_size_in: 'uint32_t',
        ctx_size_out: 'uint32_t',
        retval: 'uint32_t',
        repeat: 'int',
        duration: 'uint32_t',
        flags: 'uint32_t',
        cpu: 'uint32_t',
        batch_size: 'uint32_t',
      }),
    ),
    'struct bpf_object_open_opts': namedOnce(koffi, 'bpf_object_open_opts', () =>
      koffi.struct('bpf_object_open_opts', {
        sz: 'size_t',
        object_name: 'const char *',
        relaxed_maps: 'bool',
        pin_root_path: 'const char *',
        // `__u32 :32`, the stub of the removed attach_prog_fd: no name in C, so the parity test skips it.
        __pad_attach_prog_fd: 'uint32_t',
        kconfig: 'const char *',
        btf_custom_path: 'const char *',
        kernel_log_buf: 'void *',
        kernel_log_size: 'size_t',
        kernel_log_level: 'uint32_t',
      }),
    ),
    'struct bpf_map_info': namedOnce(koffi, 'bpf_map_info', () =>
      koffi.struct('bpf_map_info', {
        type: 'uint32_t',
        id: 'uint32_t',
        key_size: 'uint32_t',
        value_size: 'uint32_t',
        max_entries: 'uint32_t',
        map_flags: 'uint32_t',
        name: koffi.array('char', 16, 'String'),
        ifindex: 'uint32_t',
        btf_vmlinux_value_type_id: 'uint32_t',
        netns_dev: 'uint64_t',
        netns_ino: 'uint64_t',
        btf_id: 'uint32_t',
        btf_key_type_id: 'uint32_t',
        btf_value_type_id: 'uint32_t',
        __pad: 'uint32_t',
        map_extra: 'uint64_t',
      }),
    ),
  };
  const f = (prototype: string): unknown => lib.func(prototype);
  const b = {
    types,
    koffi,
    bpf_object__open_file: f('bpf_object *bpf_object__open_file(const char *path, const bpf_object_open_opts *opts)'),
    bpf_object__load: f('int bpf_object__load(bpf_object *obj)'),
    bpf_object__close: f('void bpf_object__close(bpf_object *obj)'),
    bpf_object__find_program_by_name: f('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)'),
    bpf_object__find_map_by_name: f('bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)'),
    bpf_program__fd: f('int bpf_program__fd(const bpf_program *prog)'),
    bpf_map__fd: f('int bpf_map__fd(const bpf_map *map)'),
    bpf_map__pin: f('int bpf_map__pin(bpf_map *map, const char *path)'),
    bpf_map__reuse_fd: f('int bpf_map__reuse_fd(bpf_map *map, int fd)'),
    bpf_map__set_initial_value: f('int bpf_map__set_initial_value(bpf_map *map, const void *data, size_t size)'),
    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *pathname)'),
    bpf_obj_get: f('int bpf_obj_get(const char *pathname)'),
    bpf_obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int bpf_fd, _Inout_ void *info, _Inout_ uint32_t *info_len)'),
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
    bpf_tc_hook_create: f('int bpf_tc_hook_create(bpf_tc_hook *hook)'),
    bpf_tc_hook_destroy: f('int bpf_tc_hook_destroy(bpf_tc_hook *hook)'),
    bpf_tc_attach: f('int bpf_tc_attach(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)'),
    bpf_tc_detach: f('int bpf_tc_detach(const bpf_tc_hook *hook, const bpf_tc_opts *opts)'),
    bpf_tc_query: f('int bpf_tc_query(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)'),
    bpf_prog_test_run_opts: f('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),
  } as Libbpf;
  // typedef int (*libbpf_print_fn_t)(enum libbpf_print_level level, const char *format, va_list ap);
  // Anonymous, so a second registration (another jest module registry) cannot collide by name.
  const printFn = koffi.proto('int', ['int', 'const char *', 'void *']);
  const setPrint = lib.func('libbpf_set_print', 'void *', [koffi.pointer(printFn)]) as (fn: unknown) => unknown;
  const callback = koffi.register((level: number, format: string, ap: unknown): number => {
    if (printed !== null && level <= LIBBPF_INFO) printed.push(formatVaList(format, ap));
    return 0;
  }, koffi.pointer(printFn));
  setPrint(callback);
  bound = b;
  return b;
}

const LIBBPF_ERRNO_NAMES = new Map<number, string>(Object.entries(LIBBPF_ERRNO).map(([k, v]) => [v, `LIBBPF_ERRNO__${k}`]));
const MAX_EXTACK = 16 * 1024;

/** The KernelError for `code` (a positive errno or LIBBPF_ERRNO__*), with what libbpf printed meanwhile. */
function failure(what: string, code: number, lines: readonly string[]): KernelError {
  let text = lines.join('').trim();
  if (text.length > MAX_EXTACK) text = `...${text.slice(-MAX_EXTACK)}`;
  const libbpfName = LIBBPF_ERRNO_NAMES.get(code);
  if (libbpfName) {
    return new KernelError(what, ERRNO.EINVAL, { extack: text ? `${libbpfName}: ${text}` : libbpfName });
  }
  return new KernelError(what, code, text ? { extack: text } : {});
}

/** Runs one libbpf call collecting what it prints; `step` throws through `fail` when the call failed. */
function capturing<T>(step: () => T): { value: T; lines: string[] } {
  const lines: string[] = [];
  const outer = printed;
  printed = lines;
  try {
    return { value: step(), lines };
  } finally {
    printed = outer;
  }
}

/** An int-returning libbpf call: a negative result is -errno. Returns the (non-negative) result. */
export function checkInt(what: string, call: (lib: Libbpf) => number): number {
  const lib = libbpf();
  const { value, lines } = capturing(() => call(lib));
  if (value < 0) throw failure(what, -value, lines);
  return value;
}

/** A pointer-returning libbpf call: NULL means failure, with errno set by libbpf just before returning. */
export function checkPointer(what: string, call: (lib: Libbpf) => Pointer | null): Pointer {
  const lib = libbpf();
  const { value, lines } = capturing(() => call(lib));
  if (value === null || value === 0n) {
    const errno = lib.koffi.errno();
    throw failure(what, errno > 0 ? errno : ERRNO.EINVAL, lines);
  }
  return value;
}

/** The koffi struct types, for the parity test. */
export function structTypes(): { types: StructTypes; sizeof(t: TypeObject): number; offsetof(t: TypeObject, m: string): number } {
  const lib = libbpf();
  return { types: lib.types, sizeof: (t) => lib.koffi.sizeof(t), offsetof: (t, m) => lib.koffi.offsetof(t, m) };
}

/** sizeof(struct X) as koffi lays it out: what each opts struct's `sz` must say. */
export function sizeOf(cStruct: keyof StructTypes): number {
  const lib = libbpf();
  return lib.koffi.sizeof(lib.types[cStruct]);
}

/** struct bpf_map_info of a map fd. */
export function mapInfo(fd: number, what: string): MapInfo {
  const lib = libbpf();
  const type = lib.types['struct bpf_map_info'];
  const buf = Buffer.alloc(type.size);
  checkInt(what, (l) => l.bpf_obj_get_info_by_fd(fd, buf, [buf.length]));
  const info = lib.koffi.decode(buf, type);
  return {
    type: info['type'] as number,
    id: info['id'] as number,
    keySize: info['key_size'] as number,
    valueSize: info['value_size'] as number,
    maxEntries: info['max_entries'] as number,
    flags: info['map_flags'] as number,
    name: String(info['name']).replace(/\0.*$/s, ''),
  };
}

/** libbpf_num_possible_cpus(): how many values a per-CPU map holds per key. Cached by libbpf. */
export function possibleCpus(): number {
  return checkInt('count possible CPUs', (l) => l.libbpf_num_possible_cpus());
}
