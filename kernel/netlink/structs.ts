/**
 * Fixed-layout C structs of the netlink path, as codecs. Each names the C struct it mirrors and its field
 * offsets; struct-parity.test.ts compiles the real headers and compares (STYLE 12). Little-endian, as codec.ts.
 */
import { ERRNO, KernelError } from '../errno';

/** `be16`: a __be16 (network byte order), as ifla_vf_vlan_info.vlan_proto. */
export type FieldKind = 'u8' | 'u16' | 'be16' | 'u32' | 's32' | 's64';
const FIELD_SIZE: Record<FieldKind, number> = { u8: 1, u16: 2, be16: 2, u32: 4, s32: 4, s64: 8 };

export interface StructCodec<K extends string> {
  /** The C struct this mirrors, e.g. 'struct ifinfomsg'. */
  readonly cName: string;
  readonly size: number;
  readonly fields: Readonly<Record<K, readonly [FieldKind, number]>>;
  /** A zero-filled struct with the given fields set. */
  encode(value: Partial<Record<K, number>>): Buffer;
  decode(buf: Buffer, offset?: number): Record<K, number>;
}

export function fieldSize(kind: FieldKind): number {
  return FIELD_SIZE[kind];
}

function defineStruct<K extends string>(
  cName: string,
  size: number,
  fields: Record<K, readonly [FieldKind, number]>,
): StructCodec<K> {
  const entries = Object.entries(fields) as Array<[K, readonly [FieldKind, number]]>;
  return {
    cName,
    size,
    fields,
    encode(value) {
      const buf = Buffer.alloc(size);
      for (const [name, [kind, off]] of entries) {
        const v = value[name];
        if (v === undefined) continue;
        if (kind === 'u8') buf.writeUInt8(v, off);
        else if (kind === 'u16') buf.writeUInt16LE(v, off);
        else if (kind === 'be16') buf.writeUInt16BE(v, off);
        else if (kind === 'u32') buf.writeUInt32LE(v >>> 0, off);
        else if (kind === 's32') buf.writeInt32LE(v, off);
        else buf.writeBigInt64LE(BigInt(v), off);
      }
      return buf;
    },
    decode(buf, offset = 0) {
      if (buf.length - offset < size) {
        throw new KernelError('decode netlink message', ERRNO.EBADMSG, {
          extack: `${cName} needs ${size} bytes, got ${buf.length - offset}`,
        });
      }
      const out = {} as Record<K, number>;
      for (const [name, [kind, off]] of entries) {
        const at = offset + off;
        if (kind === 'u8') out[name] = buf.readUInt8(at);
        else if (kind === 'u16') out[name] = buf.readUInt16LE(at);
        else if (kind === 'be16') out[name] = buf.readUInt16BE(at);
        else if (kind === 'u32') out[name] = buf.readUInt32LE(at);
        else if (kind === 's32') out[name] = buf.readInt32LE(at);
        else out[name] = Number(buf.readBigInt64LE(at));
      }
      return out;
    },
  };
}

type ValueOf<C> = C extends StructCodec<infer K> ? Record<K, number> : never;

export const NLMSGHDR = defineStruct('struct nlmsghdr', 16, {
  nlmsg_len: ['u32', 0],
  nlmsg_type: ['u16', 4],
  nlmsg_flags: ['u16', 6],
  nlmsg_seq: ['u32', 8],
  nlmsg_pid: ['u32', 12],
});
export type NlMsgHdr = ValueOf<typeof NLMSGHDR>;

export const RTATTR = defineStruct('struct rtattr', 4, { rta_len: ['u16', 0], rta_type: ['u16', 2] });

/** struct nlmsgerr: `int error` followed by the request's struct nlmsghdr (field `msg`, at offset 4). */
export const NLMSGERR = defineStruct('struct nlmsgerr', 20, { error: ['s32', 0] });

export const IFINFOMSG = defineStruct('struct ifinfomsg', 16, {
  ifi_family: ['u8', 0],
  ifi_type: ['u16', 2],
  ifi_index: ['s32', 4],
  ifi_flags: ['u32', 8],
  ifi_change: ['u32', 12],
});
export type IfInfoMsg = ValueOf<typeof IFINFOMSG>;

export const IFADDRMSG = defineStruct('struct ifaddrmsg', 8, {
  ifa_family: ['u8', 0],
  ifa_prefixlen: ['u8', 1],
  ifa_flags: ['u8', 2],
  ifa_scope: ['u8', 3],
  ifa_index: ['u32', 4],
});
export type IfAddrMsg = ValueOf<typeof IFADDRMSG>;

