/**
 * The TypeScript side of bpf/routed.h: the pinned maps' codecs (parity-tested against the header), the drop
 * reasons, and the names of the object, program and maps. One place, so nothing else spells them.
 */
import { bpfCodec, type CodecValue } from '../../kernel';

export const PROGRAM = 'from_pod';
export const MAPS = { endpoints: 'endpoints', stats: 'endpoint_stats' } as const;
/** Where from_pod sits on a host veth's tc ingress: priority 1 is the policy's filter, which runs first. */
export const FILTER = { handle: 1, priority: 2 } as const;
/** The object file `make build` compiles from bpf/from_pod.c, next to the bundled daemon. */
export const OBJECT_FILE = 'bpf/from_pod.o';

/** enum routed_drop_reason: never renumbered. */
export const DROP_REASON = { NONE: 0, SPOOFED: 1, MALFORMED: 2 } as const;
export const FAMILY = { V4: 4, V6: 6 } as const;

const { structCodec, u32, u64, bytes, mac } = bpfCodec;

export const EndpointKeyStruct = structCodec('struct endpoint_key', 20, { family: [u32, 0], addr: [bytes(16), 4] });
export const EndpointStruct = structCodec('struct endpoint', 20, {
  ifindex: [u32, 0],
  flags: [u32, 4],
  pod_mac: [mac, 8],
  host_mac: [mac, 14],
});
export const EndpointStatsStruct = structCodec('struct endpoint_stats', 48, {
  redirected: [u64, 0],
  routed: [u64, 8],
  passed: [u64, 16],
  spoofed_packets: [u64, 24],
  spoofed_bytes: [u64, 32],
  malformed: [u64, 40],
});
export const IfindexKey = u32;

export type EndpointValue = CodecValue<typeof EndpointStruct>;
export type EndpointStats = CodecValue<typeof EndpointStatsStruct>;

/** Every codec mirroring a struct of routed.h, for the parity test. */
export const STRUCTS = [EndpointKeyStruct, EndpointStruct, EndpointStatsStruct];

export const ZERO_STATS: EndpointStats = { redirected: 0n, routed: 0n, passed: 0n, spoofed_packets: 0n, spoofed_bytes: 0n, malformed: 0n };

/** Sums a per-CPU stats entry. */
export function sumStats(perCpu: readonly EndpointStats[]): EndpointStats {
  const out = { ...ZERO_STATS };
  for (const s of perCpu) for (const k of Object.keys(out) as (keyof EndpointStats)[]) out[k] += s[k];
  return out;
}
