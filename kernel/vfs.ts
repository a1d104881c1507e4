/**
 * SR-IOV virtual functions as their physical function (PF) sees them: one VF setting changed per request
 * (RTM_NEWLINK on the PF with IFLA_VFINFO_LIST > IFLA_VF_INFO > IFLA_VF_*), and every VF's current settings read
 * back from the PF (RTM_GETLINK with IFLA_EXT_MASK = RTEXT_FILTER_VF).
 *
 * The requests are byte for byte what iproute2 sends for `ip link set dev PF vf N ...` (vfs.test.ts compares
 * them with an strace capture): RTM_NEWLINK without NLM_F_CREATE on the PF's ifindex (the kernel's do_setlink,
 * the same path as RTM_SETLINK), nests without NLA_F_NESTED, the legacy IFLA_VF_VLAN for 802.1Q (every kernel
 * takes it) and IFLA_VF_VLAN_LIST only when the protocol is 802.1ad. One setting per request, as sriov-cni's
 * netlink library does: a driver that refuses one setting (igb has no link state) is named in the error, and
 * what was applied before it is known exactly.
 */
import { invalidArgument } from './errno';
import { describe, changeLink, type LinkRef, formatMac, parseMac, resolveIndex, target } from './links';
import { AF, ETH_P, IFLA, IFLA_VF, IFLA_VF_INFO, IFLA_VF_LINK_STATE, IFLA_VF_VLAN_LIST, RTEXT_FILTER, RTM } from './netlink/constants';
import {
  type Attr,
  attr,
  type AttrSpec,
  decodeBody,
  encodeBody,
  findAttr,
  findAttrs,
  IFINFOMSG,
  IFLA_VF_LINK_STATE_STRUCT,
  IFLA_VF_MAC_STRUCT,
  IFLA_VF_RATE_STRUCT,
  IFLA_VF_SPOOFCHK_STRUCT,
  IFLA_VF_TRUST_STRUCT,
  IFLA_VF_TX_RATE_STRUCT,
  IFLA_VF_VLAN_INFO_STRUCT,
  IFLA_VF_VLAN_STRUCT,
  readNested,
  VF_MAC_BYTES,
} from './netlink/codec';
import type { NetlinkSocket } from './netlink/socket';

export type VfLinkState = 'auto' | 'enable' | 'disable';
export type VlanProto = '802.1Q' | '802.1ad';

/** One VF setting, as `ip link set dev PF vf N <setting>` takes it. Rates are in Mbit/s, 0 = no limit. */
export type VfChange =
  | { kind: 'mac'; mac: string }
  | { kind: 'vlan'; vlan: number; qos: number; proto: VlanProto }
  | { kind: 'rate'; minTxRate: number; maxTxRate: number }
  | { kind: 'spoofchk'; on: boolean }
  | { kind: 'trust'; on: boolean }
  | { kind: 'linkState'; state: VfLinkState };

/** What the PF reports of one VF. A setting the driver does not report (the kernel's -1) is absent. */
export interface VfInfo {
  vf: number;
  /** The administrative MAC the PF assigned ("00:00:00:00:00:00" when none). */
  mac: string;
  vlan: number;
  qos: number;
  vlanProto: VlanProto;
  minTxRate: number;
  maxTxRate: number;
  spoofchk?: boolean;
  trust?: boolean;
  linkState?: VfLinkState;
}

const LINK_STATES: readonly VfLinkState[] = ['auto', 'enable', 'disable'];
const LINK_STATE_VALUE: Record<VfLinkState, number> = {
  auto: IFLA_VF_LINK_STATE.AUTO,
  enable: IFLA_VF_LINK_STATE.ENABLE,
  disable: IFLA_VF_LINK_STATE.DISABLE,
};
/** The kernel fills "not reported" settings with (u32)-1 before asking the driver. */
const UNREPORTED = 0xffffffff;
const ETHER_ADDR_LEN = 6;

