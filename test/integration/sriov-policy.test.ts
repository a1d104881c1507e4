/**
 * MultiNetworkPolicy on SR-IOV VFs in kernel mode, proved with real sockets. The VFs are the fake sysfs's veth
 * stand-ins (hack/cluster/fake-sriov.ts): each VF's netdev is a veth end in the node, its other end on a
 * "wire" netns where a bridge plays the PF's embedded switch, so VFs of one PF reach each other as they do
 * through a NIC in VEB mode. The kubelet (a PodResources server) gives each pod of the netpol world (x, y, z
 * times a, b, c) one VF of `intel.com/pf_x`; `default/sriov-net` (plexus-sriov, dual stack) is their net1.
 * The policy programs must sit on the VF inside the pod, as on a bridge or macvlan interface, and the table
 * over the VFs must match the evaluator's for that network (policy.md "MultiNetworkPolicy").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeSriov } from '../../hack/cluster';
import type { World } from '../../policy/evaluate';
import { expectEventually } from '../helpers/eventually';
import { FakeKubelet, type FakePod } from '../helpers/fake-kubelet';
import {
  mixedMultiPolicies, multiNetworkPolicy, NAMED_PORTS, NETPOL_NAMES as NAMES, NETPOL_NAMESPACES as NAMESPACES, NetpolAgent, type NetpolPod, netpolPod, startPolicyCluster, applyWorld, expectTables, podFilters, addressesOf,
} from '../helpers/netpol';
import { containerId, PLEXUSCTL_BIN, rand, run, type TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(180_000);

const SRIOV = 'default/sriov-net';
const RESOURCE = 'intel.com/pf_x';
const ON_SRIOV = { 'k8s.v1.cni.cncf.io/networks': SRIOV };
const POOL = { name: 'pods', cidrs: ['10.97.0.0/16', 'fd00:97::/56'], blockSize: { v4: 26, v6: 122 } };

interface Pod extends NetpolPod {
  readonly cid: string;
  readonly netns: string;
  readonly vf: string;
  readonly cluster: { v4: string; v6: string };
}

const tag = rand(2);
/** One PF, a VF for each of the nine pods and one more for a pod that comes later. */
const VFS = Array.from({ length: 10 }, (_, i) => ({ pci: `0000:af:0${6 + (i >> 3)}.${i & 7}`, netdev: `sv${i}${tag}` }));
const PF = { pci: '0000:af:00.0', name: `svpf${tag}`, vfs: VFS };

let cluster: Awaited<ReturnType<typeof startPolicyCluster>> | undefined;
let c: TestCluster;
let sysfs: string;
let fake: FakeSriov | undefined;
let kubelet: FakeKubelet | undefined;
const pods: Pod[] = [];
const given: FakePod[] = [];

const apply = (policies: Record<string, unknown>[], extraPods: Record<string, unknown>[] = []) => applyWorld(c, ON_SRIOV, policies, extraPods);
const expectSriov = (w: World) => expectTables(pods, w, SRIOV);

const find = (ns: string, name: string) => pods.find((p) => p.pod.namespace === ns && p.pod.name === name)!;
const metrics = () => run(PLEXUSCTL_BIN, ['--socket', c.socket, 'metrics']).stdout;
/** tc on a pod's VF, inside the pod (the independent witness). */
const filters = (p: { netns: string }, dir: 'ingress' | 'egress') => podFilters(p.netns, dir);

/** A pod of the world on the next free VF: the kubelet gives it the VF, then the runtime's ADD. */
async function attach(ns: string, name: string): Promise<Pod> {
  const vf = VFS[given.length]!;
  given.push({ namespace: ns, name, containers: [{ name: 'agent', devices: { [RESOURCE]: [vf.pci] } }] });
  kubelet!.pods = [...given];
  const netns = c.makePod();
  const cid = containerId();
  const agent = await NetpolAgent.started(netns.name);
  const out = await c.cni('ADD', { containerId: cid, netns: netns.path, pod: { namespace: ns, name } });
  expect(out).toMatchObject({ code: 0 });
  run('ip', ['netns', 'exec', netns.name, 'sysctl', '-q', '-w', 'net.ipv6.conf.net1.accept_dad=0'], { allowFail: true });
  return {
    pod: { namespace: ns, name, labels: { pod: name }, ports: NAMED_PORTS.map((p) => ({ name: p.name, port: p.containerPort, protocol: p.protocol })) },
    ...addressesOf(netns.name, 'net1'), cluster: addressesOf(netns.name, 'eth0'), agent, cid, netns: netns.name, vf: vf.netdev,
  };
}

