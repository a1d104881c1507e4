/**
 * plexus-sriov through bin/plexus-sriov, as a runtime runs it from a conflist, on a fake sysfs whose VF netdevs
 * are real veth ends (hack/cluster/fake-sriov.ts) and an emulated PF (sriov/pf.ts). Witnesses: `ip` in the pod
 * and the node (names, MACs, MTUs, altnames, addresses), tcpdump on the wire side (gratuitous ARP), ping
 * across the VF, the emulated PF's state and its call log (what a driver would have been asked, in order).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { daemonGet, FakeSriov, type FakeVf } from '../../hack/cluster';
import { containerId, ipJson, rand, ROOT, run, runProcess, TestCluster, type CniOutput } from '../helpers/plexus-harness';
import { FakeKubelet } from '../helpers/fake-kubelet';
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
  /** Made in start(), not here: a describe that -t skips builds its node without starting it. */
  root = '';
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
    this.root ||= mkdtempSync(join(tmpdir(), 'plexus-sysfs-'));
    this.cluster = await TestCluster.start({
      daemon: {
        ipam: { pools: [{ name: 'sriov-pool', cidrs: ['10.88.0.0/24', 'fd00:88::/64'], blockSize: { v4: 28, v6: 124 } }] },
        sriov: { sysfsRoot: this.root, emulatePf: true, macRetryDelayMs: 20, ...extra },
      },
    });
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
    if (this.root) rmSync(this.root, { recursive: true, force: true });
  }

  conf(vf: keyof SriovNode['vfs'], extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: '1.0.0', name: 'sriov-net', type: 'plexus-sriov', socketPath: this.cluster.socket, readinessTimeoutSeconds: 2, deviceID: this.vfs[vf].pci, ...extra };
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

/** tcpdump on `ifname` in `netns` until it has seen `count` packets matching `filter` (or `timeoutMs`). */
async function capture(netns: string, ifname: string, filter: string[], count = 1, timeoutMs = 6000): Promise<{ seen: Promise<string> }> {
  const child = spawn('ip', ['netns', 'exec', netns, 'tcpdump', '-l', '-n', '-i', ifname, '-c', String(count), ...filter]);
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  const seen = new Promise<string>((resolve) => {
    const t = setTimeout(() => (child.kill(), resolve(text)), timeoutMs);
    child.on('exit', () => (clearTimeout(t), resolve(text)));
  });
  await new Promise((r) => setTimeout(r, 500)); // tcpdump is listening
  return { seen };
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
    const garp = await capture(n.fake.wire, wire, ['arp', 'and', 'src', 'host', '192.168.50.10']);

    const result = expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path }));
    expect(result.interfaces).toEqual([{ name: 'net1', mac: '02:11:22:33:44:55', mtu: before.mtu, sandbox: pod.path }]);
    expect(result.ips).toEqual([{ address: '192.168.50.10/24', gateway: '192.168.50.1', interface: 0 }]);

    // The pod's view: named net1, the requested MAC, up, addressed, no altname brought along.
    const link = n.podLink(pod)!;
    expect(link).toMatchObject({ address: '02:11:22:33:44:55', mtu: before.mtu });
    expect(link.altnames ?? []).toEqual([]);
    expect(link.addr_info?.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['192.168.50.10/24']);
    expect(n.nodeLink(a0.netdev!)).toBeUndefined();
    expect(await garp.seen).toMatch(/ARP, (Request|Reply).*192\.168\.50\.10/);
    run('ip', ['netns', 'exec', pod.name, 'ping', '-c', '2', '-W', '2', '192.168.50.1']);

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