export const describeVfChange = (c: VfChange): string => {
  switch (c.kind) {
    case 'mac':
      return `mac ${c.mac}`;
    case 'vlan':
      return `vlan ${c.vlan} qos ${c.qos} proto ${c.proto}`;
    case 'rate':
      return `min_tx_rate ${c.minTxRate} max_tx_rate ${c.maxTxRate}`;
    case 'spoofchk':
      return `spoofchk ${c.on ? 'on' : 'off'}`;
    case 'trust':
      return `trust ${c.on ? 'on' : 'off'}`;
    case 'linkState':
      return `state ${c.state}`;
  }
};

function checkU32(v: number, max: number, what: string, name: string): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw invalidArgument(what, `invalid ${name} ${v}`);
  return v;
}

/** The IFLA_VF_* attribute of one change for VF `vf`. */
export function vfChangeAttr(vf: number, change: VfChange, what: string): AttrSpec {
  switch (change.kind) {
    case 'mac': {
      const value = IFLA_VF_MAC_STRUCT.encode({ vf });
      parseMac(change.mac, what).copy(value, VF_MAC_BYTES.offset);
      return attr.bytes(IFLA_VF.MAC, value);
    }
    case 'vlan': {
      checkU32(change.vlan, 4094, what, 'VLAN');
      checkU32(change.qos, 7, what, 'QoS');
      if (change.proto === '802.1Q') return attr.bytes(IFLA_VF.VLAN, IFLA_VF_VLAN_STRUCT.encode({ vf, vlan: change.vlan, qos: change.qos }));
      const info = IFLA_VF_VLAN_INFO_STRUCT.encode({ vf, vlan: change.vlan, qos: change.qos, vlan_proto: ETH_P['8021AD'] });
      return attr.nest(IFLA_VF.VLAN_LIST, [attr.bytes(IFLA_VF_VLAN_LIST.VLAN_INFO, info)]);
    }
    case 'rate':
      return attr.bytes(
        IFLA_VF.RATE,
        IFLA_VF_RATE_STRUCT.encode({
          vf,
          min_tx_rate: checkU32(change.minTxRate, UNREPORTED - 1, what, 'min_tx_rate'),
          max_tx_rate: checkU32(change.maxTxRate, UNREPORTED - 1, what, 'max_tx_rate'),
        }),
      );
    case 'spoofchk':
      return attr.bytes(IFLA_VF.SPOOFCHK, IFLA_VF_SPOOFCHK_STRUCT.encode({ vf, setting: change.on ? 1 : 0 }));
    case 'trust':
      return attr.bytes(IFLA_VF.TRUST, IFLA_VF_TRUST_STRUCT.encode({ vf, setting: change.on ? 1 : 0 }));
    case 'linkState':
      return attr.bytes(IFLA_VF.LINK_STATE, IFLA_VF_LINK_STATE_STRUCT.encode({ vf, link_state: LINK_STATE_VALUE[change.state] }));
  }
}

/** Changes one setting of VF `vf` of the PF `pf` (the PF is named by ifindex in the request, as iproute2 does). */
export function setVf(sock: NetlinkSocket, pf: LinkRef, vf: number, change: VfChange): void {
  const what = `set ${describe(pf)} vf ${vf} ${describeVfChange(change)}`;
  checkU32(vf, 0x7fffffff, what, 'VF index');
  const index = resolveIndex(sock, pf, what);
  const list = attr.nest(IFLA.VFINFO_LIST, [attr.nest(IFLA_VF_INFO.INFO, [vfChangeAttr(vf, change, what)])]);
  changeLink(sock, index, what, {}, [list]);
}

