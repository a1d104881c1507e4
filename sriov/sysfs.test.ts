/**
 * VF discovery on a tree laid out as the kernel's /sys (hack/cluster/fake-sriov.ts writeFakeSysfs): PF, index,
 * netdev, driver and mode, and the clear 110 for what is not a usable VF.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFakeSysfs } from '../hack/cluster/fake-sriov';
import { Sysfs } from './sysfs';

let root: string;
let sysfs: Sysfs;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'plx-sysfs-'));
  writeFakeSysfs(root, {
    pci: '0000:af:00.1', name: 'enp175s0f1',
    vfs: [
      { pci: '0000:af:06.0', netdev: 'enp175s6' },
      { pci: '0000:af:06.1', netdev: 'enp175s7' },
      { pci: '0000:af:06.2', driver: 'vfio-pci' },
      { pci: '0000:af:06.3', driver: 'igb_uio' },
      { pci: '0000:af:06.4', driver: 'mlx5_core' },
    ],
  });
  sysfs = new Sysfs(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

test('a kernel VF: its PF, index, netdev and driver', () => {
  expect(sysfs.vf('0000:af:06.1')).toEqual({ pci: '0000:af:06.1', pfPci: '0000:af:00.1', pf: 'enp175s0f1', index: 1, netdev: 'enp175s7', driver: 'iavf', mode: 'kernel' });
});

test.each([['0000:af:06.2', 'vfio-pci'], ['0000:af:06.3', 'igb_uio']])('%s on %s is a DPDK VF', (pci, driver) => {
  expect(sysfs.vf(pci)).toMatchObject({ mode: 'dpdk', driver, index: Number(pci.slice(-1)) });
  expect(sysfs.vf(pci).netdev).toBeUndefined();
});

test.each<[string, () => void, RegExp]>([
  ['missing device', () => undefined, /VF 0000:af:06\.9: no such PCI device/],
  ['a PF', () => undefined, /not a virtual function \(no physfn link\)/],
  ['kernel driver but no netdev (in a pod)', () => undefined, /no netdev, and driver mlx5_core is not a userspace driver/],
  ['beyond sriov_numvfs', () => writeFileSync(join(root, 'bus/pci/devices/0000:af:00.1/sriov_numvfs'), '1\n'), /not among the enabled VFs of enp175s0f1/],
  ['no driver bound', () => unlinkSync(join(root, 'bus/pci/devices/0000:af:06.2/driver')), /no netdev and no driver bound/],
])('%s: 110 naming the reason', (title, setup, message) => {
  setup();
  const pci = { 'missing device': '0000:af:06.9', 'a PF': '0000:af:00.1', 'kernel driver but no netdev (in a pod)': '0000:af:06.4', 'beyond sriov_numvfs': '0000:af:06.1', 'no driver bound': '0000:af:06.2' }[title]!;
  expect(() => sysfs.vf(pci)).toThrow(expect.objectContaining({ kind: 'DeviceUnavailable', cniCode: 110, message: expect.stringMatching(message) }));
});

test('a gap in the virtfn links does not hide later VFs; PCI addresses are checked before they make a path', () => {
  unlinkSync(join(root, 'bus/pci/devices/0000:af:00.1/virtfn0'));
  expect(sysfs.vfIndex('0000:af:00.1', '0000:af:06.1')).toBe(1);
  symlinkSync('../0000:af:06.0', join(root, 'bus/pci/devices/0000:af:00.1/virtfn0'));
  expect(() => sysfs.vf('../../etc')).toThrow(/no such PCI device/); // never joined into a path: exists() refuses it first
  expect(sysfs.pciOfNetdev('enp175s7')).toBe('0000:af:06.1');
  expect(sysfs.pciOfNetdev('../x')).toBeUndefined();
  expect(sysfs.numVfs('0000:af:00.1')).toBe(5);
});