describe('plexus-sriov: modes, failures and the paths sriov-cni gets wrong', () => {
  const n = new SriovNode();
  beforeAll(() => n.start());
  afterAll(() => n.destroy());

  test('DPDK mode (VF bound to vfio-pci): PF side only, addresses reported not applied, mode recorded, first DEL restores and succeeds', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const conf = n.conf('ad', { cniVersion: '1.1.0', vlan: 42, mac: '02:00:00:00:aa:01', trust: 'on', ipam: { type: 'static', addresses: [{ address: '10.77.0.5/24' }] } });
    conf['cniVersion'] = '1.0.0';
    const result = expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path }));
    expect(result.interfaces).toEqual([{ name: 'net1', mac: '02:00:00:00:aa:01', mtu: 9000, sandbox: pod.path }]);
    expect(result.ips).toEqual([{ address: '10.77.0.5/24', interface: 0 }]);
    // Nothing entered the pod; the PF holds the settings; the record says DPDK.
    expect((ipJson(pod.name, ['link', 'show']) as PodLink[]).map((l) => l.ifname)).toEqual(['lo']);
    expect(n.vfState('ad')).toMatchObject({ vlan: 42, mac: '02:00:00:00:aa:01', trust: true });
    const rec = JSON.parse(readFileSync(join(n.cluster.stateDir, 'sriov', `${n.vfs.ad.pci}.json`), 'utf8'));
    expect(rec).toMatchObject({ mode: 'dpdk', phase: 'attached', containerId: id });
    expectOk(await n.cni('CHECK', { ...conf, prevResult: result }, { containerId: id, netns: pod.path }));
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path }));
    expect(n.vfState('ad')).toMatchObject({ vlan: 0, mac: '00:00:00:00:00:00', trust: false });
    expect(n.records()).toEqual([]);
  });

  test('CNI 1.1 with the built-in IPAM service by default (ipam without a type), dual stack: pciID in the result, both families in the pod, released on DEL', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const conf = { ...n.conf('b0'), cniVersion: '1.1.0', ipam: { pool: 'sriov-pool' } };
    // Unsolicited neighbour advertisements (ndisc_notify) reach the VF's switch port once DAD is done.
    const na = await capture(n.fake.wire, FakeSriov.wireEnd(n.vfs.b0.netdev!), ['icmp6', 'and', 'ip6[40] == 136', 'and', 'not', 'src', 'net', 'fe80::/10'], 1, 8000);
    const result = expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path }));
    expect(result.interfaces[0]).toMatchObject({ name: 'net1', pciID: n.vfs.b0.pci, sandbox: pod.path });
    const v6 = (result.ips as Array<{ address: string }>).find((c) => c.address.includes(':'))!.address.split('/')[0]!;
    expect(await na.seen).toMatch(new RegExp(`${v6.replace(/\./g, '\\.')} > ff02::1: ICMP6, neighbor advertisement, tgt is ${v6}`));
    const addrs: string[] = result.ips.map((c: { address: string }) => c.address);
    expect(addrs).toEqual([expect.stringMatching(/^10\.88\.0\.\d+\/24$/), expect.stringMatching(/^fd00:88::[0-9a-f]+\/64$/)]);
    const inPod = (n.podLink(pod)!.addr_info ?? []).filter((a) => a.local !== undefined).map((a) => `${a.local}/${a.prefixlen}`);
    expect(inPod).toEqual(expect.arrayContaining(addrs));
    expect((await daemonGet(n.cluster.socket, '/v1/ipam/pods')).body).toContain(id);
    expectOk(await n.cni('CHECK', { ...conf, prevResult: result }, { containerId: id, netns: pod.path }));
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path }));
    expect(n.nodeLink(n.vfs.b0.netdev!)).toBeDefined();
    const pods = await daemonGet(n.cluster.socket, '/v1/ipam/pods');
    expect(pods.body).not.toContain(id);
  });

  test('bad configs: code 7 naming the key, and nothing touched (PF, VF, records)', async () => {
    const pod = n.cluster.makePod();
    const callsBefore = n.calls().length;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ deviceID: undefined }, /deviceID is required/],
      [{ deviceID: '03:02.3' }, /not a PCI address/],
      [{ vlan: 4095 }, /\/vlan must be <= 4094/],
      [{ vlanQoS: 3 }, /vlanQoS needs vlan/],
      [{ vlan: 0, vlanQoS: 3 }, /vlanQoS needs a non-zero vlan/],
      [{ vlan: 0, vlanProto: '802.1ad' }, /802\.1ad needs a non-zero vlan/],
      [{ vlan: 5, vlanProto: '802.1x' }, /vlanProto must match/],
      [{ spoofchk: 'yes' }, /spoofchk must be equal to one of the allowed values/],
      [{ spoofChk: 'off' }, /sriov-cni's key is "spoofchk", not "spoofChk"/],
      [{ link_state: 'up' }, /link_state must be equal to one of the allowed values/],
      [{ mac: '02:00:00:00:00' }, /\/mac must match/],
      [{ min_tx_rate: 200, max_tx_rate: 100 }, /min_tx_rate 200 is above max_tx_rate 100/],
      [{ deviceID: '0000:ee:00.7' }, /VF 0000:ee:00\.7: no such PCI device/],
      [{ deviceID: '0000:af:00.0' }, /not a virtual function/],
    ];
    for (const [extra, message] of cases) {
      const conf = { ...n.conf('a1'), ...extra };
      const out = await n.cni('ADD', conf, { containerId: containerId(), netns: pod.path });
      expect({ extra, code: out.json?.code, msg: out.json?.msg }).toEqual({ extra, code: /no such PCI|virtual function/.test(message.source) ? 110 : 7, msg: expect.stringMatching(message) });
    }
    const macArg = await n.cni('ADD', n.conf('a1'), { containerId: containerId(), netns: pod.path, args: 'MAC=zz' });
    expect(macArg.json).toMatchObject({ code: 7, msg: expect.stringMatching(/CNI_ARGS MAC="zz"/) });
    expect(n.calls().length).toBe(callsBefore);
    expect(n.nodeLink(n.vfs.a1.netdev!)).toBeDefined();
    expect(n.records()).toEqual([]);
  });

  test('MAC precedence: runtimeConfig.mac over CNI_ARGS MAC over the config; an asynchronous driver is waited for', async () => {
    n.setPfState({ lateMacReads: 3 });
    try {
      for (const [extra, args, want] of [
        [{ mac: '02:00:00:00:00:01' }, '', '02:00:00:00:00:01'],
        [{ mac: '02:00:00:00:00:01' }, 'IgnoreUnknown=1;MAC=02:00:00:00:00:02', '02:00:00:00:00:02'],
        [{ mac: '02:00:00:00:00:01', runtimeConfig: { mac: '02:00:00:00:00:03' } }, 'MAC=02:00:00:00:00:02', '02:00:00:00:00:03'],
      ] as Array<[Record<string, unknown>, string, string]>) {
        const pod = n.cluster.makePod();
        const id = containerId();
        const conf = n.conf('a1', extra);
        expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path, args }));
        expect(n.podLink(pod)!.address).toBe(want);
        expect(n.vfState('a1')!.mac).toBe(want);
        expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path, args }));
      }
    } finally {
      n.setPfState({ lateMacReads: 0 });
    }
  });

  test('a setting the driver refuses rolls back everything applied before it: PF, netdev, addresses, record', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const before = n.nodeLink(n.vfs.a1.netdev!)!;
    const pfBefore = n.vfState('a1');
    n.setPfState({ unsupported: ['linkState'] });
    try {
      const conf = n.conf('a1', { vlan: 7, mac: '02:00:00:00:00:77', trust: 'on', link_state: 'disable', ipam: n.cluster.hostLocal('192.168.51.0/24') });
      const out = await n.cni('ADD', conf, { containerId: id, netns: pod.path });
      expect(out.json).toMatchObject({ code: 111, msg: expect.stringMatching(/refused linkState for VF 1 .*EOPNOTSUPP/) });
    } finally {
      n.setPfState({ unsupported: [] });
    }
    expect(n.vfState('a1')).toEqual(pfBefore);
    const after = n.nodeLink(n.vfs.a1.netdev!)!;
    expect({ mac: after.address, mtu: after.mtu }).toEqual({ mac: before.address, mtu: before.mtu });
    expect(n.podLink(pod)).toBeUndefined();
    expect(n.records()).toEqual([]);
    expect(n.cluster.leases()).toEqual([]);
  });

  test('two pods racing for one VF: one gets it, the other is refused with 110 naming the holder; the loser changed nothing', async () => {
    const [p1, p2] = [n.cluster.makePod(), n.cluster.makePod()];
    const [id1, id2] = [containerId(), containerId()];
    const conf = n.conf('a1', { vlan: 9 });
    const callsBefore = n.calls().length;
    const outs = await Promise.all([n.cni('ADD', conf, { containerId: id1, netns: p1.path }), n.cni('ADD', conf, { containerId: id2, netns: p2.path })]);
    const winner = outs.findIndex((o) => o.code === 0);
    expect(winner).toBeGreaterThanOrEqual(0);
    const loser = outs[1 - winner]!;
    expect(loser.json).toMatchObject({ code: 110, msg: expect.stringMatching(/already allocated to container [0-9a-f]{12}, whose netns .* still exists/) });
    const [wid, wpod] = winner === 0 ? [id1, p1] : [id2, p2];
    const [lid, lpod] = winner === 0 ? [id2, p2] : [id1, p1];
    // The loser was refused before touching anything: the PF was asked once (the winner's VLAN), its pod has no VF.
    expect(n.calls().slice(callsBefore).map((c) => `${c['vf']}:${c['kind']}`)).toEqual(['1:vlan']);
    expect(n.podLink(lpod)).toBeUndefined();
    // The loser's DEL (the runtime cleans up its failed ADD) must not touch the winner's VF.
    expectOk(await n.cni('DEL', conf, { containerId: lid, netns: lpod.path }));
    expect(n.podLink(wpod)).toBeDefined();
    expect(n.vfState('a1')!.vlan).toBe(9);
    expectOk(await n.cni('DEL', conf, { containerId: wid, netns: wpod.path }));
    expect(n.nodeLink(n.vfs.a1.netdev!)).toBeDefined();
    expect(n.vfState('a1')!.vlan).toBe(0);
  });

  test('DEL after the pod netns was deleted: the VF, returned to the host under its pod name, is found by PCI address and restored', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const { a0 } = n.vfs;
    const before = n.nodeLink(a0.netdev!)!;
    const conf = n.conf('a0', { mac: '02:00:00:00:00:a0', vlan: 11 });
    expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path, ifName: 'data0' }));
    n.fake.returnToHost(a0, pod.name, 'data0');
    run('ip', ['netns', 'del', pod.name]);
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path, ifName: 'data0' }));
    const after = n.nodeLink(a0.netdev!)!;
    expect({ mac: after.address, altnames: after.altnames }).toEqual({ mac: before.address, altnames: before.altnames });
    expect(n.nodeLink('data0')).toBeUndefined();
    expect(n.vfState('a0')!.vlan).toBe(0);
    expect(n.records()).toEqual([]);
    // The fake sysfs follows the name back, as the kernel's would.
    n.fake.returnToHost(a0, n.cluster.node, a0.netdev!);
  });

  // The pod names the VF as the host did, so the fake sysfs stays true when the kernel brings it home (a real
  // sysfs follows renames; the fake's directory cannot, see the DEL-after-netns test for the renamed case).
  test('a stale record (its netns gone without a DEL) is repaired and cleared by the next ADD of that VF', async () => {
    const { b0 } = n.vfs;
    const p1 = n.cluster.makePod();
    const id1 = containerId();
    expectOk(await n.cni('ADD', n.conf('b0', { vlan: 300 }), { containerId: id1, netns: p1.path, ifName: b0.netdev! }));
    n.fake.returnToHost(b0, p1.name, b0.netdev!);
    run('ip', ['netns', 'del', p1.name]);
    const p2 = n.cluster.makePod();
    const id2 = containerId();
    expectOk(await n.cni('ADD', n.conf('b0', { trust: 'on' }), { containerId: id2, netns: p2.path }));
    // The first pod's VLAN was restored before the VF was handed out again.
    expect(n.vfState('b0')).toMatchObject({ vlan: 0, trust: true });
    expect(n.podLink(p2)).toBeDefined();
    expectOk(await n.cni('DEL', n.conf('b0', { trust: 'on' }), { containerId: id2, netns: p2.path }));
    expect(n.nodeLink(b0.netdev!)).toBeDefined();
    expect(n.vfState('b0')).toMatchObject({ vlan: 0, trust: false });
  });

  test('a VF that vanished (VFs disabled) while the pod held it: DEL succeeds, releases the addresses and forgets the VF', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const conf = n.conf('a1', { ipam: n.cluster.hostLocal('192.168.52.0/24') });
    expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path }));
    expect(n.cluster.leases()).toHaveLength(1);
    const vf = n.vfs.a1;
    n.fake.remove({ ...vf, netdev: 'net1' }, pod.name);
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path }));
    expect(n.cluster.leases()).toEqual([]);
    expect(n.records()).toEqual([]);
  });
});