/** Every VF the PF reports, in index order (empty for a link without VFs). */
export function listVfs(sock: NetlinkSocket, pf: LinkRef): VfInfo[] {
  const what = `read the VFs of ${describe(pf)}`;
  const t = target(pf, what);
  const body = encodeBody(IFINFOMSG, { ifi_family: AF.UNSPEC, ifi_index: t.index }, [
    ...t.attrs,
    attr.u32(IFLA.EXT_MASK, RTEXT_FILTER.VF | RTEXT_FILTER.SKIP_STATS),
  ]);
  const reply = sock.request(RTM.GETLINK, 0, body, what).find((m) => m.header.nlmsg_type === RTM.NEWLINK);
  if (!reply) return [];
  const list = findAttr(decodeBody(IFINFOMSG, reply.payload).attrs, IFLA.VFINFO_LIST);
  return list ? decodeVfInfoList(list) : [];
}

/** IFLA_VFINFO_LIST as the kernel's rtnl_fill_vfinfo writes it. */
export function decodeVfInfoList(list: Attr): VfInfo[] {
  return findAttrs(readNested(list), IFLA_VF_INFO.INFO)
    .map((a) => decodeVfInfo(readNested(a)))
    .sort((x, y) => x.vf - y.vf);
}

function decodeVfInfo(attrs: Attr[]): VfInfo {
  const get = (type: number): Buffer | undefined => findAttr(attrs, type)?.data;
  const macAttr = get(IFLA_VF.MAC);
  const vf = macAttr ? IFLA_VF_MAC_STRUCT.decode(macAttr).vf : 0;
  const mac = macAttr
    ? formatMac(macAttr.subarray(VF_MAC_BYTES.offset, VF_MAC_BYTES.offset + ETHER_ADDR_LEN))
    : '00:00:00:00:00:00';
  const info: VfInfo = { vf, mac, vlan: 0, qos: 0, vlanProto: '802.1Q', minTxRate: 0, maxTxRate: 0 };
  // IFLA_VF_VLAN_LIST carries the protocol; IFLA_VF_VLAN (always present) is 802.1Q's view of the same VLAN.
  const vlanList = findAttr(attrs, IFLA_VF.VLAN_LIST);
  const vlanInfo = vlanList ? findAttr(readNested(vlanList), IFLA_VF_VLAN_LIST.VLAN_INFO) : undefined;
  if (vlanInfo) {
    const v = IFLA_VF_VLAN_INFO_STRUCT.decode(vlanInfo.data);
    Object.assign(info, { vlan: v.vlan, qos: v.qos, vlanProto: v.vlan_proto === ETH_P['8021AD'] ? '802.1ad' : '802.1Q' });
  } else {
    const vlan = get(IFLA_VF.VLAN);
    if (vlan) {
      const v = IFLA_VF_VLAN_STRUCT.decode(vlan);
      Object.assign(info, { vlan: v.vlan, qos: v.qos });
    }
  }
  const rate = get(IFLA_VF.RATE);
  const txRate = get(IFLA_VF.TX_RATE);
  if (rate) {
    const r = IFLA_VF_RATE_STRUCT.decode(rate);
    Object.assign(info, { minTxRate: r.min_tx_rate, maxTxRate: r.max_tx_rate });
  } else if (txRate) {
    info.maxTxRate = IFLA_VF_TX_RATE_STRUCT.decode(txRate).rate;
  }
  const setting = (type: number, codec: typeof IFLA_VF_SPOOFCHK_STRUCT): boolean | undefined => {
    const data = get(type);
    const v = data ? codec.decode(data).setting : UNREPORTED;
    return v === UNREPORTED ? undefined : v !== 0;
  };
  const spoofchk = setting(IFLA_VF.SPOOFCHK, IFLA_VF_SPOOFCHK_STRUCT);
  if (spoofchk !== undefined) info.spoofchk = spoofchk;
  const trust = setting(IFLA_VF.TRUST, IFLA_VF_TRUST_STRUCT);
  if (trust !== undefined) info.trust = trust;
  const linkState = get(IFLA_VF.LINK_STATE);
  const ls = linkState ? LINK_STATES[IFLA_VF_LINK_STATE_STRUCT.decode(linkState).link_state] : undefined;
  if (ls) info.linkState = ls;
  return info;
}
