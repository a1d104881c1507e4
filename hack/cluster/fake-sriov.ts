/**
 * SR-IOV hardware where there is none (`../shared/ENVIRONMENT.md`): a fake sysfs tree laid out as the kernel
 * lays out /sys/bus/pci/devices (PFs with `sriov_numvfs` and `virtfnN` links, VFs with `physfn`, `driver` and
 * `net/<name>`), whose netdevs are real veth ends in the node's netns. The other end of each VF's veth sits in
 * a "wire" netns, standing for the switch the VF's port is cabled to: traffic, ARP and neighbour
 * advertisements from the pod arrive there. plexusd runs with `sriov: {sysfsRoot: <root>, emulatePf: true}`,
 * so the VF settings a PF driver would hold are kept by sriov/pf.ts's EmulatedPf.
 *
 * What no fake can do is said plainly: no PF driver receives the IFLA_VF_* messages (kernel/vfs.test.ts checks
 * them byte for byte against iproute2 instead), and a veth is not returned to the host when its netns dies (a
 * physical VF is): `returnToHost` plays the kernel's part for tests of that case.
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './process';

export interface FakeVf {
  pci: string;
  /** The VF's netdev in the node (kernel driver); absent for a VF bound to a userspace driver. */
  netdev?: string;
  /** Default iavf with a netdev, vfio-pci without. */
  driver?: string;
}

export interface FakePf {
  pci: string;
  /** The PF's netdev, created as a veth end in the node. */
  name: string;
  vfs: FakeVf[];
}

const sysfsDev = (root: string, pci: string, ...rest: string[]) => join(root, 'bus', 'pci', 'devices', pci, ...rest);

function bindDriver(root: string, pci: string, name: string): void {
  mkdirSync(join(root, 'bus', 'pci', 'drivers', name), { recursive: true });
  rmSync(sysfsDev(root, pci, 'driver'), { force: true });
  symlinkSync(`../../drivers/${name}`, sysfsDev(root, pci, 'driver'));
}

/** A PF and its VFs laid out under `root` as the kernel lays them out under /sys (files and links only). */
export function writeFakeSysfs(root: string, pf: FakePf): void {
  const dev = (pci: string, ...rest: string[]) => sysfsDev(root, pci, ...rest);
  mkdirSync(dev(pf.pci, 'net', pf.name), { recursive: true });
  writeFileSync(dev(pf.pci, 'sriov_totalvfs'), `${pf.vfs.length}\n`);
  writeFileSync(dev(pf.pci, 'sriov_numvfs'), `${pf.vfs.length}\n`);
  bindDriver(root, pf.pci, 'ice');
  pf.vfs.forEach((vf, i) => {
    mkdirSync(dev(vf.pci), { recursive: true });
    symlinkSync(`../${vf.pci}`, dev(pf.pci, `virtfn${i}`));
    symlinkSync(`../${pf.pci}`, dev(vf.pci, 'physfn'));
    bindDriver(root, vf.pci, vf.driver ?? (vf.netdev ? 'iavf' : 'vfio-pci'));
    if (vf.netdev) mkdirSync(dev(vf.pci, 'net', vf.netdev), { recursive: true });
  });
}

export class FakeSriov {
  readonly wire: string;

  /** `root`: the fake sysfs directory; `node`: the netns plexusd runs in; `wire`: created here. */
  constructor(
    readonly root: string,
    readonly node: string,
    wire: string,
  ) {
    this.wire = wire;
    run('ip', ['netns', 'add', wire]);
    run('ip', ['-n', wire, 'link', 'set', 'lo', 'up']);
  }

  private dev(pci: string, ...rest: string[]): string {
    return sysfsDev(this.root, pci, ...rest);
  }

  /** The wire-side name of a VF's veth (at most 15 bytes). */
  static wireEnd(vfNetdev: string): string {
    return `w${vfNetdev}`.slice(0, 15);
  }

  /** The PF's sysfs tree, its netdev and each VF's netdev (veth ends, the other end on the wire). */
  addPf(pf: FakePf): void {
    writeFakeSysfs(this.root, pf);
    run('ip', ['-n', this.node, 'link', 'add', pf.name, 'type', 'veth', 'peer', 'name', FakeSriov.wireEnd(pf.name), 'netns', this.wire]);
    run('ip', ['-n', this.node, 'link', 'set', pf.name, 'mtu', '9000', 'up']);
    for (const vf of pf.vfs) {
      if (!vf.netdev) continue;
      const wire = FakeSriov.wireEnd(vf.netdev);
      run('ip', ['-n', this.node, 'link', 'add', vf.netdev, 'type', 'veth', 'peer', 'name', wire, 'netns', this.wire]);
      run('ip', ['-n', this.wire, 'link', 'set', wire, 'up']);
    }
  }

  /** The kernel's part when a pod's netns dies: a physical VF comes home under the name it had in the pod. */
  returnToHost(vf: FakeVf, podNetns: string, nameInPod: string): void {
    run('ip', ['-n', podNetns, 'link', 'set', nameInPod, 'down']);
    run('ip', ['-n', podNetns, 'link', 'set', nameInPod, 'netns', this.node]);
    rmSync(this.dev(vf.pci, 'net'), { recursive: true, force: true });
    mkdirSync(this.dev(vf.pci, 'net', nameInPod), { recursive: true });
  }

  /** The VF disappears (VFs disabled, PF reset): its sysfs entry and its netdev go. */
  remove(vf: FakeVf, where: string = this.node): void {
    rmSync(this.dev(vf.pci), { recursive: true, force: true });
    if (vf.netdev) run('ip', ['-n', where, 'link', 'del', vf.netdev], { allowFail: true });
  }

  destroy(): void {
    run('ip', ['netns', 'del', this.wire], { allowFail: true });
    rmSync(this.root, { recursive: true, force: true });
  }
}
