/**
 * rtnetlink numbers, grouped the way the C headers prefix them: `IFLA.MTU` is `IFLA_MTU`. Each group names its
 * header and C prefix in CONSTANT_GROUPS so the parity test can compare every value with the compiled header.
 */

/** <linux/netlink.h> */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NLMSG_HDRLEN = 16;
export const NLMSG_ALIGNTO = 4;

/** <linux/netlink.h>: request flags, then the meanings the high bits take for GET, NEW, DELETE and ACK. */
export const NLM_F = {
  REQUEST: 0x01,
  MULTI: 0x02,
  ACK: 0x04,
  ECHO: 0x08,
  DUMP_INTR: 0x10,
  DUMP_FILTERED: 0x20,
  ROOT: 0x100,
  MATCH: 0x200,
  ATOMIC: 0x400,
  DUMP: 0x300,
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  NONREC: 0x100,
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

/** <linux/netlink.h>: attributes of an extended ack that follow struct nlmsgerr. */
export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2, COOKIE: 3 } as const;

/** <linux/netlink.h>: high bits of rta_type / nla_type. */
export const NLA_F = { NESTED: 0x8000, NET_BYTEORDER: 0x4000 } as const;
export const NLA_TYPE_MASK = ~(NLA_F.NESTED | NLA_F.NET_BYTEORDER) & 0xffff;

/** <linux/rtnetlink.h> message types. */
export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
  NEWLINKPROP: 108,
  DELLINKPROP: 109,
} as const;

/** <sys/socket.h> address families. */
export const AF = { UNSPEC: 0, INET: 2, BRIDGE: 7, INET6: 10 } as const;

/** <linux/if.h> net_device_flags (ifi_flags). */
export const IFF = {
  UP: 0x1,
  BROADCAST: 0x2,
  LOOPBACK: 0x8,
  POINTOPOINT: 0x10,
  NOARP: 0x80,
  LOWER_UP: 0x10000,
} as const;

/** <linux/if.h> RFC 2863 operational states (IFLA_OPERSTATE), indexed by value. */
export const IF_OPER_NAMES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'] as const;
export const IF_OPER = {
  UNKNOWN: 0,
  NOTPRESENT: 1,
  DOWN: 2,
  LOWERLAYERDOWN: 3,
  TESTING: 4,
  DORMANT: 5,
  UP: 6,
} as const;

/** <linux/if_link.h> link attributes. */
export const IFLA = {
  ADDRESS: 1,
  BROADCAST: 2,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  TXQLEN: 13,
  OPERSTATE: 16,
  LINKMODE: 17,
  LINKINFO: 18,
  NET_NS_PID: 19,
  NUM_VF: 21,
  VFINFO_LIST: 22,
  IFALIAS: 20,
  NET_NS_FD: 28,
  EXT_MASK: 29,
  PROMISCUITY: 30,
  CARRIER: 33,
  LINK_NETNSID: 37,
  MIN_MTU: 50,
  MAX_MTU: 51,
  PROP_LIST: 52,
  ALT_IFNAME: 53,
  PERM_ADDRESS: 54,
} as const;

