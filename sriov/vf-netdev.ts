/**
 * A kernel-mode VF's netdev, into the pod and back (`../shared/specs/sriov-and-devices.md` 1.3 step 5, 1.5).
 *
 * Into the pod in one RTM_NEWLINK that moves and renames (IFLA_NET_NS_FD with IFLA_IFNAME): the kernel moves
 * the device and renames it in the pod's netns, so the host never sees the new name and the host's names can
 * never clash; the pod's are checked before, and a failure after the move brings the VF back. sriov-cni gets
 * the same through a temporary netns, at the price of a second device move (an RCU grace period, about 25 ms
 * a move here) on ADD and on DEL (docs/decisions.md D-9). The VF's altnames (udev's) are removed before
 * it leaves, so none follows it into the pod, and given back when it comes home. In the pod: MAC (verified,
 * with bounded retries), MTU, ARP and NDISC notification, addresses while the link is down, link up (the
 * kernel then announces the addresses: gratuitous ARP with arp_notify, unsolicited neighbour advertisements
 * with ndisc_notify), routes.
 *
 * Back to the host the same way round: down, MAC and MTU restored in the pod, then home under its own name
 * in one move, the altnames given back. A physical VF whose pod netns died is already home (the kernel moves
 * it back under its pod name): it is found by PCI address and put right in place.
 */
import { isIP } from 'node:net';
import { hasErrno, type Link, Netlink, writeSysctl } from '../kernel';
import type { CniResult } from '../cni/result';
import { PlexusError } from '../core/errors';
import type { OriginalNetdev } from './records';

export interface PodSide {
  /** The pod-side MAC the config asked for (verified by reading it back). */
  mac?: string;
  mtu?: number;
  retries: number;
  retryDelayMs: number;
}

/** The daemon's own netns (a node's, in the local cluster): where PFs and free VFs live. */
const HOST_NETNS = '/proc/self/ns/net';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sets the MAC and reads it back until it shows (mlx5 needs the explicit set; i40e/iavf apply late). */
export async function setMacVerified(nl: Netlink, ifName: string, mac: string, retries: number, delayMs: number): Promise<void> {
  for (let i = 0; ; i++) {
    await nl.setMac(ifName, mac);
    if ((await nl.getLink(ifName))?.mac === mac) return;
    if (i + 1 >= retries) throw new PlexusError('KernelFailure', `MAC ${mac} on ${ifName} did not read back after ${retries} tries`);
    await sleep(delayMs);
  }
}

/**
 * Host `vfName` -> pod `ifName`, in one request. The kernel moves the device, then renames it in the pod's
 * netns: a name taken there fails after the move, so it is checked first, and on any failure the VF is
 * brought back (under its own name, which it kept) with its altnames.
 */
export async function moveIntoPod(host: Netlink, vfName: string, ifName: string, netns: string): Promise<void> {
  const taken = await Netlink.within(netns, (pod) => pod.getLink(ifName));
  if (taken) throw new PlexusError('InterfaceConflict', `the pod already has an interface named ${ifName}`);
  const altNames = (await host.getLink(vfName))?.altNames ?? [];
  await host.setLinkUp(vfName, false);
  for (const alt of altNames) await host.removeAltName(vfName, alt);
  try {
    await host.moveLinkToNetns(vfName, netns, { newName: ifName });
  } catch (err) {
    await Netlink.within(netns, async (pod) => {
      if (await pod.getLink(vfName)) await pod.moveLinkToNetns(vfName, HOST_NETNS);
    }).catch(() => undefined);
    for (const alt of altNames) await host.addAltName(vfName, alt).catch(() => undefined);
    throw err;
  }
}

/** Configures the VF in the pod: MAC, MTU, announcements, addresses, up, routes. Returns the link. */
export async function configureInPod(netns: string, ifName: string, side: PodSide, ipam: CniResult | undefined): Promise<Link> {
  return Netlink.within(netns, async (pod) => {
    // A kernel that keeps a renamed link's old name as an altname would bring the host's name along.
    for (const alt of (await pod.getLink(ifName))?.altNames ?? []) await pod.removeAltName(ifName, alt);
    if (side.mac) await setMacVerified(pod, ifName, side.mac, side.retries, side.retryDelayMs);
    if (side.mtu) await pod.setMtu(ifName, side.mtu);
    // Announce on link up (sriov-cni's EnableArpAndNdiscNotify); a kernel without IPv6 has no such key.
    for (const key of [`net/ipv4/conf/${ifName}/arp_notify`, `net/ipv6/conf/${ifName}/ndisc_notify`]) {
      await writeSysctl(netns, key, 1).catch((e: unknown) => {
        if (!hasErrno(e, 'ENOENT')) throw e;
      });
    }
    for (const ip of ipam?.ips ?? []) await pod.addAddress(ifName, ip.address);
    await pod.setLinkUp(ifName, true);
    for (const r of ipam?.routes ?? []) {
      const family = isIP(r.dst.split('/')[0] ?? '') === 6 ? 6 : 4;
      const gw = r.gw ?? ipam?.ips?.find((c) => (isIP(c.address.split('/')[0] ?? '') === 6 ? 6 : 4) === family)?.gateway;
      await pod.replaceRoute({ dst: r.dst, family, ifName, ...(gw ? { gateway: gw } : {}), ...(r.priority !== undefined ? { metric: r.priority } : {}) });
    }
    const link = await pod.getLink(ifName);
    if (!link) throw new PlexusError('KernelFailure', `${ifName} vanished from ${netns} while being configured`);
    return link;
  });
}

/**
 * Pod (or wherever the VF is now; null = already in the host) -> host, as it was. Returns false when the
 * netdev is not there (gone from the pod, or vanished).
 */
export async function returnToHost(host: Netlink, from: { netns: string | null; name: string }, original: OriginalNetdev): Promise<boolean> {
  const src = from.netns === null ? host : await Netlink.open(from.netns).catch(() => null);
  if (!src) return false;
  let home = original.name;
  try {
    if (!(await src.getLink(from.name))) return false;
    await src.setLinkUp(from.name, false);
    await src.setMac(from.name, original.mac);
    await src.setMtu(from.name, original.mtu);
    for (const alt of (await src.getLink(from.name))?.altNames ?? []) await src.removeAltName(from.name, alt);
    const move = (name: string) => (from.netns === null ? host.renameLink(from.name, name) : src.moveLinkToNetns(from.name, HOST_NETNS, { newName: name }));
    if (from.name !== home || from.netns !== null) {
      try {
        await move(home);
      } catch (err) {
        // The host took the name meanwhile: home under a name derived from the VF's own MAC.
        if (!hasErrno(err, 'EEXIST')) throw err;
        home = `vf${original.mac.replace(/:/g, '').slice(-10)}`;
        await move(home);
      }
    }
  } finally {
    if (src !== host) src.close();
  }
  for (const alt of original.altNames) {
    await host.addAltName(home, alt).catch(() => undefined); // taken meanwhile: the name matters, not the alias
  }
  return true;
}
