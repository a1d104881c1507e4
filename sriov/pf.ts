/**
 * The PF side of a VF: its settings are held by the PF's driver and changed through the PF (never the VF's
 * own netdev). One small interface, two implementations (STYLE 19):
 * - NetlinkPf: the real one, rtnetlink on the host netns (kernel/vfs.ts);
 * - EmulatedPf: for a fake sysfs on a machine without SR-IOV hardware (the demo, tests). It keeps the VF
 *   state a driver would keep, in a JSON file beside the fake tree (so it outlives a daemon restart, as a
 *   driver's does), appends every call to a log tests read, and can apply MACs late, as i40e/iavf do.
 */
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERRNO, KernelError, type Netlink, type VfChange, type VfInfo } from '../kernel';

export interface PfControl {
  /** Every VF the PF reports, in index order. */
  listVfs(pf: string): Promise<VfInfo[]>;
  /** One setting of one VF; throws KernelError when the driver refuses it. */
  setVf(pf: string, vf: number, change: VfChange): Promise<void>;
}

export class NetlinkPf implements PfControl {
  constructor(private readonly host: Netlink) {}

  listVfs(pf: string): Promise<VfInfo[]> {
    return this.host.listVfs(pf);
  }

  setVf(pf: string, vf: number, change: VfChange): Promise<void> {
    return this.host.setVf(pf, vf, change);
  }
}

/** The emulated driver's state file: VFs per PF, and its quirks. */
export interface EmulatedPfState {
  pfs: Record<string, VfInfo[]>;
  /** A MAC set on a VF reads back as the old one this many times first (asynchronous drivers). */
  lateMacReads?: number;
  /** Settings this driver refuses with EOPNOTSUPP, e.g. ["linkState"] (igb has no link state). */
  unsupported?: VfChange['kind'][];
  /** Settings that fail with EIO for now (a driver in trouble: a PF reset in progress). */
  failing?: VfChange['kind'][];
  /** Reads left before a pending MAC shows, per "pf/vf". */
  pendingMac?: Record<string, { mac: string; reads: number }>;
}

export const EMULATED_PF_FILE = 'plexus-emulated-pf.json';
export const EMULATED_PF_CALLS = 'plexus-emulated-pf.calls';

export function blankVf(vf: number): VfInfo {
  return { vf, mac: '00:00:00:00:00:00', vlan: 0, qos: 0, vlanProto: '802.1Q', minTxRate: 0, maxTxRate: 0, spoofchk: true, trust: false, linkState: 'auto' };
}

export class EmulatedPf implements PfControl {
  private readonly file: string;
  private readonly calls: string;

  /** `numVfs(pf)`: how many VFs the (fake) sysfs says the PF has. */
  constructor(
    sysfsRoot: string,
    private readonly numVfs: (pf: string) => number,
  ) {
    this.file = join(sysfsRoot, EMULATED_PF_FILE);
    this.calls = join(sysfsRoot, EMULATED_PF_CALLS);
  }

  private load(): EmulatedPfState {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as EmulatedPfState;
    } catch {
      return { pfs: {} };
    }
  }

  /** Whole-file replacement (readers never see half a file); no fsync: a driver's state is not durable either. */
  private save(state: EmulatedPfState): void {
    writeFileSync(`${this.file}.tmp`, JSON.stringify(state, null, 1));
    renameSync(`${this.file}.tmp`, this.file);
  }

  private vfsOf(state: EmulatedPfState, pf: string): VfInfo[] {
    const have = state.pfs[pf] ?? [];
    const n = this.numVfs(pf);
    const vfs = Array.from({ length: n }, (_, i) => have.find((v) => v.vf === i) ?? blankVf(i));
    state.pfs[pf] = vfs;
    return vfs;
  }

  async listVfs(pf: string): Promise<VfInfo[]> {
    const state = this.load();
    const known = state.pfs[pf]?.length;
    const vfs = this.vfsOf(state, pf).map((v) => ({ ...v }));
    let changed = known !== vfs.length;
    for (const v of vfs) {
      const pending = state.pendingMac?.[`${pf}/${v.vf}`];
      if (!pending) continue;
      changed = true;
      if (pending.reads > 0) pending.reads--;
      else {
        v.mac = pending.mac;
        state.pfs[pf]![v.vf]!.mac = pending.mac;
        delete state.pendingMac![`${pf}/${v.vf}`];
      }
    }
    if (changed) this.save(state);
    return vfs;
  }

  async setVf(pf: string, vf: number, change: VfChange): Promise<void> {
    appendFileSync(this.calls, `${JSON.stringify({ pf, vf, ...change })}\n`);
    const state = this.load();
    const vfs = this.vfsOf(state, pf);
    const v = vfs[vf];
    const what = `set ${pf} vf ${vf} ${change.kind}`;
    if (!v) throw new KernelError(what, ERRNO.EINVAL, { extack: `${pf} has ${vfs.length} VFs` });
    if (state.unsupported?.includes(change.kind)) throw new KernelError(what, ERRNO.EOPNOTSUPP);
    if (state.failing?.includes(change.kind)) throw new KernelError(what, ERRNO.EIO);
    switch (change.kind) {
      case 'mac':
        if (state.pendingMac) delete state.pendingMac[`${pf}/${vf}`];
        if (state.lateMacReads) (state.pendingMac ??= {})[`${pf}/${vf}`] = { mac: change.mac, reads: state.lateMacReads };
        else v.mac = change.mac;
        break;
      case 'vlan':
        Object.assign(v, { vlan: change.vlan, qos: change.qos, vlanProto: change.proto });
        break;
      case 'rate':
        Object.assign(v, { minTxRate: change.minTxRate, maxTxRate: change.maxTxRate });
        break;
      case 'spoofchk':
        v.spoofchk = change.on;
        break;
      case 'trust':
        v.trust = change.on;
        break;
      case 'linkState':
        v.linkState = change.state;
        break;
    }
    this.save(state);
  }
}