describe('plexus-sriov across daemon restarts, CHECK and GC', () => {
  const n = new SriovNode();
  beforeAll(() => n.start());
  afterAll(() => n.destroy());

  test('CHECK passes on what ADD left, and fails with 108 naming the MAC changed in the pod and the VLAN changed on the PF', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const conf = n.conf('a0', { vlan: 20, mac: '02:00:00:00:c0:01' });
    const result = expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path }));
    expectOk(await n.cni('CHECK', { ...conf, prevResult: result }, { containerId: id, netns: pod.path }));
    run('ip', ['-n', pod.name, 'link', 'set', 'net1', 'address', '02:00:00:00:c0:99']);
    const vfs = n.pfState().pfs;
    vfs[n.vfs.a0.pfName]![0]!.vlan = 21;
    n.setPfState({ pfs: vfs });
    const out = await n.cni('CHECK', { ...conf, prevResult: result }, { containerId: id, netns: pod.path });
    expect(out.json).toMatchObject({ code: 108, msg: expect.stringMatching(/VLAN is 21, expected 20.*MAC is 02:00:00:00:c0:99, expected 02:00:00:00:c0:01/) });
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path }));
    expect(n.vfState('a0')!.vlan).toBe(0);
    const unknown = await n.cni('CHECK', { ...conf, prevResult: result }, { containerId: id, netns: pod.path });
    expect(unknown.json).toMatchObject({ code: 108, msg: expect.stringMatching(/no VF attached/) });
  });

  test('a daemon restart between ADD and DEL: DEL restores from the record', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const before = n.nodeLink(n.vfs.a1.netdev!)!;
    const conf = n.conf('a1', { vlan: 30, mac: '02:00:00:00:d0:01', spoofchk: 'off' });
    expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path, ifName: 'eth1' }));
    await n.cluster.restartDaemon();
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path, ifName: 'eth1' }));
    expect(n.nodeLink(n.vfs.a1.netdev!)!.address).toBe(before.address);
    expect(n.vfState('a1')).toMatchObject({ vlan: 0, spoofchk: true });
  });

  test('SIGKILL mid-ADD (the PF applying the MAC): at start the daemon restores the VF from the record and clears it', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const pfBefore = n.vfState('b0') ?? undefined;
    n.setPfState({ lateMacReads: 1_000_000 });
    const conf = n.conf('b0', { vlan: 55, mac: '02:00:00:00:e0:01', trust: 'on' });
    const add = n.cni('ADD', conf, { containerId: id, netns: pod.path });
    const calls = n.calls().length;
    for (let i = 0; i < 200 && !n.calls().slice(calls).some((c) => c['kind'] === 'mac'); i++) await new Promise((r) => setTimeout(r, 25));
    expect(n.vfState('b0')!.vlan).toBe(55);
    await n.cluster.stopDaemon('SIGKILL');
    expect((await add).code).not.toBe(0);
    expect(n.records()).toEqual([`${n.vfs.b0.pci}.json`]);
    n.setPfState({ lateMacReads: 0 });
    await n.cluster.startDaemon();
    expect(n.records()).toEqual([]);
    expect(n.vfState('b0')).toMatchObject({ vlan: pfBefore?.vlan ?? 0, trust: pfBefore?.trust ?? false, mac: pfBefore?.mac ?? '00:00:00:00:00:00' });
    expect(n.nodeLink(n.vfs.b0.netdev!)).toBeDefined();
    expect(n.cluster.log()).toMatch(/repairing a VF left half-configured/);
  });

  test('GC: VFs of this network held by attachments the runtime no longer lists are restored; listed ones are kept', async () => {
    const [p1, p2] = [n.cluster.makePod(), n.cluster.makePod()];
    const [id1, id2] = [containerId(), containerId()];
    const c1 = { ...n.conf('a0', { vlan: 61 }), cniVersion: '1.1.0' };
    const c2 = { ...n.conf('b0', { vlan: 62 }), cniVersion: '1.1.0' };
    expectOk(await n.cni('ADD', c1, { containerId: id1, netns: p1.path }));
    expectOk(await n.cni('ADD', c2, { containerId: id2, netns: p2.path }));
    const gc = { ...n.conf('a0'), cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: id1, ifname: 'net1' }] };
    delete (gc as Record<string, unknown>)['deviceID'];
    expectOk(await n.cni('GC', gc, { containerId: '' }));
    expect(n.vfState('b0')!.vlan).toBe(0);
    expect(n.nodeLink(n.vfs.b0.netdev!)).toBeDefined();
    expect(n.podLink(p2)).toBeUndefined();
    expect(n.vfState('a0')!.vlan).toBe(61);
    expect(n.podLink(p1)).toBeDefined();
    expect(n.records()).toEqual([`${n.vfs.a0.pci}.json`]);
    expectOk(await n.cni('DEL', c1, { containerId: id1, netns: p1.path }));
  });
});

