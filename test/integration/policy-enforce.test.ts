/**
 * NetworkPolicy enforced on the routed datapath, proved with real sockets: namespaces x, y, z with pods a, b, c
 * (labels pod=a..., namespaces ns=x...), each serving TCP and UDP on ports 80 and 81 (named serve-80-tcp ...),
 * attached through bin/plexus by a real plexusd on the file source. After each policy change every pair is
 * probed over IPv4 and IPv6 (the upstream netpol e2e's truth table) and must match the reference evaluator.
 * SCTP cannot be probed here (this kernel has no SCTP sockets); its verdicts are the kernel's under
 * BPF_PROG_TEST_RUN (policy/bpf-policy.test.ts).
 */
import { join } from 'node:path';
import type { World } from '../../policy/evaluate';
import { expectEventually } from '../helpers/eventually';
import {
  converge, expectedTable, expectReopenedOnSamePorts, NAMED_PORTS, NETPOL_NAMES as NAMES, NETPOL_NAMESPACES as NAMESPACES, NetpolAgent, type NetpolPod, netpolPod as podObject, networkPolicy as np, startPolicyCluster, applyWorld, expectTables,
} from '../helpers/netpol';
import { containerId, PLEXUSCTL_BIN, ROOT, run, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(180_000);

const POOL = { name: 'pods', cidrs: ['10.96.0.0/16', 'fd00:96::/56'], blockSize: { v4: 26, v6: 122 } };

let cluster: Awaited<ReturnType<typeof startPolicyCluster>> | undefined;
let c: TestCluster;
let pinDir: string;
const pods: Array<NetpolPod & { cid: string; netns: string; hostIf: string }> = [];

/** Writes the policies (beside the namespaces and pods) and waits until the daemon has read them. */
const apply = (policies: Record<string, unknown>[], extraPods: Record<string, unknown>[] = []) => applyWorld(c, {}, policies, extraPods);

const expectTable = (w: World) => expectTables(pods, w);

const find = (ns: string, name: string) => pods.find((p) => p.pod.namespace === ns && p.pod.name === name)!;
const observe = (args: string[]) => run(PLEXUSCTL_BIN, ['--socket', c.socket, 'observe', ...args], { allowFail: true });

async function attach(ns: string, name: string): Promise<NetpolPod & { cid: string; netns: string; hostIf: string }> {
  const netns = c.makePod();
  const cid = containerId();
  // The agent listens before the ADD (on any address): a probe right after it meets the policy, not a closed port.
  const agent = await NetpolAgent.started(netns.name);
  const out = await c.cni('ADD', { containerId: cid, netns: netns.path, pod: { namespace: ns, name } });
  expect(out).toMatchObject({ code: 0 });
  const ips = out.json.ips.map((i: { address: string }) => i.address.split('/')[0] as string);
  return {
    pod: { namespace: ns, name, labels: { pod: name }, ports: NAMED_PORTS.map((p) => ({ name: p.name, port: p.containerPort, protocol: p.protocol })) },
    v4: ips.find((a: string) => a.includes('.')), v6: ips.find((a: string) => a.includes(':')),
    agent, cid, netns: netns.name, hostIf: out.json.interfaces[0].name,
  };
}

beforeAll(async () => {
  cluster = await startPolicyCluster(POOL, 'policy');
  ({ c, pinDir } = cluster);
  await apply([]);
  for (const ns of NAMESPACES) for (const name of NAMES) pods.push(await attach(ns, name));
});

afterAll(async () => {
  await cluster?.stop(pods);
});

test('the policy program sits ahead of from_pod on every host veth, its maps pinned (tc, bpftool)', () => {
  const p = find('x', 'a');
  const filters = (dir: string) => c.inNode('tc', ['filter', 'show', 'dev', p.hostIf, dir]).stdout;
  expect(filters('ingress')).toMatch(/pref 1 bpf[^\n]*\n[^\n]*policy_from_end[\s\S]*pref 2 bpf[^\n]*\n[^\n]*from_pod/);
  expect(filters('egress')).toMatch(/pref 1 bpf[^\n]*\n[^\n]*policy_to_endpo/);
  const pinned = run('ls', [join(pinDir, 'policy')]).stdout.split('\n');
  expect(pinned).toEqual(expect.arrayContaining(['pol_rules', 'pol_ct', 'pol_events', 'pol_local', 'pol_ipcache']));
});

test('no policy: every pod reaches every other on TCP and UDP 80 and 81, IPv4 and IPv6', async () => {
  await expectTable(await apply([]));
});

test('ingress: default deny in x, then pod b of y allowed to x/a on a named port; replies of x\'s own connections pass', async () => {
  const deny = np('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] });
  let w = await apply([deny]);
  await expectTable(w);
  expect(await find('x', 'a').agent.probe([{ ip: find('y', 'b').v4, port: 80, proto: 'TCP' }])).toEqual([true]); // x's own connection out: its replies pass (NP4)
  expect(await find('y', 'b').agent.probe([{ ip: find('x', 'a').v4, port: 80, proto: 'TCP' }])).toEqual([false]);

  const allow = np('x', 'a-from-yb', {
    podSelector: { matchLabels: { pod: 'a' } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 'serve-80-tcp' }, { protocol: 'UDP', port: 81 }] }],
  });
  w = await apply([deny, allow]);
  await expectTable(w);
  const yb = find('y', 'b').agent;
  const xa = find('x', 'a');
  expect(await yb.probe([{ ip: xa.v4, port: 80, proto: 'TCP' }, { ip: xa.v6, port: 81, proto: 'UDP' }, { ip: xa.v4, port: 81, proto: 'TCP' }])).toEqual([true, true, false]);
});

