/**
 * One record per VF in use, `<stateDir>/sriov/<pci>.json`, written atomically. It is at once:
 * - the allocation marker (sriov-cni's `/var/lib/cni/sriov/pci/<bdf>`): it names the netns holding the VF, so
 *   a second pod is refused while that netns lives, and a stale one is repaired and cleared;
 * - the VF's complete original state (PF side and netdev), written before anything changes, so DEL restores
 *   exactly, whatever happened in between (a daemon restart, a deleted netns, a crash mid-ADD);
 * - the mode (kernel or DPDK), which sriov-cni forgets (its first DEL of a DPDK VF fails).
 * The file name is a validated PCI address, never taken from input unchecked.
 */
import { join } from 'node:path';
import { RecordDir } from '../core/record-dir';
import type { CniResult } from '../cni/result';
import type { VfInfo } from '../kernel';
import { PCI_ADDRESS, type SriovNetConf } from './config';

/** The VF's netdev as it was in the host netns before ADD. */
export interface OriginalNetdev {
  name: string;
  mac: string;
  mtu: number;
  altNames: string[];
}

export interface VfRecord {
  pci: string;
  pf: string;
  pfPci: string;
  vfIndex: number;
  mode: 'kernel' | 'dpdk';
  /**
   * configuring: ADD is changing the VF (a crash leaves it so: repaired at start);
   * attached: the pod holds it;
   * released: DEL could not restore everything; repaired before the VF is handed out again.
   */
  phase: 'configuring' | 'attached' | 'released';
  containerId: string;
  ifName: string;
  netns: string;
  network: string;
  pod?: { namespace: string; name: string; uid?: string };
  /** PF side before ADD. */
  originalVf: VfInfo;
  originalNetdev?: OriginalNetdev;
  /** What the network's config asked for: what ADD applied and DEL restores. */
  settings: Omit<SriovNetConf, 'network' | 'pci' | 'ipam' | 'deviceInfoFile'>;
  /** The interface as the pod got it (kernel mode): what CHECK compares. */
  podMac?: string;
  result?: CniResult;
  /** A device-info file plexus-sriov wrote itself (none existed): removed on DEL. */
  deviceInfoFile?: string;
  /** Why the last release was incomplete (phase released). */
  releaseProblems?: string[];
}

export class VfRecords {
  private readonly files: RecordDir<VfRecord>;

  constructor(stateDir: string) {
    this.files = new RecordDir(join(stateDir, 'sriov'), PCI_ADDRESS, 'PCI address');
  }

  get(pci: string): VfRecord | undefined {
    return this.files.get(pci);
  }

  put(rec: VfRecord): void {
    this.files.put(rec.pci, rec);
  }

  remove(pci: string): void {
    this.files.remove(pci);
  }

  list(): VfRecord[] {
    return this.files.list();
  }

  /** The record of one attachment (a DEL whose config lost its deviceID finds it this way). */
  find(containerId: string, ifName: string): VfRecord | undefined {
    return this.list().find((r) => r.phase !== 'released' && r.containerId === containerId && r.ifName === ifName);
  }
}
