/**
 * BPF and libbpf numbers, grouped the way the C headers prefix them (`BPF_MAP_TYPE.HASH` is
 * `BPF_MAP_TYPE_HASH`). CONSTANT_GROUPS names each group's header so the parity test compares every value.
 */
import type { ConstantGroup } from '../netlink/constants';

/** <linux/bpf.h> enum bpf_map_type: the ones Plexus creates or reads. */
export const BPF_MAP_TYPE = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  PERCPU_CGROUP_STORAGE: 21,
  RINGBUF: 27,
} as const;

/** Map types whose lookups and updates carry one value per possible CPU. */
export const PER_CPU_MAP_TYPES: ReadonlySet<number> = new Set([
  BPF_MAP_TYPE.PERCPU_HASH,
  BPF_MAP_TYPE.PERCPU_ARRAY,
  BPF_MAP_TYPE.LRU_PERCPU_HASH,
  BPF_MAP_TYPE.PERCPU_CGROUP_STORAGE,
]);

/** <linux/bpf.h> flags of BPF_MAP_UPDATE_ELEM. */
export const BPF_UPDATE = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

/** <bpf/libbpf.h> enum bpf_tc_attach_point. */
export const BPF_TC = { INGRESS: 1, EGRESS: 2, CUSTOM: 4 } as const;

/** <bpf/libbpf.h> enum bpf_tc_flags. */
export const BPF_TC_F = { REPLACE: 1 } as const;

/** <linux/pkt_cls.h> verdicts of a direct-action tc program. */
export const TC_ACT = {
  UNSPEC: -1,
  OK: 0,
  RECLASSIFY: 1,
  SHOT: 2,
  PIPE: 3,
  STOLEN: 4,
  QUEUED: 5,
  REPEAT: 6,
  REDIRECT: 7,
} as const;

/** <bpf/libbpf.h> enum libbpf_errno: libbpf's own error codes, above every errno. */
export const LIBBPF_ERRNO = {
  LIBELF: 4000,
  FORMAT: 4001,
  KVERSION: 4002,
  ENDIAN: 4003,
  INTERNAL: 4004,
  RELOC: 4005,
  LOAD: 4006,
  VERIFY: 4007,
  PROG2BIG: 4008,
  KVER: 4009,
  PROGTYPE: 4010,
  WRNGPID: 4011,
  INVSEQ: 4012,
  NLPARSE: 4013,
} as const;

/** <linux/bpf.h> BPF_OBJ_NAME_LEN: map and program names are at most 15 bytes. */
export const BPF_OBJ_NAME_LEN = 16;

export const BPF_CONSTANT_GROUPS: readonly ConstantGroup[] = [
  { header: 'linux/bpf.h', prefix: 'BPF_MAP_TYPE_', values: BPF_MAP_TYPE },
  { header: 'linux/bpf.h', prefix: 'BPF_', values: BPF_UPDATE },
  { header: 'bpf/libbpf.h', prefix: 'BPF_TC_', values: BPF_TC },
  { header: 'bpf/libbpf.h', prefix: 'BPF_TC_F_', values: BPF_TC_F },
  { header: 'linux/pkt_cls.h', prefix: 'TC_ACT_', values: TC_ACT },
  { header: 'bpf/libbpf.h', prefix: 'LIBBPF_ERRNO__', values: LIBBPF_ERRNO },
  { header: 'linux/bpf.h', prefix: 'BPF_OBJ_', values: { NAME_LEN: BPF_OBJ_NAME_LEN } },
];
