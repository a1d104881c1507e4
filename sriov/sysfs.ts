/**
 * VF discovery from sysfs only (`../shared/specs/sriov-and-devices.md` 1.2), under a configurable root so
 * tests and the demo run on a fake tree:
 *   <root>/bus/pci/devices/<vf>/physfn        -> ../<pf>        the VF's PF
 *   <root>/bus/pci/devices/<pf>/sriov_numvfs                   how many VFs the PF has enabled
 *   <root>/bus/pci/devices/<pf>/virtfnN       -> ../<vf>        VF index N
 *   <root>/bus/pci/devices/<x>/net/<name>                      the netdev of a PCI function (host netns only)
 *   <root>/bus/pci/devices/<vf>/driver        -> .../<driver>   kernel netdev driver, or a userspace one
 * Paths are built only from validated PCI addresses; names read back are checked before use.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PlexusError } from '../core/errors';
import { PCI_ADDRESS } from './config';

/** Drivers that hand the VF to a userspace (DPDK) application: no netdev to move (1.4). */
export const USERSPACE_DRIVERS = ['vfio-pci', 'uio_pci_generic', 'igb_uio'] as const;

export interface VfDevice {
  pci: string;
  pfPci: string;
  /** The PF's netdev in the host netns: where VF settings are sent. */
  pf: string;
  index: number;
  /** The VF's netdev in the host netns; absent when bound to a userspace driver or moved elsewhere. */
  netdev?: string;
  /** The bound driver's name; absent when none is bound. */
  driver?: string;
  mode: 'kernel' | 'dpdk';
}

const IFNAME = /^[^/\s:]{1,15}$/;

export class Sysfs {
  constructor(readonly root: string) {}

  private dev(pci: string, ...rest: string[]): string {
    if (!PCI_ADDRESS.test(pci)) throw new PlexusError('InvalidConfig', `invalid PCI address ${JSON.stringify(pci)}`);
    return join(this.root, 'bus', 'pci', 'devices', pci, ...rest);
  }

  /** The PCI function exists. */
  exists(pci: string): boolean {
    try {
      readdirSync(this.dev(pci));
      return true;
    } catch {
      return false;
    }
  }

  /** Netdev names of a PCI function in this netns (sysfs shows only those). */
  netdevs(pci: string): string[] {
    try {
      return readdirSync(this.dev(pci, 'net')).filter((n) => IFNAME.test(n)).sort();
    } catch {
      return [];
    }
  }

  driver(pci: string): string | undefined {
    try {
      return basename(readlinkSync(this.dev(pci, 'driver')));
    } catch {
      return undefined;
    }
  }

  /** Everything ADD needs to know of a VF; DeviceUnavailable (110) naming what is missing. */
  vf(pci: string): VfDevice {
    const missing = (why: string) => new PlexusError('DeviceUnavailable', `VF ${pci}: ${why} (under ${join(this.root, 'bus/pci/devices')})`);
    if (!this.exists(pci)) throw missing('no such PCI device');
    let pfPci: string;
    try {
      pfPci = basename(readlinkSync(this.dev(pci, 'physfn')));
    } catch {
      throw missing('not a virtual function (no physfn link)');
    }
    if (!PCI_ADDRESS.test(pfPci)) throw missing(`physfn names ${JSON.stringify(pfPci)}, not a PCI address`);
    const pf = this.netdevs(pfPci)[0];
    if (!pf) throw missing(`its PF ${pfPci} has no netdev in this network namespace`);
    const index = this.vfIndex(pfPci, pci);
    if (index === undefined) throw missing(`not among the enabled VFs of ${pf} (${pfPci})`);
    const driver = this.driver(pci);
    const netdev = this.netdevs(pci)[0];
    const dev: VfDevice = { pci, pfPci, pf, index, mode: netdev ? 'kernel' : 'dpdk' };
    if (driver) dev.driver = driver;
    if (netdev) dev.netdev = netdev;
    if (!netdev && !(USERSPACE_DRIVERS as readonly string[]).includes(driver ?? '')) {
      throw missing(
        driver ? `no netdev, and driver ${driver} is not a userspace driver (${USERSPACE_DRIVERS.join(', ')}); is the VF in another pod?`
          : 'no netdev and no driver bound',
      );
    }
    return dev;
  }

  /** The VF's index on its PF: the N whose virtfnN points at it, N < sriov_numvfs. */
  vfIndex(pfPci: string, pci: string): number | undefined {
    for (let i = 0; i < this.numVfs(pfPci); i++) {
      try {
        if (basename(readlinkSync(this.dev(pfPci, `virtfn${i}`))) === pci) return i;
      } catch {
        // a gap: keep looking
      }
    }
    return undefined;
  }

  /** The PCI function whose netdev (in this netns) is `name`. */
  pciOfNetdev(name: string): string | undefined {
    if (!IFNAME.test(name)) return undefined;
    let all: string[];
    try {
      all = readdirSync(join(this.root, 'bus', 'pci', 'devices'));
    } catch {
      return undefined;
    }
    return all.find((pci) => PCI_ADDRESS.test(pci) && this.netdevs(pci).includes(name));
  }

  /** sriov_numvfs of a PF, 0 when unreadable. */
  numVfs(pfPci: string): number {
    if (!PCI_ADDRESS.test(pfPci)) return 0;
    try {
      const n = Number.parseInt(readFileSync(this.dev(pfPci, 'sriov_numvfs'), 'utf8').trim(), 10);
      return Number.isFinite(n) ? n : 0;
    } catch {
      return 0;
    }
  }
}
