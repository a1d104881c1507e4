/**
 * One record per VF in use, `<stateDir>/sriov/<pci>.json`, written atomically. It is at once:
 * - the allocation marker (sriov-cni's `/var/lib/cni/sriov/pci/<bdf>`): it names the netns holding the VF, so
 *   a second pod is refused while that netns lives, and a stale one is repaired and cleared;
 * - the VF's complete original state (PF side and netdev), written before anything changes, so DEL restores
 *   exactly, whatever happened in between (a daemon restart, a deleted netns, a crash mid-ADD);
 * - the mode (kernel or DPDK), which sriov-cni forgets (its first DEL of a DPDK VF fails).
 * The file name is a validated PCI address, never taken from input unchecked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeFileDurably, writeFileAtomic } from '../core/atomic-file';
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
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'sriov');
  }

  private file(pci: string): string {
    if (!PCI_ADDRESS.test(pci)) throw new Error(`invalid PCI address ${JSON.stringify(pci)}`);
    return join(this.dir, `${pci}.json`);
  }

  get(pci: string): VfRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.file(pci), 'utf8')) as VfRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  put(rec: VfRecord): void {
    writeFileAtomic(this.file(rec.pci), JSON.stringify(rec));
  }

  remove(pci: string): void {
    removeFileDurably(this.file(pci));
  }

  list(): VfRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.endsWith('.json') && PCI_ADDRESS.test(n.slice(0, -5)))
      .map((n) => this.get(n.slice(0, -5)))
      .filter((r): r is VfRecord => r !== undefined);
  }

  /** The record of one attachment (a DEL whose config lost its deviceID finds it this way). */
  find(containerId: string, ifName: string): VfRecord | undefined {
    return this.list().find((r) => r.phase !== 'released' && r.containerId === containerId && r.ifName === ifName);
  }
}
