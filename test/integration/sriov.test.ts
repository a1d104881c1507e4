/**
 * plexus-sriov through bin/plexus-sriov, as a runtime runs it from a conflist, on a fake sysfs whose VF netdevs
 * are real veth ends (hack/cluster/fake-sriov.ts) and an emulated PF (sriov/pf.ts). Witnesses: `ip` in the pod
 * and the node (names, MACs, MTUs, altnames, addresses), tcpdump on the wire side (gratuitous ARP), ping
 * across the VF, the emulated PF's state and its call log (what a driver would have been asked, in order).
 */
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { FakeSriov, type FakeVf } from '../../hack/cluster';
import { containerId, ipJson, rand, ROOT, run, runProcess, TestCluster, type CniOutput } from '../helpers/plexus-harness';
import { EMULATED_PF_CALLS, EMULATED_PF_FILE, type EmulatedPfState } from '../../sriov/pf';

jest.setTimeout(120_000);

interface PodLink {
  ifname: string;
  address: string;
  mtu: number;
  operstate: string;
  altnames?: string[];
  addr_info?: Array<{ local: string; prefixlen: number; family: string }>;
}

/** One node with two PFs: pf A (two kernel VFs, one DPDK VF), pf B (one kernel VF). */
class SriovNode {
  readonly root = mkdtempSync(join(tmpdir(), 'plexus-sysfs-'));
  cluster!: TestCluster;
  fake!: FakeSriov;
  readonly tag = rand(2);
  readonly vfs: Record<'a0' | 'a1' | 'ad' | 'b0', FakeVf & { pfName: string }>;

  constructor() {
    const t = this.tag;
    this.vfs = {
      a0: { pci: '0000:af:06.0', netdev: `ens6f0v0${t}`, pfName: `ens6f0${t}` },
      a1: { pci: '0000:af:06.1', netdev: `ens6f0v1${t}`, pfName: `ens6f0${t}` },
      ad: { pci: '0000:af:06.2', pfName: `ens6f0${t}` },
      b0: { pci: '0000:b1:02.0', netdev: `ens7f0v0${t}`, pfName: `ens7f0${t}` },
    };
  }

  async start(extra: Record<string, unknown> = {}): Promise<this> {
    this.cluster = await TestCluster.start({ daemon: { sriov: { sysfsRoot: this.root, emulatePf: true, macRetryDelayMs: 20, ...extra } } });
    this.fake = new FakeSriov(this.root, this.cluster.node, `plxt-${this.cluster.id}-wire`);
    const { a0, a1, ad, b0 } = this.vfs;
    this.fake.addPf({ pci: '0000:af:00.0', name: a0.pfName, vfs: [a0, a1, ad] });
    this.fake.addPf({ pci: '0000:b1:00.0', name: b0.pfName, vfs: [b0] });
    // udev-style altnames, which must not follow a VF into a pod.
    run('ip', ['-n', this.cluster.node, 'link', 'property', 'add', 'dev', a0.netdev!, 'altname', `enp175s6${this.tag}`]);
    return this;
  }

  async destroy(): Promise<void> {
    await this.cluster?.destroy();
    this.fake?.destroy();
  }

  conf(vf: keyof SriovNode['vfs'], extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: '1.0.0', name: 'sriov-net', type: 'plexus-sriov', socketPath: this.cluster.socket, deviceID: this.vfs[vf].pci, ...extra };
  }

  /** bin/plexus-sriov in the node, as a runtime execs it. */
  cni(command: string, conf: Record<string, unknown>, call: { containerId: string; netns?: string; ifName?: string; args?: string }): Promise<CniOutput> {
    return runProcess('ip', ['netns', 'exec', this.cluster.node, join(ROOT, 'bin/plexus-sriov')], {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: call.containerId, CNI_NETNS: call.netns ?? '',
      CNI_IFNAME: call.ifName ?? 'net1', CNI_PATH: '/usr/lib/cni', CNI_ARGS: call.args ?? '',
    }, JSON.stringify(conf));
  }

  pfState(): EmulatedPfState {
    try {
      return JSON.parse(readFileSync(join(this.root, EMULATED_PF_FILE), 'utf8')) as EmulatedPfState;
    } catch {
      return { pfs: {} };
    }
  }

  setPfState(patch: Partial<EmulatedPfState>): void {
    writeFileSync(join(this.root, EMULATED_PF_FILE), JSON.stringify({ ...this.pfState(), ...patch }));
  }

  vfState(vf: keyof SriovNode['vfs']) {
    const index = { a0: 0, a1: 1, ad: 2, b0: 0 }[vf];
    return this.pfState().pfs[this.vfs[vf].pfName]?.[index];
  }

  calls(): Array<Record<string, unknown>> {
    const file = join(this.root, EMULATED_PF_CALLS);
    return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  }

  nodeLink(name: string): PodLink | undefined {
    return (ipJson(this.cluster.node, ['link', 'show']) as PodLink[]).find((l) => l.ifname === name);
  }

  podLink(pod: { name: string }, name = 'net1'): PodLink | undefined {
    return (ipJson(pod.name, ['addr', 'show']) as PodLink[]).find((l) => l.ifname === name);
  }

  records(): string[] {
    try {
      return require('node:fs').readdirSync(join(this.cluster.stateDir, 'sriov')) as string[];
    } catch {
      return [];
    }
  }
}

