/**
 * MultiNetworkPolicy on DPDK ports, enforced in plexus-dataplane's poll loop and proved with real sockets.
 *
 * Each pod's application is dpdk-testpmd run as the pod contract says (its socket directory mounted at the
 * NAD's containerDir), cross-connecting its vhost-user port with a TAP device in the pod's netns (io forward):
 * the pod's kernel sends and receives through its DPDK interface, so the netpol agent's TCP and UDP probes cross
 * the engine exactly as a DPDK application's packets do. Pods x/a, x/b, y/b and z/c are on `default/dp`
 * (plexus-dpdk, vhost-user, engine network `dp-l2`); after each policy change every pair is probed over IPv4
 * and IPv6 and must match the reference evaluator for that network. Witnesses besides the sockets: the engine's
 * own API (its policy revision, per-port drop counters), plexusctl observe and metrics.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { World } from '../../policy/evaluate';
import { EngineProcess, Testpmd } from '../helpers/dpdk';
import { expectEventually } from '../helpers/eventually';
import {
  arrivals, converge, expectedTable, expectReopenedOnSamePorts, mixedMultiPolicies, multiNetworkPolicy, NAMED_PORTS, netpolPod, sendFrom, NetpolAgent, type NetpolPod, applyWorld, expectTables,
} from '../helpers/netpol';
import { containerId, PLEXUSCTL_BIN, run, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(240_000);

const DP = 'default/dp';
/** memif ports: their own NAD and engine network (the engine serves the socket; the pod's application is its client). */
const DPM = 'default/dpm';
const CONTAINER_DIR = '/mnt/plexus';
const ON_DP = { 'k8s.v1.cni.cncf.io/networks': DP };
const POOL = ['10.72.0.0/24', 'fd00:72::/64'];

interface Pod extends NetpolPod {
  readonly id: string;
  readonly netns: { name: string; path: string };
  readonly uid: string;
  readonly app: Testpmd;
}

const engine = new EngineProcess();
let socketDir = '';
let c: TestCluster;
const pods: Pod[] = [];

const mnp = (ns: string, name: string, spec: Record<string, unknown>) => multiNetworkPolicy(ns, name, spec, DP);
const find = (ns: string, name: string) => pods.find((p) => p.pod.namespace === ns && p.pod.name === name)!;
const plexusctl = (...args: string[]) => run(PLEXUSCTL_BIN, ['--socket', c.socket, ...args]).stdout;

const apply = (policies: Record<string, unknown>[], extraPods: Record<string, unknown>[] = []) => applyWorld(c, ON_DP, policies, extraPods);

/** The table on dp (every pair, both families) is the evaluator's for dp. */
const expectDp = (w: World, families: Array<4 | 6> = [4, 6]) => expectTables(pods, w, DP, { families, deadlineMs: 30_000 });

/**
 * A pod on dp: its agent listening, its ADD, then its application (testpmd: the vhost-user socket, or on dpm the
 * memif one, <-> a TAP named dp0) and dp0 given the addresses network-status reports.
 */
async function attach(ns: string, name: string, network = DP): Promise<Pod> {
  const netns = c.makePod();
  const uid = `00000000-0000-4000-8000-${randomBytes(6).toString('hex')}`;
  const agent = await NetpolAgent.started(netns.name);
  let app: Testpmd | undefined;
  try {
    return await attachAs(ns, name, network, netns, uid, agent, (started) => (app = started));
  } catch (err) {
    // Not in `pods` yet, so afterAll would not stop them: a live agent keeps jest from exiting.
    agent.stop();
    await app?.kill();
    throw err;
  }
}