test('egress: y isolated, allowed to namespace x on a port range and to z/c by its address as an ipBlock (F12)', async () => {
  const zc = find('z', 'c');
  const egress = np('y', 'out', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [
      { to: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }], ports: [{ protocol: 'UDP', port: 80, endPort: 81 }] },
      { to: [{ ipBlock: { cidr: `${zc.v4}/32` } }, { ipBlock: { cidr: `${zc.v6}/128` } }] },
    ],
  });
  await expectTable(await apply([egress]));
});

test('a policy change cuts a live connection it now denies and keeps one it still allows (connections are judged again)', async () => {
  await apply([]);
  const za = find('z', 'a');
  const [xb, yb] = [find('x', 'b'), find('y', 'b')];
  expect(await za.agent.request({ hold: { ip: xb.v4, port: 80, key: 'to-xb' }, timeoutMs: 2000 })).toEqual([true]);
  expect(await za.agent.request({ hold: { ip: yb.v6, port: 81, key: 'to-yb' }, timeoutMs: 2000 })).toEqual([true]);
  expect(await za.agent.request({ send: 'to-xb' })).toEqual([true]);
  await apply([np('x', 'closed', { podSelector: {}, policyTypes: ['Ingress'] })]);
  await expectEventually(async () => expect(await za.agent.request({ send: 'to-xb', timeoutMs: 500 })).toEqual([false]), { timeoutMs: 15_000 });
  expect(await za.agent.request({ send: 'to-yb' })).toEqual([true]);
});

test('TCP state: a connection ended by an RST is forgotten, so the same ports open a new one, judged and reported again', async () => {
  await apply([]);
  await expectReopenedOnSamePorts(find('z', 'a'), find('x', 'b'), () => observe(['--from-pod', 'z/a', '--to-pod', 'x/b', '--verdict', 'FORWARDED', '-o', 'json']).stdout);
});

test('the node always reaches an isolated pod on the cluster network (NP5); a pod does not', async () => {
  const xa = find('x', 'a');
  // A node has an address of its own (the test node has none but lo's): its traffic to pods comes from it.
  c.inNode('ip', ['addr', 'add', '192.0.2.10/32', 'dev', 'lo']);
  await apply([np('x', 'closed', { podSelector: {}, policyTypes: ['Ingress'] })]);
  await expectEventually(async () => expect(await find('z', 'b').agent.probe([{ ip: xa.v4, port: 80, proto: 'TCP' }])).toEqual([false]), { timeoutMs: 15_000 });
  // From the node's netns (its own addresses): curl-like TCP connect with bash's /dev/tcp.
  await expectEventually(() => expect(c.inNode('timeout', ['2', 'bash', '-c', `exec 3<>/dev/tcp/${xa.v4}/80`], { allowFail: true }).code).toBe(0), { timeoutMs: 15_000 });
});