const expectOk = (out: CniOutput) => {
  if (out.code !== 0) throw new Error(`CNI call failed (${out.code}): ${out.stdout}${out.stderr}`);
  return out.json;
};

describe('plexus-sriov, kernel-mode VFs', () => {
  const n = new SriovNode();
  beforeAll(() => n.start());
  afterAll(() => n.destroy());

  test('ADD applies every setting on the PF in sriov-cni order, moves the VF into the pod named as asked, addresses it, announces it; DEL restores everything', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const { a0 } = n.vfs;
    const before = n.nodeLink(a0.netdev!)!;
    const pfBefore = n.vfState('a0');
    const conf = n.conf('a0', {
      vlan: 100, vlanQoS: 3, mac: '02:11:22:33:44:55', spoofchk: 'off', trust: 'on', link_state: 'enable', min_tx_rate: 10, max_tx_rate: 500,
      ipam: n.cluster.hostLocal('192.168.50.0/24', { rangeStart: '192.168.50.10' }),
    });
    // The wire side: an address to ping, and tcpdump listening for the pod's gratuitous ARP.
    const wire = FakeSriov.wireEnd(a0.netdev!);
    run('ip', ['-n', n.fake.wire, 'addr', 'add', '192.168.50.1/24', 'dev', wire]);
    const capture = spawn('ip', ['netns', 'exec', n.fake.wire, 'tcpdump', '-l', '-n', '-i', wire, '-c', '1', 'arp', 'and', 'src', 'host', '192.168.50.10']);
    let arp = '';
    capture.stdout.on('data', (d: Buffer) => (arp += d.toString()));
    await new Promise((r) => setTimeout(r, 500));

    const result = expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path }));
    expect(result.interfaces).toEqual([{ name: 'net1', mac: '02:11:22:33:44:55', mtu: before.mtu, sandbox: pod.path }]);
    expect(result.ips).toEqual([{ address: '192.168.50.10/24', gateway: '192.168.50.1', interface: 0 }]);

    // The pod's view: named net1, the requested MAC, up, addressed, no altname brought along.
    const link = n.podLink(pod)!;
    expect(link).toMatchObject({ address: '02:11:22:33:44:55', mtu: before.mtu });
    expect(link.altnames ?? []).toEqual([]);
    expect(link.addr_info?.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['192.168.50.10/24']);
    expect(n.nodeLink(a0.netdev!)).toBeUndefined();
    run('ip', ['netns', 'exec', pod.name, 'ping', '-c', '2', '-W', '2', '192.168.50.1']);
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => resolve(), 5000);
      capture.on('exit', () => (clearTimeout(t), resolve()));
    });
    capture.kill();
    expect(arp).toMatch(/192\.168\.50\.10/);

    // The PF's view, and the order it was asked in (VLAN, MAC, rates, spoofchk, trust, link state).
    expect(n.vfState('a0')).toMatchObject({ vlan: 100, qos: 3, vlanProto: '802.1Q', mac: '02:11:22:33:44:55', spoofchk: false, trust: true, linkState: 'enable', minTxRate: 10, maxTxRate: 500 });
    expect(n.calls().filter((c) => c['pf'] === a0.pfName && c['vf'] === 0).map((c) => c['kind'])).toEqual(['vlan', 'mac', 'rate', 'spoofchk', 'trust', 'linkState']);

    expectOk(await n.cni('CHECK', { ...conf, prevResult: result }, { containerId: id, netns: pod.path }));

    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path }));
    expect(n.podLink(pod)).toBeUndefined();
    const after = n.nodeLink(a0.netdev!)!;
    expect({ mac: after.address, mtu: after.mtu, altnames: after.altnames }).toEqual({ mac: before.address, mtu: before.mtu, altnames: before.altnames });
    expect(n.vfState('a0')).toEqual(pfBefore ?? expect.objectContaining({ vlan: 0, trust: false, spoofchk: true, linkState: 'auto', minTxRate: 0, maxTxRate: 0 }));
    expect(n.records()).toEqual([]);
    expect(n.cluster.leases()).toEqual([]);
    // A second DEL finds nothing to do and succeeds.
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path }));
  });
});