describe('SR-IOV networks from a pod annotation: devices from the kubelet, device information end to end', () => {
  const n = new SriovNode();
  let kubelet: FakeKubelet;
  const PF_A = 'intel.com/pf_a';
  const PF_B = 'intel.com/pf_b';

  beforeAll(async () => {
    n.root = mkdtempSync(join(tmpdir(), 'plexus-sysfs-'));
    kubelet = await FakeKubelet.start(join(n.root, 'kubelet.sock'));
    await n.start({ podResources: { socket: kubelet.socket, checkpoint: join(n.root, 'kubelet_internal_checkpoint') }, serveSriovType: true });
    const sriovNad = (name: string, resource: string, extra: Record<string, unknown>) =>
      n.cluster.nad(name, { cniVersion: '1.0.0', name, type: 'plexus-sriov', ...extra }, 'default', { 'k8s.v1.cni.cncf.io/resourceName': resource });
    await n.cluster.writeManifests('sriov-nads.yaml', [
      sriovNad('sriov-a', PF_A, { vlan: 100, ipam: n.cluster.hostLocal('192.168.60.0/24') }),
      // As the sriov-network-operator renders it (sriov-cni's type), served by plexus-sriov (serveSriovType).
      sriovNad('sriov-b', PF_B, { type: 'sriov', trust: 'on', spoofchk: 'off' }),
    ]);
  });
  afterAll(async () => {
    await n.destroy();
    await kubelet.stop();
  });

  const status = (name: string) => JSON.parse(run(join(ROOT, 'bin/plexusctl'), ['--socket', n.cluster.socket, 'status', `default/${name}`]).stdout);

  test('two networks of one resource and one of another: VFs handed out in sorted order, configured per NAD, device-info in network-status; DEL restores all', async () => {
    const { a0, a1, b0 } = n.vfs;
    // The device plugin wrote a device-info file for one of the VFs only.
    const dpFile = join(n.cluster.dir, 'devinfo', 'dp', `intel.com-pf_a-${a0.pci}-device.json`);
    mkdirSync(dirname(dpFile), { recursive: true });
    writeFileSync(dpFile, JSON.stringify({ type: 'pci', version: '1.0.0', pci: { 'pci-address': a0.pci } }));
    kubelet.pods = [{ namespace: 'default', name: 'cnf', containers: [{ name: 'app', devices: { [PF_A]: [a1.pci, a0.pci], [PF_B]: [b0.pci] } }] }];
    await n.cluster.writeManifests('pod-cnf.yaml', [n.cluster.podManifest('cnf', 'sriov-a, sriov-b, sriov-a')]);
    const pod = n.cluster.makePod();
    const id = containerId();
    const out = await n.cluster.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'cnf', uid: 'uid-cnf' } });
    expectOk(out);
    // Annotation order: sriov-a takes the first PF A VF (sorted: a0), sriov-b takes b0, the second sriov-a a1.
    expect(n.podLink(pod, 'net1')).toBeDefined();
    expect(n.podLink(pod, 'net2')).toBeDefined();
    expect(n.podLink(pod, 'net3')).toBeDefined();
    expect(n.vfState('a0')!.vlan).toBe(100);
    expect(n.vfState('a1')!.vlan).toBe(100);
    expect(n.vfState('b0')).toMatchObject({ trust: true, spoofchk: false, vlan: 0 });
    const st = status('cnf');
    expect(st.map((s: { name: string; interface: string }) => [s.name, s.interface])).toEqual([
      ['cluster', 'eth0'], ['default/sriov-a', 'net1'], ['default/sriov-b', 'net2'], ['default/sriov-a', 'net3'],
    ]);
    expect(st[1]['device-info']).toEqual({ type: 'pci', version: '1.0.0', pci: { 'pci-address': a0.pci } });
    expect(st[2]['device-info']).toEqual({ type: 'pci', version: '1.1.0', pci: { 'pci-address': b0.pci, 'pf-pci-address': '0000:b1:00.0' } });
    expect(st[3]['device-info']).toEqual({ type: 'pci', version: '1.1.0', pci: { 'pci-address': a1.pci, 'pf-pci-address': '0000:af:00.0' } });
    expect(st[1].ips).toEqual([expect.stringMatching(/^192\.168\.60\./)]);
    expect(kubelet.calls.Get).toBe(1);

    expectOk(await n.cluster.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'cnf', uid: 'uid-cnf' } }));
    for (const vf of [a0, a1, b0]) expect(n.nodeLink(vf.netdev!)).toBeDefined();
    expect(n.vfState('a0')!.vlan).toBe(0);
    expect(n.vfState('b0')).toMatchObject({ trust: false, spoofchk: true });
    expect(readdirSync(join(n.cluster.dir, 'devinfo', 'cni'))).toEqual([]);
    expect(n.records()).toEqual([]);
  });

  test('more attachments of a resource than the pod was given: 110 naming the resource, nothing attached', async () => {
    kubelet.pods = [{ namespace: 'default', name: 'greedy', containers: [{ name: 'app', devices: { [PF_A]: [n.vfs.a0.pci] } }] }];
    await n.cluster.writeManifests('pod-greedy.yaml', [n.cluster.podManifest('greedy', 'sriov-a, sriov-a')]);
    const pod = n.cluster.makePod();
    const out = await n.cluster.cni('ADD', { containerId: containerId(), netns: pod.path, pod: { name: 'greedy' } });
    expect(out.json).toMatchObject({ code: 110, msg: expect.stringMatching(/needs a device of resource intel\.com\/pf_a, but the pod was given 1 and its networks ask for more/) });
    expect((ipJson(pod.name, ['link', 'show']) as PodLink[]).map((l) => l.ifname)).toEqual(['lo']);
    expect(n.records()).toEqual([]);
  });

  test('kubelet API down: the checkpoint (matched by pod UID) gives the devices', async () => {
    await kubelet.stop();
    writeFileSync(join(n.root, 'kubelet_internal_checkpoint'), JSON.stringify({
      Data: { PodDeviceEntries: [{ PodUID: 'uid-ck', ContainerName: 'app', ResourceName: PF_B, DeviceIDs: { '0': [n.vfs.b0.pci] }, AllocResp: '' }], RegisteredDevices: {} },
      Checksum: 0,
    }));
    await n.cluster.writeManifests('pod-ck.yaml', [n.cluster.podManifest('ck', 'sriov-b')]);
    const pod = n.cluster.makePod();
    const id = containerId();
    expectOk(await n.cluster.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'ck', uid: 'uid-ck' } }));
    expect(n.podLink(pod, 'net1')).toBeDefined();
    expect(status('ck')[1]['device-info'].pci['pci-address']).toBe(n.vfs.b0.pci);
    expectOk(await n.cluster.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'ck', uid: 'uid-ck' } }));
    expect(n.nodeLink(n.vfs.b0.netdev!)).toBeDefined();
  });
});

