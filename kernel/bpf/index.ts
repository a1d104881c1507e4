/**
 * eBPF through libbpf (DESIGN decision 5): open and load objects, pin maps under /sys/fs/bpf/plexus, attach
 * programs to tc clsact hooks in any netns, typed map access, and BPF_PROG_TEST_RUN.
 *
 * Unlike Netlink's methods these calls are synchronous: each is one or a few bpf(2) or netlink syscalls (a
 * program load is the verifier's time, milliseconds), and map access is meant for tight loops.
 * Failures are KernelError with the kernel's errno and what libbpf printed (e.g. the verifier log) as extack.
 */
import type { Codec } from './codec';
import { BpfMap } from './map';

export * as bpfCodec from './codec';
export type { Codec, CodecValue, FieldSpecs, StructCodec, StructValue } from './codec';
export { BPF_MAP_TYPE, BPF_TC, LIBBPF_ERRNO, TC_ACT } from './constants';
export { BpfMap, type UpdateMode } from './map';
export { type BpfOpenOptions, BpfObject, type BpfProgram } from './object';
export { BPFFS, checkPinPath, DEFAULT_PIN_ROOT, ensurePinDir, isBpffsMounted, mountBpffs, removePin, removePinDir } from './pins';
export { type TcAttachOptions, type TcAttachPoint, type TcFilter, type TcFilterRef, TcHook } from './tc';
export { RingBufferReader } from './ringbuf';
export { testRun, type TestRunOptions, type TestRunResult } from './test-run';

/** Opens the map pinned at `path` (see BpfMap.openPinned). */
export function openPinnedMap(path: string): BpfMap;
export function openPinnedMap<K, V>(path: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V>;
export function openPinnedMap<K, V>(path: string, key?: Codec<K>, value?: Codec<V>): BpfMap<K, V> | BpfMap {
  return key && value ? BpfMap.openPinned(path, key, value) : BpfMap.openPinned(path);
}

/** Pins `map` at `path` (see BpfMap.pin). */
export function pinMap(map: BpfMap<unknown, unknown>, path: string): void {
  map.pin(path);
}
