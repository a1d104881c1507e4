/**
 * MultiNetworkPolicy enforced on a secondary network's pod interfaces, proved with real sockets: namespaces x,
 * y, z with pods a, b, c on the cluster network (plexus-routed), on `default/blue`, a secondary network of
 * Debian's bridge plugin (each pod's net1, a veth into a bridge of the node), and on `default/red`, Debian's
 * macvlan in bridge mode on a veth of the node (net2). The policy programs sit inside
 * each pod on net1 (tc egress: out of the pod; tc ingress: into it) once a MultiNetworkPolicy names blue.
 * After each change every pair is probed on blue's addresses over IPv4 and IPv6 and must match the reference
 * evaluator for that network; NetworkPolicy and MultiNetworkPolicy never reach each other's network.
 */
import { join } from 'node:path';
import type { World } from '../../policy/evaluate';
import { expectEventually } from '../helpers/eventually';
import {
  arrivals, converge, expectedTable, mixedMultiPolicies, multiNetworkPolicy, NAMED_PORTS, sendFrom, NETPOL_NAMES as NAMES, NETPOL_NAMESPACES as NAMESPACES, NetpolAgent, type NetpolPod, netpolPod, networkPolicy as np, startPolicyCluster, applyWorld, expectTables, podFilters, addressesOf,
} from '../helpers/netpol';
import { containerId, PLEXUSCTL_BIN, rand, run, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(180_000);

const BLUE = 'default/blue';
const POOL = { name: 'pods', cidrs: ['10.95.0.0/16', 'fd00:95::/56'], blockSize: { v4: 26, v6: 122 } };

interface Pod extends NetpolPod {
  readonly cid: string;
  readonly netns: string;
  /** Its addresses on the cluster network and on red (v4, v6 are blue's). */
  readonly cluster: { v4: string; v6: string };
  readonly red: { v4: string; v6: string };
}

let cluster: Awaited<ReturnType<typeof startPolicyCluster>> | undefined;
let c: TestCluster;
let pinDir: string;
const pods: Pod[] = [];

const RED = 'default/red';
const ON_BLUE = { 'k8s.v1.cni.cncf.io/networks': `${BLUE}, ${RED}` };
const mnp = (ns: string, name: string, spec: Record<string, unknown>, networks = BLUE) => multiNetworkPolicy(ns, name, spec, networks);

const apply = (policies: Record<string, unknown>[], extraPods: Record<string, unknown>[] = []) => applyWorld(c, ON_BLUE, policies, extraPods);

/** The table on blue (every pair, both families) is the evaluator's for blue. */
const expectBlue = (w: World) => expectTables(pods, w, BLUE);

/** The table on the cluster network (IPv4) is the evaluator's for it. */
async function expectCluster(w: World): Promise<void> {
  const onCluster = pods.map((p) => ({ ...p, v4: p.cluster.v4, v6: p.cluster.v6 }));
  expect({ wrong: await converge(onCluster, 4, expectedTable(w, onCluster, 4)) }).toEqual({ wrong: [] });
}

const find = (ns: string, name: string) => pods.find((p) => p.pod.namespace === ns && p.pod.name === name)!;
const metrics = () => run(PLEXUSCTL_BIN, ['--socket', c.socket, 'metrics']).stdout;
/** The tc filters on a pod's net1 (inside the pod: the independent witness). */
const filters = (p: { netns: string }, dir: 'ingress' | 'egress', dev = 'net1') => podFilters(p.netns, dir, dev);

async function attach(ns: string, name: string): Promise<Pod> {
  const netns = c.makePod();
  const cid = containerId();
  // The agent listens before the ADD (on any address): a probe right after it meets the policy, not a closed port.
  const agent = await NetpolAgent.started(netns.name);
  const out = await c.cni('ADD', { containerId: cid, netns: netns.path, pod: { namespace: ns, name } });
  expect(out).toMatchObject({ code: 0 });
  // IPv6 on the bridge: wait out duplicate address detection, so probes test policy, not DAD.
  for (const dev of ['net1', 'net2']) run('ip', ['netns', 'exec', netns.name, 'sysctl', '-q', '-w', `net.ipv6.conf.${dev}.accept_dad=0`], { allowFail: true });
  return {
    pod: { namespace: ns, name, labels: { pod: name }, ports: NAMED_PORTS.map((p) => ({ name: p.name, port: p.containerPort, protocol: p.protocol })) },
    ...addressesOf(netns.name, 'net1'), cluster: addressesOf(netns.name, 'eth0'), red: addressesOf(netns.name, 'net2'),
    agent, cid, netns: netns.name,
  };
}

beforeAll(async () => {
  cluster = await startPolicyCluster(POOL, 'mpolicy');
  ({ c, pinDir } = cluster);
  const blue = {
    cniVersion: '1.0.0', name: 'blue', type: 'bridge', bridge: `plxb${rand(3)}`,
    ipam: { type: 'host-local', dataDir: join(c.dir, 'host-local-blue'), ranges: [[{ subnet: '10.94.0.0/24' }], [{ subnet: 'fd00:94::/64' }]] },
  };
  // red: macvlan (bridge mode) on a veth of the node, the pods' net2.
  const master = `plxm${rand(3)}`;
  c.inNode('ip', ['link', 'add', master, 'type', 'veth', 'peer', 'name', `${master}p`]);
  for (const dev of [master, `${master}p`]) c.inNode('ip', ['link', 'set', dev, 'up']);
  const red = {
    cniVersion: '1.0.0', name: 'red', type: 'macvlan', master, mode: 'bridge',
    ipam: { type: 'host-local', dataDir: join(c.dir, 'host-local-red'), ranges: [[{ subnet: '10.93.0.0/24' }], [{ subnet: 'fd00:93::/64' }]] },
  };
  await c.writeManifests('blue.yaml', [c.nad('blue', blue), c.nad('red', red)]);
  await apply([]);
  for (const ns of NAMESPACES) for (const name of NAMES) pods.push(await attach(ns, name));
});

afterAll(async () => {
  await cluster?.stop(pods);
});

test('no MultiNetworkPolicy names blue: nothing sits on net1, every pod reaches every other on blue', async () => {
  expect(filters(find('x', 'a'), 'egress')).not.toMatch(/policy_/);
  await expectBlue(await apply([]));
});

test('a default deny on blue in x hooks every net1 (inside the pod, ahead of nothing else) and isolates x on blue only', async () => {
  const w = await apply([mnp('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })]);
  await expectEventually(() => {
    for (const p of pods) {
      expect(filters(p, 'egress')).toMatch(/pref 1 bpf[^\n]*\n[^\n]*policy_from_end/);
      expect(filters(p, 'ingress')).toMatch(/pref 1 bpf[^\n]*\n[^\n]*policy_to_endpo/);
    }
  }, { timeoutMs: 10_000 });
  await expectBlue(w);
  await expectCluster(w); // a MultiNetworkPolicy governs only the networks it names
  // x's own connections out on blue: their replies pass (NP4).
  expect(await find('x', 'a').agent.probe([{ ip: find('y', 'b').v4, port: 80, proto: 'TCP' }])).toEqual([true]);
});

test('selectors, named ports and ipBlocks of blue addresses resolve on blue: ingress and egress rules, IPv4 and IPv6', async () => {
  const zc = find('z', 'c');
  const w = await apply(mixedMultiPolicies(BLUE, [{ cidr: `${zc.v4}/32` }, { cidr: `${zc.v6}/128` }]));
  await expectBlue(w);
});

test('a NetworkPolicy never reaches blue, and a MultiNetworkPolicy for another network never reaches blue either', async () => {
  const w = await apply([
    np('x', 'closed', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    mnp('y', 'elsewhere', { podSelector: {}, policyTypes: ['Ingress'] }, 'default/green'),
  ]);
  await expectBlue(w); // all open on blue
  await expectCluster(w); // x closed on the cluster network
});

test('a pod on blue that a MultiNetworkPolicy selects is isolated on blue when its ADD returns', async () => {
  const only = mnp('z', 'new-from-a', { podSelector: { matchLabels: { pod: 'new' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 80 }] }] });
  await apply([only], [netpolPod('z', 'new', ON_BLUE)]);
  const fresh = await attach('z', 'new');
  try {
    // No waiting: the ADD has returned, so the policy must already hold (z/a is the control: blue works).
    expect(await find('z', 'b').agent.probe([{ ip: fresh.v4, port: 80, proto: 'TCP' }], 1500)).toEqual([false]);
    expect(await find('z', 'a').agent.probe([{ ip: fresh.v4, port: 80, proto: 'TCP' }, { ip: fresh.v4, port: 81, proto: 'TCP' }], 1500)).toEqual([true, false]);
  } finally {
    fresh.agent.stop();
    expect(await c.cni('DEL', { containerId: fresh.cid, netns: `/var/run/netns/${fresh.netns}`, pod: { namespace: 'z', name: 'new' } })).toMatchObject({ code: 0 });
  }
  await expectEventually(() => expect(metrics()).toMatch(new RegExp(`plexus_policy_endpoints ${pods.length * 2}\\b`)), { timeoutMs: 5000 });
});

test('a pod on blue through two interfaces is isolated on both (one endpoint, all its addresses)', async () => {
  const twice = mnp('z', 'twice-in', { podSelector: { matchLabels: { pod: 'twice' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 81 }] }] });
  await apply([twice], [netpolPod('z', 'twice', { 'k8s.v1.cni.cncf.io/networks': `${BLUE}, ${BLUE}` })]);
  const netns = c.makePod();
  const cid = containerId();
  const agent = await NetpolAgent.started(netns.name);
  expect(await c.cni('ADD', { containerId: cid, netns: netns.path, pod: { namespace: 'z', name: 'twice' } })).toMatchObject({ code: 0 });
  try {
    const [first, second] = [addressesOf(netns.name, 'net1').v4, addressesOf(netns.name, 'net2').v4];
    expect(await agent.probe([{ ip: find('z', 'a').v4, port: 80, proto: 'TCP' }], 1500)).toEqual([true]); // its agent serves; blue works
    const za = find('z', 'a').agent;
    expect(await za.probe([first, second].flatMap((ip) => [{ ip, port: 81, proto: 'TCP' as const }, { ip, port: 80, proto: 'TCP' as const }]), 1500)).toEqual([true, false, true, false]);
  } finally {
    agent.stop();
    expect(await c.cni('DEL', { containerId: cid, netns: netns.path, pod: { namespace: 'z', name: 'twice' } })).toMatchObject({ code: 0 });
  }
});

test('a pod sending on blue with another pod\'s blue address is dropped as spoofed at its own interface, so it cannot borrow what that pod is allowed', async () => {
  const [xa, xb, zc] = [find('x', 'a'), find('x', 'b'), find('z', 'c')];
  await apply([mnp('x', 'a-from-xb', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'UDP', port: 80 }] }] })]);
  await expectEventually(() => expect(filters(zc, 'egress')).toMatch(/policy_from_end/), { timeoutMs: 10_000 });
  expect(await arrivals(xa.netns, 'net1', xb.v4, () => sendFrom(xb.netns, xb.v4, xa.v4))).toBe(3); // x/b itself: allowed; the witness sees it
  expect(await arrivals(xa.netns, 'net1', xb.v4, () => sendFrom(zc.netns, xb.v4, xa.v4))).toBe(0); // z/c claiming x/b's address
  await expectEventually(() => {
    const flows = run(PLEXUSCTL_BIN, ['--socket', c.socket, 'observe', '--network', BLUE, '--verdict', 'DROPPED', '-o', 'json']).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(flows).toContainEqual(expect.objectContaining({ drop_reason: 'INVALID_SOURCE_IP', source: expect.objectContaining({ ip: xb.v4, pod_name: 'b' }) }));
  }, { timeoutMs: 10_000 });
  await expectEventually(() => expect(metrics()).toMatch(/plexus_policy_verdicts_total\{network="default\/blue",verdict="dropped_spoofed"\} [1-9]/), { timeoutMs: 10_000 });
});