test('a pod a policy selects is isolated before its ADD returns: the first probe after ADD is denied', async () => {
  await apply([np('z', 'closed', { podSelector: { matchLabels: { pod: 'new' } }, policyTypes: ['Ingress'] })], [podObject('z', 'new')]);
  const fresh = await attach('z', 'new');
  try {
    // No waiting: the ADD has returned, so the policy must already hold.
    expect(await find('x', 'c').agent.probe([{ ip: fresh.v4, port: 80, proto: 'TCP' }, { ip: fresh.v6, port: 80, proto: 'UDP' }], 1500)).toEqual([false, false]);
    expect(await fresh.agent.probe([{ ip: find('x', 'c').v4, port: 80, proto: 'TCP' }])).toEqual([true]);
  } finally {
    fresh.agent.stop();
    expect(await c.cni('DEL', { containerId: fresh.cid, netns: `/var/run/netns/${fresh.netns}`, pod: { namespace: 'z', name: 'new' } })).toMatchObject({ code: 0 });
  }
});

test('a UDP datagram larger than the MTU crosses as fragments where its port is allowed and not where it is not, IPv4 and IPv6', async () => {
  await apply([np('x', 'a-udp81', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ protocol: 'UDP', port: 81 }] }] })]);
  const [xa, yb] = [find('x', 'a'), find('y', 'b')];
  const big = (ip: string, port: number) => ({ ip, port, proto: 'UDP' as const, size: 4000 });
  await expectEventually(async () => expect(await yb.agent.probe([big(xa.v4, 81), big(xa.v6, 81), big(xa.v4, 80), big(xa.v6, 80)], 1500)).toEqual([true, true, false, false]), { timeoutMs: 15_000 });
});

test('enforcement goes on while plexusd is down (pinned maps) and after it restarts (the maps are taken over)', async () => {
  const deny = np('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] });
  const allow = np('x', 'a-from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80 }] }] });
  const w = await apply([deny, allow]);
  await expectTable(w);
  await c.stopDaemon('SIGKILL');
  expect(await converge(pods, 4, expectedTable(w, pods, 4), 0)).toEqual([]);
  await c.startDaemon();
  expect(await converge(pods, 6, expectedTable(w, pods, 6), 0)).toEqual([]);
  // The new daemon knows what the old one wrote: replacing the policy leaves none of the old rules (bpftool).
  await expectTable(await apply([deny]));
  expect(JSON.parse(run('bpftool', ['-j', 'map', 'dump', 'pinned', join(pinDir, 'policy', 'pol_rules')]).stdout)).toEqual([]);
  await expectTable(await apply([]));
});

test('plexusctl observe shows dropped and forwarded flows with both ends named, filtered like hubble observe', async () => {
  await apply([np('y', 'closed', { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Ingress'] })]);
  const [xa, yc, za] = [find('x', 'a'), find('y', 'c'), find('z', 'a')];
  await expectEventually(async () => expect(await xa.agent.probe([{ ip: yc.v4, port: 81, proto: 'TCP' }])).toEqual([false]), { timeoutMs: 15_000 });
  expect(await za.agent.probe([{ ip: xa.v6, port: 80, proto: 'UDP' }])).toEqual([true]);
  await expectEventually(() => {
    const out = observe(['--from-pod', 'x/a', '--to-pod', 'y/c', '--verdict', 'DROPPED', '-o', 'json']);
    expect(out.code).toBe(0);
    const flows = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(flows.at(-1)).toMatchObject({
      verdict: 'DROPPED', drop_reason: 'POLICY_DENIED_INGRESS', network: 'cluster', protocol: 'TCP', traffic_direction: 'EGRESS',
      source: { ip: xa.v4, namespace: 'x', pod_name: 'a', labels: ['pod=a'] }, destination: { ip: yc.v4, port: 81, namespace: 'y', pod_name: 'c' },
    });
  }, { timeoutMs: 5000 });
  await expectEventually(() => {
    const out = observe(['--pod', 'z/a', '--protocol', 'udp', '--port', '80']);
    expect(out.stdout).toMatch(new RegExp(`z/a:\\d+ -> x/a:80 UDP FORWARDED`));
  }, { timeoutMs: 5000 });
  expect(observe(['--verdict', 'MAYBE']).code).toBe(2);
  const metrics = run(PLEXUSCTL_BIN, ['--socket', c.socket, 'metrics']).stdout;
  expect(metrics).toMatch(/plexus_policy_flows_total\{network="cluster",verdict="DROPPED",reason="POLICY_DENIED_INGRESS"\} [1-9]/);
  expect(metrics).toMatch(/plexus_policy_update_seconds_count [1-9]/);
  expect(metrics).toMatch(/plexus_policy_verdicts_total\{network="cluster",verdict="dropped_ingress"\} [1-9]/); // counted in the kernel, every drop
});

test('ROOT has the compiled policy object', () => {
  expect(run('ls', [join(ROOT, 'bin/bpf/policy.o')]).code).toBe(0);
});