async function attachAs(ns: string, name: string, network: string, netns: Pod['netns'], uid: string, agent: NetpolAgent, started: (app: Testpmd) => void): Promise<Pod> {
  const id = containerId();
  const out = await c.cni('ADD', { containerId: id, netns: netns.path, pod: { namespace: ns, name, uid } });
  expect(out).toMatchObject({ code: 0 });
  const port = network === DPM ? `net_memif0,role=client,socket=${CONTAINER_DIR}/net1.sock,socket-abstract=no,id=0` : `net_virtio_user0,path=${CONTAINER_DIR}/net1.sock,server=1`;
  const app = new Testpmd(netns.name, [port, 'net_tap0,iface=dp0'], ['--forward-mode=io'],
    { mount: { hostDir: join(socketDir, uid), containerDir: CONTAINER_DIR } });
  started(app);
  const status = JSON.parse(plexusctl('status', `${ns}/${name}`)) as Array<{ name: string; ips?: string[] }>;
  const ips = status.find((s) => s.name === network)!.ips!;
  await expectEventually(() => expect(run('ip', ['-n', netns.name, 'link', 'show', 'dp0'], { allowFail: true }).stdout).toMatch(/dp0/), { timeoutMs: 20_000, context: () => app.output().slice(-1500) });
  run('ip', ['netns', 'exec', netns.name, 'sysctl', '-q', '-w', 'net.ipv6.conf.dp0.accept_dad=0']);
  for (const ip of ips) run('ip', ['-n', netns.name, 'addr', 'add', ip, 'dev', 'dp0']);
  run('ip', ['-n', netns.name, 'link', 'set', 'dp0', 'up']);
  // The pool's prefixes are on the link (plexus-ipam reports each address as a /32 and /128 here).
  for (const cidr of POOL) run('ip', ['-n', netns.name, 'route', 'add', cidr, 'dev', 'dp0']);
  const v4 = ips.find((ip) => ip.includes('.'))!.split('/')[0]!;
  const v6 = ips.find((ip) => ip.includes(':'))!.split('/')[0]!;
  return { pod: { namespace: ns, name, labels: { pod: name }, ports: NAMED_PORTS.map((p) => ({ name: p.name, port: p.containerPort, protocol: p.protocol })) }, v4, v6, agent, id, netns, uid, app };
}

async function detach(p: Pod): Promise<void> {
  p.agent.stop();
  await p.app.kill();
  expect(await c.cni('DEL', { containerId: p.id, netns: p.netns.path, pod: { namespace: p.pod.namespace, name: p.pod.name, uid: p.uid } })).toMatchObject({ code: 0 });
}

beforeAll(async () => {
  socketDir = mkdtempSync(join(tmpdir(), 'pxp-'));
  await engine.start();
  c = await TestCluster.start({
    daemon: { dpdk: { socketPath: engine.socket, socketDir }, ipam: { pools: [{ name: 'dp-pool', cidrs: POOL, blockSize: { v4: 28, v6: 124 } }] } },
  });
  // dp, and dpo: another NAD on the same engine network that no policy names.
  const nad = (name: string, iface = 'vhost-user', network = 'dp-l2') => c.nad(name, { cniVersion: '1.1.0', name, type: 'plexus-dpdk', interface: iface, network, containerDir: CONTAINER_DIR, ipam: { pool: 'dp-pool' } });
  await c.writeManifests('nad.yaml', [nad('dp'), nad('dpo'), nad('dpm', 'memif', 'dp-memif')]);
  await apply([]);
  for (const [ns, name] of [['x', 'a'], ['x', 'b'], ['y', 'b'], ['z', 'c']] as const) pods.push(await attach(ns, name));
});

afterAll(async () => {
  for (const p of pods.splice(0)) await detach(p).catch(() => undefined);
  await c?.destroy();
  await engine.destroy();
  if (socketDir) rmSync(socketDir, { recursive: true, force: true });
});

test('no MultiNetworkPolicy names dp: the engine judges nothing and every pod reaches every other through it', async () => {
  await expectDp(await apply([]));
  expect((await engine.call('GET', '/v1/policy')).json).toMatchObject({ networks: [], endpoints: 0 });
});

test('selectors, named ports, port ranges and ipBlocks on dp are the evaluator\'s, IPv4 and IPv6; the engine drops what they deny and says so', async () => {
  const zc = find('z', 'c');
  const w = await apply(mixedMultiPolicies(DP, [{ cidr: '10.72.0.0/24', except: [`${find('x', 'b').v4}/32`] }, { cidr: `${zc.v6}/128` }], [{ port: 81 }]));
  const view = (await engine.call('GET', '/v1/policy')).json;
  expect(view).toMatchObject({ networks: ['dp-l2'], endpoints: 4 });
  await expectDp(w);
  // Datagrams larger than the MTU cross as fragments: the later ones carry no ports, and take the first's.
  const xa = find('x', 'a');
  const big = (ip: string, port: number) => ({ ip, port, proto: 'UDP' as const, size: 4000 });
  expect(await find('y', 'b').agent.probe([big(xa.v4, 81), big(xa.v6, 81), big(xa.v4, 80)], 3000)).toEqual([true, true, false]);
  // The engine's own witnesses: the ports of the isolated pods counted drops, and so did its verdict counters.
  const ports = await engine.ports();
  const dropped = (p: Pod) => ports[`${p.id.slice(0, 12)}-net1`]!.counters!.policyDropped;
  expect(dropped(find('z', 'c'))).toBeGreaterThan(0); // z/c -> x/*: denied by x's ingress, dropped as z/c sent it
  expect((await engine.call('GET', '/v1/policy')).json.counters['dp-l2']).toMatchObject({ droppedIngress: expect.any(Number), forwarded: expect.any(Number) });
  // plexusd names the engine's flows, as hubble would, under the NAD.
  await expectEventually(() => {
    const flows = plexusctl('observe', '--network', DP, '--verdict', 'DROPPED', '--to-pod', 'x/a', '-o', 'json').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(flows).toContainEqual(expect.objectContaining({ network: DP, verdict: 'DROPPED', drop_reason: 'POLICY_DENIED_INGRESS', source: expect.objectContaining({ namespace: 'z', pod_name: 'c' }), destination: expect.objectContaining({ namespace: 'x', pod_name: 'a' }) }));
  }, { timeoutMs: 10_000 });
  await expectEventually(() => expect(plexusctl('metrics')).toMatch(/plexus_policy_verdicts_total\{network="default\/dp",verdict="dropped_ingress"\} [1-9]/), { timeoutMs: 10_000 });
});