test('enforcement on blue goes on while plexusd is down and after it restarts; the restarted daemon follows changes', async () => {
  const w = await apply([mnp('y', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })]);
  await expectBlue(w);
  await c.stopDaemon('SIGKILL');
  expect(await converge(pods, 4, expectedTable(w, pods, 4, BLUE), 0)).toEqual([]);
  await c.startDaemon();
  expect(await converge(pods, 6, expectedTable(w, pods, 6, BLUE), 0)).toEqual([]);
  // It knows blue's interfaces again: a change after the restart is enforced on them, and no old rule is left.
  await expectBlue(await apply([mnp('z', 'deny-in', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Ingress'] })]));
  await expectBlue(await apply([]));
  expect(JSON.parse(run('bpftool', ['-j', 'map', 'dump', 'pinned', join(pinDir, 'policy', 'pol_rules')]).stdout)).toEqual([]);
});

test('plexusctl observe names blue\'s flows by network and pods; the kernel counts them under blue', async () => {
  await apply([mnp('y', 'c-closed', { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Ingress'] })]);
  const [xa, yc] = [find('x', 'a'), find('y', 'c')];
  await expectEventually(async () => expect(await xa.agent.probe([{ ip: yc.v4, port: 81, proto: 'TCP' }])).toEqual([false]), { timeoutMs: 15_000 });
  await expectEventually(() => {
    const out = run(PLEXUSCTL_BIN, ['--socket', c.socket, 'observe', '--network', BLUE, '--to-pod', 'y/c', '--verdict', 'DROPPED', '-o', 'json']);
    const flows = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(flows.at(-1)).toMatchObject({
      network: BLUE, verdict: 'DROPPED', drop_reason: 'POLICY_DENIED_INGRESS', protocol: 'TCP',
      source: { ip: xa.v4, namespace: 'x', pod_name: 'a' }, destination: { ip: yc.v4, port: 81, namespace: 'y', pod_name: 'c' },
    });
  }, { timeoutMs: 5000 });
  expect(metrics()).toMatch(new RegExp(`plexus_policy_verdicts_total\\{network="${BLUE}",verdict="dropped_ingress"\\} [1-9]`));
});

test('macvlan (red): the programs sit on each pod\'s macvlan interface too; red and blue are each their own policies\' only', async () => {
  const onRed = pods.map((p) => ({ ...p, v4: p.red.v4, v6: p.red.v6 }));
  const w = await apply([
    mnp('y', 'red-in', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } }, podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 'serve-81-tcp' }, { protocol: 'UDP', port: 80 }] }] }, RED),
  ]);
  for (const family of [4, 6] as const) {
    const wrong = await converge(onRed, family, expectedTable(w, onRed, family, RED));
    if (wrong.length) console.log(wrong.slice(0, 5), run(PLEXUSCTL_BIN, ['--socket', c.socket, 'observe', '--network', RED, '--last', '40']).stdout, pods.map((p) => `${p.pod.namespace}/${p.pod.name} ${p.red.v4}`).join(' '));
    expect({ family, wrong }).toEqual({ family, wrong: [] });
  }
  const tc = filters(find('y', 'a'), 'ingress', 'net2');
  expect(tc).toMatch(/pref 1 bpf[^\n]*\n[^\n]*policy_to_endpo/);
  await expectBlue(w); // blue: no policy names it, all open
  await apply([]);
});

