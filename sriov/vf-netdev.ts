/**
 * A kernel-mode VF's netdev, into the pod and back (`../shared/specs/sriov-and-devices.md` 1.3 step 5, 1.5).
 *
 * Into the pod, through an anonymous temporary netns: renamed to the pod's ifname there, where no name can
 * clash (neither the host's `net1` nor the pod's own links), its altnames removed (udev's would follow it
 * into the pod and block a link of that name there), then moved into the pod. A crash at any point leaves a
 * physical VF where the kernel puts it when the temporary netns dies: back in the host netns, found again by
 * PCI address. In the pod: MAC (verified, with bounded retries), MTU, ARP and NDISC notification, addresses
 * while the link is down, link up (the kernel then announces the addresses: gratuitous ARP with arp_notify,
 * unsolicited neighbour advertisements with ndisc_notify), routes.
 *
 * Back to the host the same way round: into a temporary netns, down, MAC, MTU and name restored, then home,
 * the original altnames given back.
 */
import { isIP } from 'node:net';
import { createAnonymousNetns, hasErrno, type Link, Netlink, writeSysctl } from '../kernel';
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

async function withNetlink<T>(netns: string | null, step: (nl: Netlink) => Promise<T>): Promise<T> {
  const nl = await Netlink.open(netns);
  try {
    return await step(nl);
  } finally {
    nl.close();
  }
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
 * Host `vfName` -> pod `ifName`. On failure the VF is back in the host under its own name (or, if even that
 * fails, wherever the kernel returns it: the host netns), and the error is thrown.
 */
export async function moveIntoPod(host: Netlink, vfName: string, ifName: string, netns: string): Promise<void> {
  const temp = createAnonymousNetns();
  try {
    await host.setLinkUp(vfName, false);
    await host.moveLinkToNetns(vfName, temp.path);
    await withNetlink(temp.path, async (t) => {
      try {
        if (vfName !== ifName) await t.renameLink(vfName, ifName);
        for (const alt of (await t.getLink(ifName))?.altNames ?? []) await t.removeAltName(ifName, alt);
        await t.moveLinkToNetns(ifName, netns);
      } catch (err) {
        const name = (await t.getLink(ifName)) ? ifName : vfName;
        if (name !== vfName) await t.renameLink(name, vfName).catch(() => undefined);
        await t.moveLinkToNetns(vfName, HOST_NETNS).catch(() => undefined);
        throw err;
      }
    });
  } finally {
    temp.close();
  }
}

/** Configures the VF in the pod: MAC, MTU, announcements, addresses, up, routes. Returns the link. */
export async function configureInPod(netns: string, ifName: string, side: PodSide, ipam: CniResult | undefined): Promise<Link> {
  return withNetlink(netns, async (pod) => {
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
 * Pod (or wherever the VF is now) -> host, as it was. `from` is the netns the VF is in and its name there.
 * Returns false when the netdev is not there (gone from the pod, or vanished).
 */
export async function returnToHost(host: Netlink, from: { netns: string | null; name: string }, original: OriginalNetdev): Promise<boolean> {
  const src = await Netlink.open(from.netns).catch(() => null);
  if (!src) return false;
  const temp = createAnonymousNetns();
  try {
    try {
      if (!(await src.getLink(from.name))) return false;
      await src.setLinkUp(from.name, false);
      await src.moveLinkToNetns(from.name, temp.path);
    } finally {
      src.close();
    }
    const home = await withNetlink(temp.path, async (t) => {
      await t.setMac(from.name, original.mac);
      await t.setMtu(from.name, original.mtu);
      let name = original.name;
      if (from.name !== name) await t.renameLink(from.name, name);
      try {
        await t.moveLinkToNetns(name, HOST_NETNS);
      } catch (err) {
        // The host took the name meanwhile: home under a name derived from nothing the pod chose.
        if (!hasErrno(err, 'EEXIST')) throw err;
        name = `vf${original.mac.replace(/:/g, '').slice(-10)}`;
        await t.renameLink(original.name, name);
        await t.moveLinkToNetns(name, HOST_NETNS);
      }
      return name;
    });
    for (const alt of original.altNames) {
      await host.addAltName(home, alt).catch(() => undefined); // taken meanwhile: the name matters, not the alias
    }
    return true;
  } finally {
    temp.close();
  }
}