test('a tracked connection a new policy denies is cut at its next packet; one it allows goes on', async () => {
  // dp is governed (z is closed), so the engine tracks the connections x's pods accept.
  await expectDp(await apply([mnp('z', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })]), [4]);
  const yb = find('y', 'b').agent;
  expect(await yb.request({ hold: { ip: find('x', 'a').v4, port: 80, key: 'to-xa' }, timeoutMs: 3000 })).toEqual([true]);
  expect(await yb.request({ hold: { ip: find('x', 'b').v4, port: 80, key: 'to-xb' }, timeoutMs: 3000 })).toEqual([true]);
  expect(await yb.request({ send: 'to-xa', timeoutMs: 3000 })).toEqual([true]);
  await apply([mnp('z', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] }), mnp('x', 'b-only-from-y', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] }),
    mnp('x', 'a-closed', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] })]);
  await expectEventually(async () => expect(await yb.request({ send: 'to-xa', timeoutMs: 1000 })).toEqual([false]), { timeoutMs: 10_000 });
  expect(await yb.request({ send: 'to-xb', timeoutMs: 3000 })).toEqual([true]);
  await expectEventually(() => expect(plexusctl('metrics')).toMatch(/plexus_policy_verdicts_total\{network="default\/dp",verdict="connection_cut"\} [1-9]/), { timeoutMs: 10_000 });
});

test('TCP state: a connection ended by an RST is forgotten, so the same ports open a new one, judged and reported again', async () => {
  await apply([mnp('z', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })]); // dp governed: the engine tracks
  await expectReopenedOnSamePorts(find('y', 'b'), find('x', 'a'), () => plexusctl('observe', '--network', DP, '--from-pod', 'y/b', '--to-pod', 'x/a', '--verdict', 'FORWARDED', '-o', 'json'));
});

test('a pod\'s port sending with another pod\'s address is dropped as spoofed, so it cannot borrow what that pod is allowed', async () => {
  const [xa, xb, zc] = [find('x', 'a'), find('x', 'b'), find('z', 'c')];
  await apply([mnp('x', 'a-from-xb', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'UDP', port: 80 }] }] })]);
  expect(await arrivals(xa.netns.name, 'dp0', xb.v4, () => sendFrom(xb.netns.name, xb.v4, xa.v4))).toBe(3); // x/b itself: allowed, and the witness sees it
  expect(await arrivals(xa.netns.name, 'dp0', xb.v4, () => sendFrom(zc.netns.name, xb.v4, xa.v4))).toBe(0); // z/c claiming to be x/b
  await expectEventually(() => {
    const flows = plexusctl('observe', '--network', DP, '--verdict', 'DROPPED', '-o', 'json').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(flows).toContainEqual(expect.objectContaining({ drop_reason: 'INVALID_SOURCE_IP', source: expect.objectContaining({ ip: xb.v4, pod_name: 'b' }), destination: expect.objectContaining({ pod_name: 'a' }) }));
  }, { timeoutMs: 10_000 });
  await expectEventually(() => expect(plexusctl('metrics')).toMatch(/plexus_policy_verdicts_total\{network="default\/dp",verdict="dropped_spoofed"\} [1-9]/), { timeoutMs: 10_000 });
});