/** <linux/if_link.h> attributes nested in IFLA_LINKINFO. */
export const IFLA_INFO = { KIND: 1, DATA: 2, XSTATS: 3, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;

/** <linux/if_link.h> attributes nested in IFLA_INFO_DATA of a macvlan. */
export const IFLA_MACVLAN = { MODE: 1, FLAGS: 2 } as const;

/** <linux/if_link.h> enum macvlan_mode (IFLA_MACVLAN_MODE). */
export const MACVLAN_MODE = { PRIVATE: 1, VEPA: 2, BRIDGE: 4, PASSTHRU: 8, SOURCE: 16 } as const;

/** <linux/if_link.h> attributes nested in IFLA_INFO_DATA of a vxlan. IFLA_VXLAN_PORT is big-endian. */
export const IFLA_VXLAN = {
  ID: 1,
  GROUP: 2,
  LINK: 3,
  LOCAL: 4,
  TTL: 5,
  TOS: 6,
  LEARNING: 7,
  PORT: 15,
  GROUP6: 16,
  LOCAL6: 17,
} as const;

/** <linux/if_link.h> IFLA_VFINFO_LIST holds one IFLA_VF_INFO nest per VF. */
export const IFLA_VF_INFO = { INFO: 1 } as const;

/** <linux/if_link.h> attributes nested in IFLA_VF_INFO: one struct ifla_vf_* each (kernel/vfs.ts). */
export const IFLA_VF = {
  MAC: 1,
  VLAN: 2,
  TX_RATE: 3,
  SPOOFCHK: 4,
  LINK_STATE: 5,
  RATE: 6,
  RSS_QUERY_EN: 7,
  STATS: 8,
  TRUST: 9,
  VLAN_LIST: 12,
  BROADCAST: 13,
} as const;

/** <linux/if_link.h> IFLA_VF_VLAN_LIST holds IFLA_VF_VLAN_INFO entries (struct ifla_vf_vlan_info). */
export const IFLA_VF_VLAN_LIST = { VLAN_INFO: 1 } as const;

/** <linux/if_link.h> struct ifla_vf_link_state values. */
export const IFLA_VF_LINK_STATE = { AUTO: 0, ENABLE: 1, DISABLE: 2 } as const;

/** <linux/if_ether.h> VLAN ethertypes (ifla_vf_vlan_info.vlan_proto, big-endian on the wire). */
export const ETH_P = { '8021Q': 0x8100, '8021AD': 0x88a8 } as const;

/** <linux/veth.h> attributes nested in IFLA_INFO_DATA of a veth. */
export const VETH_INFO = { PEER: 1 } as const;

/** <linux/rtnetlink.h> IFLA_EXT_MASK bits. */
export const RTEXT_FILTER = { VF: 1 << 0, BRVLAN: 1 << 1, BRVLAN_COMPRESSED: 1 << 2, SKIP_STATS: 1 << 3 } as const;

/** <linux/if_addr.h> address attributes. */
export const IFA = {
  ADDRESS: 1,
  LOCAL: 2,
  LABEL: 3,
  BROADCAST: 4,
  ANYCAST: 5,
  CACHEINFO: 6,
  MULTICAST: 7,
  FLAGS: 8,
  RT_PRIORITY: 9,
  PROTO: 11,
} as const;

/** <linux/if_addr.h> address flags (ifa_flags holds the low 8 bits, IFA_FLAGS all 32). */
export const IFA_F = {
  SECONDARY: 0x01,
  NODAD: 0x02,
  OPTIMISTIC: 0x04,
  DADFAILED: 0x08,
  HOMEADDRESS: 0x10,
  DEPRECATED: 0x20,
  TENTATIVE: 0x40,
  PERMANENT: 0x80,
  MANAGETEMPADDR: 0x100,
  NOPREFIXROUTE: 0x200,
  MCAUTOJOIN: 0x400,
  STABLE_PRIVACY: 0x800,
} as const;

/** <linux/rtnetlink.h> route attributes. */
export const RTA = {
  DST: 1,
  SRC: 2,
  IIF: 3,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  METRICS: 8,
  MULTIPATH: 9,
  TABLE: 15,
  MARK: 16,
  VIA: 18,
  PREF: 20,
  ENCAP_TYPE: 21,
  ENCAP: 22,
  EXPIRES: 23,
  NH_ID: 30,
} as const;

/** <linux/rtnetlink.h> route types (rtm_type). */
export const RTN = {
  UNSPEC: 0,
  UNICAST: 1,
  LOCAL: 2,
  BROADCAST: 3,
  ANYCAST: 4,
  MULTICAST: 5,
  BLACKHOLE: 6,
  UNREACHABLE: 7,
  PROHIBIT: 8,
  THROW: 9,
  NAT: 10,
} as const;

/** <linux/rtnetlink.h> route scopes (rtm_scope, ifa_scope). */
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;

/** <linux/rtnetlink.h> reserved routing tables. */
export const RT_TABLE = { UNSPEC: 0, COMPAT: 252, DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;

/** <linux/rtnetlink.h> route origins (rtm_protocol); any other number up to 255 is valid too. */
export const RTPROT = { UNSPEC: 0, REDIRECT: 1, KERNEL: 2, BOOT: 3, STATIC: 4, RA: 9, DHCP: 16 } as const;

/** <linux/rtnetlink.h> next-hop flags, reported in rtm_flags. */
export const RTNH_F = { DEAD: 1, PERVASIVE: 2, ONLINK: 4, OFFLOAD: 8, LINKDOWN: 16, UNRESOLVED: 32 } as const;

/** <linux/rtnetlink.h> route message flags (rtm_flags). */
export const RTM_F = { NOTIFY: 0x100, CLONED: 0x200, EQUALIZE: 0x400, PREFIX: 0x800 } as const;

/** <linux/neighbour.h> neighbour attributes. */
export const NDA = {
  DST: 1,
  LLADDR: 2,
  CACHEINFO: 3,
  PROBES: 4,
  VLAN: 5,
  PORT: 6,
  VNI: 7,
  IFINDEX: 8,
  MASTER: 9,
} as const;

/** <linux/neighbour.h> neighbour states (ndm_state). */
export const NUD = {
  INCOMPLETE: 0x01,
  REACHABLE: 0x02,
  STALE: 0x04,
  DELAY: 0x08,
  PROBE: 0x10,
  FAILED: 0x20,
  NOARP: 0x40,
  PERMANENT: 0x80,
} as const;

/** <linux/neighbour.h> neighbour flags (ndm_flags). */
export const NTF = { USE: 0x01, SELF: 0x02, MASTER: 0x04, PROXY: 0x08, EXT_LEARNED: 0x10, ROUTER: 0x80 } as const;

/** Which header defines each group and with which C prefix; read by the parity test. */
export interface ConstantGroup {
  header: string;
  prefix: string;
  values: Readonly<Record<string, number>>;
}

export const CONSTANT_GROUPS: readonly ConstantGroup[] = [
  { header: 'linux/netlink.h', prefix: 'NLMSG_', values: NLMSG },
  { header: 'linux/netlink.h', prefix: 'NLM_F_', values: NLM_F },
  { header: 'linux/netlink.h', prefix: 'NLMSGERR_ATTR_', values: NLMSGERR_ATTR },
  { header: 'linux/netlink.h', prefix: 'NLA_F_', values: NLA_F },
  { header: 'linux/rtnetlink.h', prefix: 'RTM_', values: RTM },
  { header: 'sys/socket.h', prefix: 'AF_', values: AF },
  { header: 'linux/if.h', prefix: 'IFF_', values: IFF },
  { header: 'linux/if.h', prefix: 'IF_OPER_', values: IF_OPER },
  { header: 'linux/if_link.h', prefix: 'IFLA_', values: IFLA },
  { header: 'linux/if_link.h', prefix: 'IFLA_INFO_', values: IFLA_INFO },
  { header: 'linux/veth.h', prefix: 'VETH_INFO_', values: VETH_INFO },
  { header: 'linux/if_link.h', prefix: 'IFLA_VF_', values: IFLA_VF_INFO },
  { header: 'linux/if_link.h', prefix: 'IFLA_VF_', values: IFLA_VF },
  { header: 'linux/if_link.h', prefix: 'IFLA_VF_', values: IFLA_VF_VLAN_LIST },
  { header: 'linux/if_link.h', prefix: 'IFLA_VF_LINK_STATE_', values: IFLA_VF_LINK_STATE },
  { header: 'linux/if_ether.h', prefix: 'ETH_P_', values: ETH_P },
  { header: 'linux/if_link.h', prefix: 'IFLA_MACVLAN_', values: IFLA_MACVLAN },
  { header: 'linux/if_link.h', prefix: 'MACVLAN_MODE_', values: MACVLAN_MODE },
  { header: 'linux/if_link.h', prefix: 'IFLA_VXLAN_', values: IFLA_VXLAN },
  { header: 'linux/rtnetlink.h', prefix: 'RTEXT_FILTER_', values: RTEXT_FILTER },
  { header: 'linux/if_addr.h', prefix: 'IFA_', values: IFA },
  { header: 'linux/if_addr.h', prefix: 'IFA_F_', values: IFA_F },
  { header: 'linux/rtnetlink.h', prefix: 'RTA_', values: RTA },
  { header: 'linux/rtnetlink.h', prefix: 'RTN_', values: RTN },
  { header: 'linux/rtnetlink.h', prefix: 'RT_SCOPE_', values: RT_SCOPE },
  { header: 'linux/rtnetlink.h', prefix: 'RT_TABLE_', values: RT_TABLE },
  { header: 'linux/rtnetlink.h', prefix: 'RTPROT_', values: RTPROT },
  { header: 'linux/rtnetlink.h', prefix: 'RTNH_F_', values: RTNH_F },
  { header: 'linux/rtnetlink.h', prefix: 'RTM_F_', values: RTM_F },
  { header: 'linux/neighbour.h', prefix: 'NDA_', values: NDA },
  { header: 'linux/neighbour.h', prefix: 'NUD_', values: NUD },
  { header: 'linux/neighbour.h', prefix: 'NTF_', values: NTF },
];