export const RTMSG = defineStruct('struct rtmsg', 12, {
  rtm_family: ['u8', 0],
  rtm_dst_len: ['u8', 1],
  rtm_src_len: ['u8', 2],
  rtm_tos: ['u8', 3],
  rtm_table: ['u8', 4],
  rtm_protocol: ['u8', 5],
  rtm_scope: ['u8', 6],
  rtm_type: ['u8', 7],
  rtm_flags: ['u32', 8],
});
export type RtMsg = ValueOf<typeof RTMSG>;

export const NDMSG = defineStruct('struct ndmsg', 12, {
  ndm_family: ['u8', 0],
  ndm_ifindex: ['s32', 4],
  ndm_state: ['u16', 8],
  ndm_flags: ['u8', 10],
  ndm_type: ['u8', 11],
});
export type NdMsg = ValueOf<typeof NDMSG>;

/** One next hop inside RTA_MULTIPATH, followed by its own attributes (RTA_GATEWAY...). */
export const RTNEXTHOP = defineStruct('struct rtnexthop', 8, {
  rtnh_len: ['u16', 0],
  rtnh_flags: ['u8', 2],
  rtnh_hops: ['u8', 3],
  rtnh_ifindex: ['s32', 4],
});

export const SOCKADDR_NL = defineStruct('struct sockaddr_nl', 12, {
  nl_family: ['u16', 0],
  nl_pid: ['u32', 4],
  nl_groups: ['u32', 8],
});

export const TIMEVAL = defineStruct('struct timeval', 16, { tv_sec: ['s64', 0], tv_usec: ['s64', 8] });

// The VF structs of IFLA_VF_INFO (<linux/if_link.h>): each starts with the VF index. ifla_vf_mac's `mac` is a
// 32-byte array at offset 4 (VF_MAC_BYTES), copied by kernel/vfs.ts; the parity test checks its place too.
export const IFLA_VF_MAC_STRUCT = defineStruct('struct ifla_vf_mac', 36, { vf: ['u32', 0] });
export const VF_MAC_BYTES = { offset: 4, size: 32 } as const;
export const IFLA_VF_VLAN_STRUCT = defineStruct('struct ifla_vf_vlan', 12, { vf: ['u32', 0], vlan: ['u32', 4], qos: ['u32', 8] });
export const IFLA_VF_VLAN_INFO_STRUCT = defineStruct('struct ifla_vf_vlan_info', 16, {
  vf: ['u32', 0],
  vlan: ['u32', 4],
  qos: ['u32', 8],
  vlan_proto: ['be16', 12],
});
export const IFLA_VF_TX_RATE_STRUCT = defineStruct('struct ifla_vf_tx_rate', 8, { vf: ['u32', 0], rate: ['u32', 4] });
export const IFLA_VF_RATE_STRUCT = defineStruct('struct ifla_vf_rate', 12, {
  vf: ['u32', 0],
  min_tx_rate: ['u32', 4],
  max_tx_rate: ['u32', 8],
});
export const IFLA_VF_SPOOFCHK_STRUCT = defineStruct('struct ifla_vf_spoofchk', 8, { vf: ['u32', 0], setting: ['u32', 4] });
export const IFLA_VF_TRUST_STRUCT = defineStruct('struct ifla_vf_trust', 8, { vf: ['u32', 0], setting: ['u32', 4] });
export const IFLA_VF_LINK_STATE_STRUCT = defineStruct('struct ifla_vf_link_state', 8, { vf: ['u32', 0], link_state: ['u32', 4] });

/** Every struct codec, for the parity test. */
export const STRUCTS: ReadonlyArray<StructCodec<string>> = [
  NLMSGHDR, RTATTR, NLMSGERR, IFINFOMSG, IFADDRMSG, RTMSG, NDMSG, RTNEXTHOP, SOCKADDR_NL, TIMEVAL,
  IFLA_VF_MAC_STRUCT, IFLA_VF_VLAN_STRUCT, IFLA_VF_VLAN_INFO_STRUCT, IFLA_VF_TX_RATE_STRUCT, IFLA_VF_RATE_STRUCT,
  IFLA_VF_SPOOFCHK_STRUCT, IFLA_VF_TRUST_STRUCT, IFLA_VF_LINK_STATE_STRUCT,
];
