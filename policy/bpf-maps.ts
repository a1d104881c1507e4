/**
 * The TypeScript side of policy/bpf/policy.h: map codecs and names, and the writer that puts a compiled policy
 * (policy/compile.ts) into the maps of policy.c. Addresses are 16 bytes, IPv4 as ::ffff:a.b.c.d; LPM keys are
 * the kernel trie's (prefix length, then big-endian bytes).
 */
import { parseIp } from '../core/address';
import { type BpfMap, type BpfObject, bpfCodec } from '../kernel';
import { type Attachment, type Compiled, type DirectionMaps, endpointKey } from './compile';

export const PROGRAM = 'policy_verdict';
export const MAPS = { ipcache: 'pol_ipcache', local: 'pol_local', ifaces: 'pol_ifaces', cidr: 'pol_cidr', rules: 'pol_rules', ct: 'pol_ct', state: 'pol_state' } as const;
export const FLAGS = { ISOLATED_INGRESS: 1, ISOLATED_EGRESS: 2, NODE: 4 } as const;
export const DIRECTION = { ingress: 0, egress: 1 } as const;

const { structCodec, u8, u32, u64, be16, be32, bytes } = bpfCodec;

export const AddrKeyStruct = structCodec('struct addr_key', 20, { network: [u32, 0], addr: [bytes(16), 4] });
export const LocalEndpointStruct = structCodec('struct local_endpoint', 8, { id: [u32, 0], flags: [u32, 4] });
export const CidrKeyStruct = structCodec('struct cidr_key', 25, { prefixlen: [u32, 0], epdir: [be32, 4], family: [u8, 8], addr: [bytes(16), 9] });
export const RuleKeyStruct = structCodec('struct rule_key', 15, { prefixlen: [u32, 0], epdir: [be32, 4], peer: [be32, 8], proto: [u8, 12], port: [be16, 13] });
export const CtKeyStruct = structCodec('struct ct_key', 44, { network: [u32, 0], src: [bytes(16), 4], dst: [bytes(16), 20], sport: [be16, 36], dport: [be16, 38], proto: [u8, 40] });
export const CtEntryStruct = structCodec('struct ct_entry', 16, { seen: [u64, 0], revision: [u32, 8], flags: [u32, 12] });
export const StateStruct = structCodec('struct policy_state', 8, { revision: [u32, 0] });
export const STRUCTS = [AddrKeyStruct, LocalEndpointStruct, CidrKeyStruct, RuleKeyStruct, CtKeyStruct, CtEntryStruct, StateStruct];

/** 16 address bytes as policy.c keys them. */
export function addr16(ip: string): Buffer {
  const a = parseIp(ip);
  const v = a.family === 'v4' ? (0xffffn << 32n) | a.value : a.value;
  return Buffer.from(v.toString(16).padStart(32, '0'), 'hex');
}

export interface PolicyMaps {
  ipcache: BpfMap<bpfCodec.StructValue<typeof AddrKeyStruct.fields>, number>;
  local: BpfMap<bpfCodec.StructValue<typeof AddrKeyStruct.fields>, bpfCodec.StructValue<typeof LocalEndpointStruct.fields>>;
  ifaces: BpfMap<number, number>;
  cidr: BpfMap<bpfCodec.StructValue<typeof CidrKeyStruct.fields>, number>;
  rules: BpfMap<bpfCodec.StructValue<typeof RuleKeyStruct.fields>, number>;
  ct: BpfMap<bpfCodec.StructValue<typeof CtKeyStruct.fields>, bpfCodec.StructValue<typeof CtEntryStruct.fields>>;
  state: BpfMap<number, bpfCodec.StructValue<typeof StateStruct.fields>>;
}

export function policyMaps(obj: BpfObject): PolicyMaps {
  return {
    ipcache: obj.map(MAPS.ipcache, AddrKeyStruct, u32),
    local: obj.map(MAPS.local, AddrKeyStruct, LocalEndpointStruct),
    ifaces: obj.map(MAPS.ifaces, u32, u32),
    cidr: obj.map(MAPS.cidr, CidrKeyStruct, u32),
    rules: obj.map(MAPS.rules, RuleKeyStruct, u32),
    ct: obj.map(MAPS.ct, CtKeyStruct, CtEntryStruct),
    state: obj.map(MAPS.state, u32, StateStruct),
  };
}

export interface WriteOptions {
  /** The attachments of this node: their endpoints' maps go in. */
  readonly local: readonly Attachment[];
  /** Network ids: the cluster network is 0. */
  readonly networkId: (network: string | undefined) => number;
  /** This node's own addresses (NP5), on the cluster network. */
  readonly nodeAddresses: readonly string[];
}

/**
 * Replaces the maps' contents with `compiled`, then bumps the policy revision, so every tracked connection is
 * judged again by the new policy at its next packet (and cut if now denied). A full write: the step that
 * updates in place, without a window in which a denied packet could pass, comes with the datapath hooks.
 */
export function writePolicy(maps: PolicyMaps, compiled: Compiled, opts: WriteOptions): void {
  for (const m of [maps.ipcache, maps.local, maps.cidr, maps.rules] as BpfMap<unknown, unknown>[]) for (const k of [...m.keys()]) m.delete(k);
  for (const [network, cache] of compiled.ipcache) {
    const id = opts.networkId(network || undefined);
    for (const [ip, identity] of cache) maps.ipcache.update({ network: id, addr: addr16(ip) }, identity);
  }
  for (const ip of opts.nodeAddresses) maps.local.update({ network: 0, addr: addr16(ip) }, { id: 0, flags: FLAGS.NODE });
  opts.local.forEach((a, i) => {
    const ep = compiled.endpoints.get(endpointKey(a.network, a.pod));
    if (!ep) return;
    const id = i + 1;
    const flags = (ep.ingress.isolated ? FLAGS.ISOLATED_INGRESS : 0) | (ep.egress.isolated ? FLAGS.ISOLATED_EGRESS : 0);
    for (const ip of a.ips) maps.local.update({ network: opts.networkId(a.network), addr: addr16(ip) }, { id, flags });
    writeDirection(maps, id * 2 + DIRECTION.ingress, ep.ingress);
    writeDirection(maps, id * 2 + DIRECTION.egress, ep.egress);
  });
  const revision = maps.state.lookup(0)?.revision ?? 0;
  maps.state.update(0, { revision: (revision + 1) >>> 0 });
}

function writeDirection(maps: PolicyMaps, epdir: number, d: DirectionMaps): void {
  if (!d.isolated) return;
  // compile.ts keys addresses in 129 bits: a family bit, then 128 (IPv4 in the low 32); the trie has a family byte.
  for (const { key, len, value } of d.cidr.entries()) {
    const v = key & ((1n << 128n) - 1n);
    maps.cidr.update({ prefixlen: 32 + 8 + len - 1, epdir, family: Number(key >> 128n), addr: Buffer.from(v.toString(16).padStart(32, '0'), 'hex') }, value);
  }
  for (const { key, len } of d.rules.entries()) {
    maps.rules.update({ prefixlen: 32 + len, epdir, peer: Number(key >> 24n), proto: Number((key >> 16n) & 0xffn), port: Number(key & 0xffffn) }, 1);
  }
}