describe('plexus-sriov: what the review of the first version found', () => {
  const n = new SriovNode();
  beforeAll(() => n.start());
  afterAll(() => n.destroy());

  test('the pod already has an interface of that name: 103 before the VF moves; the VF stays in the host, the PF as it was', async () => {
    const pod = n.cluster.makePod();
    run('ip', ['-n', pod.name, 'link', 'add', 'net1', 'type', 'veth', 'peer', 'name', 'net1p']);
    const pfBefore = n.vfState('a1');
    const out = await n.cni('ADD', n.conf('a1', { vlan: 5, trust: 'on' }), { containerId: containerId(), netns: pod.path });
    expect(out.json).toMatchObject({ code: 103, msg: expect.stringMatching(/already has an interface named net1/) });
    expect(n.nodeLink(n.vfs.a1.netdev!)).toBeDefined();
    expect(n.vfState('a1') ?? pfBefore).toEqual(pfBefore ?? expect.objectContaining({ vlan: 0, trust: false }));
    expect(n.records()).toEqual([]);
  });

  test('a restore the driver refuses does not fail DEL: the VF is kept as released, DEL again and the next ADD repair it', async () => {
    const [p1, p2] = [n.cluster.makePod(), n.cluster.makePod()];
    const id1 = containerId();
    const conf = n.conf('a0', { trust: 'on', vlan: 12 });
    expectOk(await n.cni('ADD', conf, { containerId: id1, netns: p1.path }));
    n.setPfState({ failing: ['trust'] });
    try {
      expectOk(await n.cni('DEL', conf, { containerId: id1, netns: p1.path }));
      const rec = JSON.parse(readFileSync(join(n.cluster.stateDir, 'sriov', `${n.vfs.a0.pci}.json`), 'utf8'));
      expect(rec).toMatchObject({ phase: 'released', releaseProblems: [expect.stringMatching(/refused trust for VF 0 .*EIO/)] });
      expect(n.vfState('a0')).toMatchObject({ vlan: 0, trust: true }); // the VLAN went back; trust could not
      // Not handed out while it is not clean.
      n.setPfState({ failing: ['trust'] });
      const refused = await n.cni('ADD', n.conf('a0'), { containerId: containerId(), netns: p2.path });
      expect(refused.json).toMatchObject({ code: 110, msg: expect.stringMatching(/could not be restored from its earlier use/) });
    } finally {
      n.setPfState({ failing: [] });
    }
    // The runtime's DEL retried: now it restores, and the record goes.
    expectOk(await n.cni('DEL', conf, { containerId: id1, netns: p1.path }));
    expect(n.vfState('a0')).toMatchObject({ trust: false });
    expect(n.records()).toEqual([]);
    const id2 = containerId();
    expectOk(await n.cni('ADD', n.conf('a0'), { containerId: id2, netns: p2.path }));
    expectOk(await n.cni('DEL', n.conf('a0'), { containerId: id2, netns: p2.path }));
  });

  test('CHECK compares addresses as addresses: an IPv6 prevResult in another spelling passes', async () => {
    const pod = n.cluster.makePod();
    const id = containerId();
    const conf = { ...n.conf('b0'), cniVersion: '1.1.0', ipam: { pool: 'sriov-pool' } };
    const result = expectOk(await n.cni('ADD', conf, { containerId: id, netns: pod.path }));
    const v6 = result.ips.find((c: { address: string }) => c.address.includes(':'));
    const expanded = (addr: string) => {
      const [ip, len] = addr.split('/');
      const [head, tail] = ip!.split('::');
      const h = head ? head.split(':') : [];
      const t = tail ? tail.split(':') : [];
      return `${[...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => g.padStart(4, '0').toUpperCase()).join(':')}/${len}`;
    };
    const prev = { ...result, ips: [...result.ips.filter((c: { address: string }) => c !== v6), { ...v6, address: expanded(v6.address) }] };
    expectOk(await n.cni('CHECK', { ...conf, prevResult: prev }, { containerId: id, netns: pod.path }));
    expectOk(await n.cni('DEL', conf, { containerId: id, netns: pod.path }));
  });
});
