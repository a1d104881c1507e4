/**
 * network-status entries (S24-S27, D4): one map per attachment, built from the attachment's CNI result.
 * The first sandbox interface names the entry; its IPs are those whose `interface` index points at it; with
 * no sandbox interface, the first IP without an interface index (S27). IPs are written without prefix.
 */
import { CniResult, isDefaultDst, parseResult, stripPrefix } from '../../cni/result';

/** The pod annotation a CNI publishes its attachments in (S24). */
export const NETWORK_STATUS_ANNOTATION = 'k8s.v1.cni.cncf.io/network-status';

export interface NetworkStatus {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default: boolean;
  dns: { nameservers?: string[]; domain?: string; search?: string[] };
  'default-route'?: string[];
  'device-info'?: Record<string, unknown>;
}

export interface StatusInput {
  statusName: string;
  isDefault: boolean;
  /** The attachment's result as the delegate printed it (any version). */
  result: unknown;
  cniVersion: string;
  /** S19/S27: gateways of the default route this attachment carries, when it carries one. */
  defaultRoute?: string[];
  deviceInfo?: Record<string, unknown>;
}

export function networkStatusOf(input: StatusInput): NetworkStatus {
  const status: NetworkStatus = { name: input.statusName, default: input.isDefault, dns: {} };
  const result: CniResult | undefined = input.result === undefined ? undefined : parseResult(input.result, input.cniVersion);
  if (result) {
    const ifaces = result.interfaces ?? [];
    const idx = ifaces.findIndex((i) => typeof i.sandbox === 'string' && i.sandbox !== '');
    const ips = result.ips ?? [];
    if (idx >= 0) {
      const iface = ifaces[idx]!;
      status.interface = iface.name;
      const mine = ips.filter((ip) => ip.interface === idx).map((ip) => stripPrefix(ip.address));
      if (mine.length > 0) status.ips = mine;
      if (iface.mac) status.mac = iface.mac;
      // S27: keys beyond the spec must be reverse-DNS vendor keys, so no `mtu` (a Multus departure).
    } else {
      const first = ips.find((ip) => ip.interface === undefined);
      if (first) status.ips = [stripPrefix(first.address)];
    }
    status.dns = dnsOf(result);
  }
  if (input.defaultRoute && input.defaultRoute.length > 0) status['default-route'] = [...input.defaultRoute];
  if (input.deviceInfo) status['device-info'] = input.deviceInfo;
  return status;
}

function dnsOf(result: CniResult): NetworkStatus['dns'] {
  const dns: NetworkStatus['dns'] = {};
  const d = result.dns;
  if (!d) return dns;
  if (d.nameservers?.length) dns.nameservers = [...d.nameservers];
  if (d.domain) dns.domain = d.domain;
  if (d.search?.length) dns.search = [...d.search];
  return dns;
}

/** Gateways of the default routes a result carries (used for the cluster network's `default-route`). */
export function defaultGateways(result: CniResult): string[] {
  const gws = (result.routes ?? []).filter((r) => isDefaultDst(r.dst) && r.gw).map((r) => r.gw!);
  return [...new Set(gws)];
}

/** The annotation value, formatted as Multus writes it (kept byte-identical for users' tooling). */
export const formatNetworkStatus = (list: NetworkStatus[]): string => JSON.stringify(list, null, 4);