test('a pod of another NAD on the same engine network, which no policy names, cannot claim a dp pod\'s address either', async () => {
  const [xa, xb] = [find('x', 'a'), find('x', 'b')];
  await c.writeManifests('other.yaml', [netpolPod('z', 'o', { 'k8s.v1.cni.cncf.io/networks': 'default/dpo' })]);
  const other = await attach('z', 'o', 'default/dpo');
  try {
    await apply([mnp('x', 'a-from-xb', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'UDP', port: 80 }] }] })]);
    expect((await engine.call('GET', '/v1/policy')).json).toMatchObject({ networks: ['dp-l2'] });
    expect(await arrivals(xa.netns.name, 'dp0', xb.v4, () => sendFrom(xb.netns.name, xb.v4, xa.v4))).toBe(3); // the witness works
    expect(await arrivals(xa.netns.name, 'dp0', xb.v4, () => sendFrom(other.netns.name, xb.v4, xa.v4))).toBe(0);
  } finally {
    await detach(other);
  }
});

test('a pod a policy selects is isolated on dp when its ADD returns: the engine already holds it as an endpoint', async () => {
  const w = await apply([mnp('z', 'a-from-xa', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } }, podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 80 }] }] })]);
  // Every dp pod is an endpoint once a policy names dp (isolated or not: its egress may be asked about).
  expect((await engine.call('GET', '/v1/policy')).json).toMatchObject({ networks: ['dp-l2'], endpoints: 4 });
  const before = (await engine.call('GET', '/v1/policy')).json.revision;
  const fresh = await attach('z', 'a');
  try {
    // attach() read the engine only after the ADD returned; the endpoint was there before any packet could flow.
    const view = (await engine.call('GET', '/v1/policy')).json;
    expect(view).toMatchObject({ networks: ['dp-l2'], endpoints: 5 });
    expect(view.revision).not.toBe(before);
    expect(await converge([...pods, fresh], 4, expectedTable(w, [...pods, fresh], 4, DP), 30_000)).toEqual([]);
  } finally {
    await detach(fresh);
  }
  expect((await engine.call('GET', '/v1/policy')).json).toMatchObject({ endpoints: 4 });
});

test('memif ports take the same decisions in the loop: the table over three memif pods on their own network, both families', async () => {
  const onDpm = { 'k8s.v1.cni.cncf.io/networks': DPM };
  const extra = ([['x', 'ma'], ['y', 'mb'], ['z', 'mc']] as const).map(([ns, name]) => netpolPod(ns, name, onDpm));
  await apply([], extra);
  const memifPods: Pod[] = [];
  try {
    for (const [ns, name] of [['x', 'ma'], ['y', 'mb'], ['z', 'mc']] as const) memifPods.push(await attach(ns, name, DPM));
    const w = await apply([
      multiNetworkPolicy('x', 'ma-from-mb', { podSelector: { matchLabels: { pod: 'ma' } }, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'mb' } } }], ports: [{ port: 'serve-80-tcp' }, { protocol: 'UDP', port: 81 }] }] }, DPM),
      multiNetworkPolicy('z', 'mc-out', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ protocol: 'UDP', port: 80, endPort: 81 }] }] }, DPM),
    ], extra);
    expect((await engine.call('GET', '/v1/policy')).json).toMatchObject({ networks: ['dp-memif'], endpoints: 3 });
    await expectTables(memifPods, w, DPM, { deadlineMs: 30_000 });
    // The engine's witness: z/mc's egress was refused at its memif port.
    const ports = await engine.ports();
    const mc = ports[`${memifPods[2]!.id.slice(0, 12)}-net1`]!;
    expect(mc).toMatchObject({ kind: 'memif' });
    expect(mc.counters!.policyDropped).toBeGreaterThan(0);
  } finally {
    for (const p of memifPods) await detach(p);
  }
});

test('engine SIGKILL and restart: the daemon gives the new engine the policy before it re-creates the ports', async () => {
  const w = await apply([mnp('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })]);
  await expectDp(w, [4]);
  const revision = (await engine.call('GET', '/v1/policy')).json.revision;
  await engine.kill();
  await engine.start();
  await expectEventually(async () => expect(Object.keys(await engine.ports())).toHaveLength(pods.length), { timeoutMs: 20_000 });
  expect((await engine.call('GET', '/v1/policy')).json).toMatchObject({ revision, networks: ['dp-l2'], endpoints: 4 });
  expect(c.log()).toMatch(/DPDK engine given the current policy again/);
  // The pods' virtio-user servers take the engine's reconnection by themselves.
  await expectDp(w, [4]);
});

test('plexusd down: the engine goes on enforcing; the restarted daemon follows a change', async () => {
  const w = await apply([mnp('y', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })]);
  await expectDp(w, [4]);
  await c.stopDaemon('SIGKILL');
  expect(await converge(pods, 4, expectedTable(w, pods, 4, DP), 0)).toEqual([]);
  await c.startDaemon();
  await expectDp(await apply([mnp('z', 'deny-out', { podSelector: {}, policyTypes: ['Egress'] })]), [6]);
});