beforeAll(async () => {
  sysfs = mkdtempSync(join(tmpdir(), 'plexus-sysfs-'));
  kubelet = await FakeKubelet.start(join(sysfs, 'kubelet.sock'));
  cluster = await startPolicyCluster(POOL, 'spolicy', {
    sriov: { sysfsRoot: sysfs, emulatePf: true, podResources: { socket: kubelet.socket, checkpoint: join(sysfs, 'kubelet_internal_checkpoint') } },
  });
  c = cluster.c;
  fake = new FakeSriov(sysfs, c.node, `plxt-${c.id}-wire`);
  fake.addPf(PF);
  // The PF's embedded switch: VFs of one PF reach each other through it.
  run('ip', ['-n', fake.wire, 'link', 'add', 'esw', 'type', 'bridge']);
  run('ip', ['-n', fake.wire, 'link', 'set', 'esw', 'up']);
  for (const vf of VFS) run('ip', ['-n', fake.wire, 'link', 'set', FakeSriov.wireEnd(vf.netdev), 'master', 'esw']);
  const nad = { cniVersion: '1.0.0', name: 'sriov-net', type: 'plexus-sriov', ipam: { type: 'host-local', dataDir: join(c.dir, 'host-local-sriov'), ranges: [[{ subnet: '10.92.0.0/24' }], [{ subnet: 'fd00:92::/64' }]] } };
  await c.writeManifests('sriov.yaml', [c.nad('sriov-net', nad, 'default', { 'k8s.v1.cni.cncf.io/resourceName': RESOURCE })]);
  await apply([]);
  for (const ns of NAMESPACES) for (const name of NAMES) pods.push(await attach(ns, name));
});

afterAll(async () => {
  await cluster?.stop(pods);
  fake?.destroy();
  await kubelet?.stop();
  if (sysfs) rmSync(sysfs, { recursive: true, force: true });
});

test('no MultiNetworkPolicy names the SR-IOV network: no program on any VF, every pod reaches every other through the PF\'s switch', async () => {
  for (const p of pods) expect(filters(p, 'egress')).not.toMatch(/policy_/);
  await expectSriov(await apply([]));
});

test('policies on the SR-IOV network hook each pod\'s VF inside the pod; selectors, named ports, port ranges and ipBlocks hold on both families', async () => {
  const zc = find('z', 'c');
  const w = await apply(mixedMultiPolicies(SRIOV, [{ cidr: `${zc.v4}/32` }, { cidr: `${zc.v6}/128` }]));
  await expectEventually(() => {
    for (const p of pods) {
      expect(filters(p, 'egress')).toMatch(/pref 1 bpf[^\n]*\n[^\n]*policy_from_end/);
      expect(filters(p, 'ingress')).toMatch(/pref 1 bpf[^\n]*\n[^\n]*policy_to_endpo/);
    }
  }, { timeoutMs: 10_000 });
  await expectSriov(w);
  // The cluster network is no MultiNetworkPolicy's: x is open there.
  const xa = find('x', 'a');
  expect(await zc.agent.probe([{ ip: xa.cluster.v4, port: 81, proto: 'TCP' }])).toEqual([true]);
  // A drop on a VF is a flow of the SR-IOV network, named by pods: x's ingress refuses z/c.
  expect(await zc.agent.probe([{ ip: xa.v4, port: 81, proto: 'TCP' }])).toEqual([false]);
  await expectEventually(() => {
    const out = run(PLEXUSCTL_BIN, ['--socket', c.socket, 'observe', '--network', SRIOV, '--from-pod', 'z/c', '--to-pod', 'x/a', '--verdict', 'DROPPED', '-o', 'json']).stdout;
    expect(out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))).toContainEqual(expect.objectContaining({
      network: SRIOV, drop_reason: 'POLICY_DENIED_INGRESS', protocol: 'TCP',
      source: expect.objectContaining({ ip: zc.v4, namespace: 'z', pod_name: 'c' }), destination: expect.objectContaining({ ip: xa.v4, port: 81 }),
    }));
  }, { timeoutMs: 10_000 });
  expect(metrics()).toMatch(new RegExp(`plexus_policy_verdicts_total\\{network="${SRIOV}",verdict="dropped_ingress"\\} [1-9]`));
});

test('a pod a policy selects is isolated on its VF when its ADD returns; its DEL gives the VF back to the node with nothing of the policy on it', async () => {
  const only = multiNetworkPolicy('z', 'new-from-a', { podSelector: { matchLabels: { pod: 'new' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 80 }] }] }, SRIOV);
  await apply([only], [netpolPod('z', 'new', ON_SRIOV)]);
  const fresh = await attach('z', 'new');
  try {
    // No waiting: the ADD has returned, so the policy holds on the VF already (z/a on port 80 is the control).
    expect(await find('z', 'b').agent.probe([{ ip: fresh.v4, port: 80, proto: 'TCP' }], 1500)).toEqual([false]);
    expect(await find('z', 'a').agent.probe([{ ip: fresh.v4, port: 80, proto: 'TCP' }, { ip: fresh.v4, port: 81, proto: 'TCP' }], 1500)).toEqual([true, false]);
    expect(filters(fresh, 'ingress')).toMatch(/policy_to_endpo/);
  } finally {
    fresh.agent.stop();
    expect(await c.cni('DEL', { containerId: fresh.cid, netns: `/var/run/netns/${fresh.netns}`, pod: { namespace: 'z', name: 'new' } })).toMatchObject({ code: 0 });
  }
  // The VF is the node's again, under its own name, with no clsact and no filter left (tc in the node).
  expect(run('ip', ['-n', c.node, 'link', 'show', fresh.vf]).stdout).toContain(fresh.vf);
  expect(run('ip', ['netns', 'exec', c.node, 'tc', 'qdisc', 'show', 'dev', fresh.vf]).stdout).not.toMatch(/clsact/);
  expect(run('ip', ['netns', 'exec', c.node, 'tc', 'filter', 'show', 'dev', fresh.vf, 'ingress']).stdout).toBe('');
  await expectEventually(() => expect(metrics()).toMatch(new RegExp(`plexus_policy_endpoints ${pods.length * 2}\\b`)), { timeoutMs: 5000 });
});
