/**
 * plexus-sriov's public face for the daemon: the delegate assembled from the node's `sriov` options (sysfs
 * root, real or emulated PF), its records in the daemon's state directory, and what it holds open.
 */
import type { DelegateRegistry } from '../delegates/contract';
import { Netlink } from '../kernel';
import type { SriovOptions } from './config';
import { SriovDelegate } from './delegate';
import { EmulatedPf, NetlinkPf } from './pf';
import { VfRecords } from './records';
import { Sysfs } from './sysfs';

export { SRIOV_TYPE, parseSriovOptions, type SriovOptions } from './config';
export { SriovDelegate } from './delegate';

export interface SriovHost {
  readonly delegate: SriovDelegate;
  close(): void;
}

export function openSriov(options: SriovOptions, stateDir: string, delegates: DelegateRegistry): SriovHost {
  const host = Netlink.openSync(null);
  const sysfs = new Sysfs(options.sysfsRoot);
  const pf = options.emulatePf ? new EmulatedPf(options.sysfsRoot, (name) => sysfs.numVfs(sysfs.pciOfNetdev(name) ?? '')) : new NetlinkPf(host);
  const delegate = new SriovDelegate({ options, sysfs, pf, host, records: new VfRecords(stateDir), delegates });
  return { delegate, close: () => host.close() };
}
