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
import { PodResources } from './pod-resources';
import type { Logger } from 'pino';

export { SRIOV_CNI_TYPE, SRIOV_TYPE, parseSriovOptions, type SriovOptions } from './config';
export { SriovDelegate } from './delegate';

export interface SriovHost {
  readonly delegate: SriovDelegate;
  /** The devices the kubelet's device manager gave each pod (PodResources API, checkpoint fallback). */
  readonly devices: PodResources;
  close(): void;
}

export function openSriov(options: SriovOptions, stateDir: string, delegates: DelegateRegistry, log: Logger): SriovHost {
  const host = Netlink.openSync(null);
  const devices = new PodResources(options.podResources, log.child({ component: 'pod-resources' }));
  const sysfs = new Sysfs(options.sysfsRoot);
  const pf = options.emulatePf ? new EmulatedPf(options.sysfsRoot, (name) => sysfs.numVfs(sysfs.pciOfNetdev(name) ?? '')) : new NetlinkPf(host);
  const delegate = new SriovDelegate({ options, sysfs, pf, host, records: new VfRecords(stateDir), delegates });
  return {
    delegate,
    devices,
    close: () => {
      devices.close();
      host.close();
    },
  };
}
