/**
 * One pod's side of plexus-routed, as kernel steps: the veth pair, the pod end's addresses, gateway and
 * neighbour, the host end's routes and neighbours. Each step is a named function (STYLE 1); the delegate
 * strings them together with an undo stack.
 *
 * The pod end gets /32 and /128 addresses and reaches everything through a link-local gateway that exists
 * nowhere: 169.254.1.1 / fe80::1, each with a PERMANENT neighbour entry pointing at the host end's MAC.
 * Chosen over proxy ARP (Calico's way) because it needs no per-veth sysctls, no ARP/NDP round trip before
 * the first packet, and nothing answers for addresses it does not own; the host end, in turn, has a permanent
 * entry for each pod address, so neither side ever resolves the other.
 */
import { createHash } from 'node:crypto';
import { type Link, type Netlink, RT_SCOPE } from '../../kernel';
import { PlexusError } from '../../core/errors';
import { isDefaultDst } from '../../cni/result';
import { GATEWAY_V4, GATEWAY_V6, RTPROT_PLEXUS } from './options';
import type { EndpointAddress, EndpointRecord } from './endpoint-records';

/** The host end's name: stable for (container, interface), so DEL and CHECK find it without a record. */
export function hostIfName(containerId: string, ifName: string): string {
  return `plx${createHash('sha256').update(`${containerId}/${ifName}`).digest('hex').slice(0, 11)}`;
}

export const GATEWAYS = { 4: GATEWAY_V4, 6: GATEWAY_V6 } as const;
export const hostPrefix = (family: 4 | 6): number => (family === 4 ? 32 : 128);

/** Creates the pair: the host end here, the pod end straight inside the pod's netns, both at `mtu`. */
export async function createVethPair(node: Netlink, hostIf: string, ifName: string, netns: string, mtu: number): Promise<Link> {
  await node.createVeth(hostIf, ifName, { peerNetnsPath: netns, mtu });
  const host = await node.getLink(hostIf);
  if (!host?.mac) throw new PlexusError('KernelFailure', `veth ${hostIf} vanished right after it was created`);
  return host;
}

/**
 * The pod end: up, its addresses, the link-local gateway with a permanent neighbour, then routes via the
 * gateway: the IPAM result's routes, and a default route unless the pod already has one for the family (an
 * extra network must not take the cluster network's default away: S19 leaves that to `default-route`).
 * Returns the link and the families that got a default route here.
 */
export async function configurePodEnd(
  pod: Netlink, ifName: string, addresses: readonly EndpointAddress[], hostMac: string, routes: readonly string[] = [],
): Promise<{ link: Link; defaults: (4 | 6)[] }> {
  const link = await pod.getLink(ifName);
  if (!link?.mac) throw new PlexusError('KernelFailure', `interface ${ifName} is missing in the pod's netns after creation`);
  await pod.setLinkUp(ifName, true);
  for (const a of addresses) {
    await pod.addAddress(ifName, a.cidr, a.family === 6 ? { noDad: true } : {});
  }
  const defaults: (4 | 6)[] = [];
  for (const family of familiesOf(addresses)) {
    const gw = GATEWAYS[family];
    await pod.replaceNeighbour({ ifName, address: gw, mac: hostMac, permanent: true, ...(family === 6 ? { router: true } : {}) });
    // IPv4 needs the gateway on-link first; fe80::/64 is on-link by definition.
    if (family === 4) await pod.replaceRoute({ dst: `${gw}/32`, ifName, scope: RT_SCOPE.LINK });
    for (const dst of routes.filter((r) => (r.includes(':') ? 6 : 4) === family && !isDefaultDst(r))) {
      await pod.replaceRoute({ dst, gateway: gw, ifName });
    }
    const existing = (await pod.listRoutes({ family })).some((r) => r.dst === 'default');
    if (!existing) {
      await pod.addRoute({ dst: 'default', family, gateway: gw, ifName });
      defaults.push(family);
    }
  }
  return { link, defaults };
}

/** The host end: up, a host route and a permanent neighbour entry per pod address. */
export async function configureHostEnd(node: Netlink, hostIf: string, addresses: readonly EndpointAddress[], podMac: string): Promise<void> {
  await node.setLinkUp(hostIf, true);
  for (const a of addresses) {
    await node.replaceRoute({ dst: `${a.ip}/${hostPrefix(a.family)}`, ifName: hostIf, scope: RT_SCOPE.LINK, protocol: RTPROT_PLEXUS });
    await node.replaceNeighbour({ ifName: hostIf, address: a.ip, mac: podMac, permanent: true });
  }
}

export function familiesOf(addresses: readonly EndpointAddress[]): (4 | 6)[] {
  return ([4, 6] as const).filter((f) => addresses.some((a) => a.family === f));
}

/**
 * What is wrong with an endpoint in the kernel, compared with its record (CHECK). Empty when nothing is.
 * `pod` is null when the pod's netns cannot be opened.
 */
export async function endpointProblems(node: Netlink, pod: Netlink | null, rec: EndpointRecord): Promise<string[]> {
  const out: string[] = [];
  const host = await node.getLink(rec.hostIf);
  if (!host) return [`host interface ${rec.hostIf} is missing`];
  if (!host.up) out.push(`host interface ${rec.hostIf} is down`);
  const hostRoutes = [...(await node.listRoutes({ family: 4 })), ...(await node.listRoutes({ family: 6 }))];
  const hostNeigh = await node.listNeighbours({ ifindex: host.index });
  for (const a of rec.addresses) {
    const dst = `${a.ip}/${hostPrefix(a.family)}`;
    if (!hostRoutes.some((r) => r.dst === dst && r.oifIndex === host.index)) out.push(`host route ${dst} dev ${rec.hostIf} is missing`);
    if (!hostNeigh.some((n) => n.address === a.ip && n.permanent && n.mac === rec.podMac)) out.push(`host neighbour ${a.ip} on ${rec.hostIf} is missing`);
  }
  if (!pod) return [...out, `pod netns ${rec.netns} cannot be opened`];
  const link = await pod.getLink(rec.ifName);
  if (!link) return [...out, `interface ${rec.ifName} is missing in the pod`];
  if (!link.up) out.push(`interface ${rec.ifName} is down in the pod`);
  if (link.mac !== rec.podMac) out.push(`interface ${rec.ifName} has MAC ${link.mac ?? 'none'}, expected ${rec.podMac}`);
  const addrs = await pod.listAddresses(link.index);
  for (const a of rec.addresses) {
    if (!addrs.some((x) => x.address === a.ip && x.prefixLength === hostPrefix(a.family))) out.push(`address ${a.cidr} is missing on ${rec.ifName}`);
  }
  const neigh = await pod.listNeighbours({ ifindex: link.index });
  for (const family of familiesOf(rec.addresses)) {
    const gw = GATEWAYS[family];
    const routes = await pod.listRoutes({ family });
    const wantDefault = rec.defaults?.includes(family) ?? true;
    if (wantDefault && !routes.some((r) => r.dst === 'default' && r.gateway === gw && r.oifIndex === link.index)) out.push(`default route via ${gw} is missing in the pod`);
    if (!neigh.some((n) => n.address === gw && n.permanent && n.mac === rec.hostMac)) out.push(`gateway neighbour ${gw} is missing in the pod`);
  }
  return out;
}
