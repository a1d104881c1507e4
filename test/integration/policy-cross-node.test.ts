/**
 * NetworkPolicy peers on other nodes, known by their labels: a two-node cluster (hack/cluster: plexus-routed
 * with eBPF, each node's plexusd enforcing, the nodes sharing the pods' network-status through the file
 * source's statusDir, as the Kubernetes source shares it through the API). A rule naming pods by labels must
 * allow them wherever they run; before, a peer on another node matched by address only. Real sockets (the
 * netpol agents), across the underlay.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type Pod, REPO_ROOT, run } from '../../hack/cluster';
import { expectEventually } from '../helpers/eventually';
import { explained } from '../helpers/explained';
import { NAMED_PORTS, NetpolAgent } from '../helpers/netpol';

jest.setTimeout(180_000);

let c: Cluster;
const agents = new Map<string, NetpolAgent>();
const pods = new Map<string, Pod>();
const CTL = join(REPO_ROOT, 'bin/plexusctl');

const np = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'default', name }, spec });
const probe = (from: string, to: string, port: number, proto: 'TCP' | 'UDP' = 'TCP') => agents.get(from)!.probe([{ ip: pods.get(to)!.ipv4!, port, proto }]).then((r) => r[0]);
/** Probes until the answers are `want` (policies are written moments after the manifests are read). */
const expectReach = (cases: Array<[string, string, number, 'TCP' | 'UDP', boolean]>) =>
  expectEventually(async () => {
    const got = await Promise.all(cases.map(([from, to, port, proto]) => probe(from, to, port, proto)));
    expect(cases.map((k, i) => `${k[0]} -> ${k[1]} ${k[3]}/${k[2]}: ${got[i] ? 'allowed' : 'denied'}`)).toEqual(cases.map((k) => `${k[0]} -> ${k[1]} ${k[3]}/${k[2]}: ${k[4] ? 'allowed' : 'denied'}`));
  }, { timeoutMs: 20_000 });
const clusterTest = (name: string, body: () => Promise<void>): void => test(name, () => explained(() => c.diagnose(), body));

beforeAll(async () => {
  c = await Cluster.create({ prefix: `plxpx${process.pid % 100000}`, nodes: 2, datapath: 'routed', mode: 'native', ebpf: true, logLevel: 'info' });
  // The pods' manifests carry labels and named ports; the agents serve TCP and UDP 80 and 81.
  const spec = { containers: [{ name: 'agent', ports: NAMED_PORTS }] };
  for (const [node, name, app] of [['n1', 'client', 'client'], ['n1', 'other', 'other'], ['n2', 'server', 'server']] as const) {
    await c.writeManifest(`pod-spec-${name}.yaml`, [{ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'default', name, labels: { app } }, spec }]);
    const pod = await c.addPod(node, { name });
    pods.set(name, pod);
    agents.set(name, new NetpolAgent(pod.netns));
  }
});

afterAll(async () => {
  for (const a of agents.values()) a.stop();
  await c?.destroy();
});

clusterTest('each node knows the other node\'s pods from their published network-status (plexus_policy_peers)', async () => {
  await expectEventually(() => {
    for (const node of ['n1', 'n2']) {
      const metrics = run(CTL, ['--socket', c.node(node).socket, 'metrics']).stdout;
      expect({ node, peers: /^plexus_policy_peers (\d+)/m.exec(metrics)?.[1] }).toEqual({ node, peers: node === 'n1' ? '1' : '2' });
    }
  }, { timeoutMs: 10_000 });
  const status = JSON.parse(readFileSync(join(c.rootDir, 'network-status', 'default_server.json'), 'utf8')) as { node: string };
  expect(status.node).toBe(c.node('n2').netns);
});

clusterTest('ingress on n2 allows the client of n1 by its labels, on the port the rule names; the other pod of n1 stays out', async () => {
  await expectReach([['client', 'server', 80, 'TCP', true], ['other', 'server', 80, 'TCP', true]]);
  await c.writeManifest('policy.yaml', [np('server-from-client', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }] })]);
  await expectReach([['client', 'server', 80, 'TCP', true], ['client', 'server', 81, 'TCP', false], ['other', 'server', 80, 'TCP', false]]);
});

clusterTest('egress on n1 to the server of n2 by its labels and a named port it declares (F10, resolved on the remote pod)', async () => {
  await c.writeManifest('policy.yaml', [np('client-out', { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'server' } } }], ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] })]);
  await expectReach([['client', 'server', 81, 'UDP', true], ['client', 'server', 80, 'UDP', false], ['client', 'server', 80, 'TCP', false], ['other', 'server', 80, 'TCP', true]]);
});

clusterTest('a peer\'s labels changing on its node change what the other node allows', async () => {
  await c.writeManifest('policy.yaml', [np('server-from-client', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] })]);
  await expectReach([['client', 'server', 80, 'TCP', true], ['other', 'server', 80, 'TCP', false]]);
  const spec = { containers: [{ name: 'agent', ports: NAMED_PORTS }] };
  await c.writeManifest('pod-spec-other.yaml', [{ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'default', name: 'other', labels: { app: 'client' } }, spec }]);
  await expectReach([['other', 'server', 80, 'TCP', true]]);
  await c.writeManifest('policy.yaml', []);
});

clusterTest('TCP state on both nodes: closed connections are kept closing (seconds, not hours); one held open stays open and answered', async () => {
  const [client, server] = ['client', 'server'].map((n) => pods.get(n)!.ipv4!);
  expect(await agents.get('client')!.request({ hold: { ip: server, port: 80, key: 'kept' }, timeoutMs: 2000 })).toEqual([true]);
  for (let i = 0; i < 20; i++) expect(await Promise.all([probe('client', 'server', 80), probe('client', 'other', 80)])).toEqual([true, true]);
  type Ct = { key: { src: number[]; dst: number[]; dport: number; proto: number }; value: { replied: number; fin_initiator: number; fin_responder: number } };
  /** bpftool's view of a node's pol_ct: the state of the client's TCP connections to port 80, by destination. */
  const tracked = (node: string) => {
    const dump = JSON.parse(run('bpftool', ['-j', 'map', 'dump', 'pinned', join(c.node(node).pinDir, 'policy', 'pol_ct')]).stdout) as Array<{ formatted: Ct }>;
    const ip = (b: number[]) => b.slice(12).join('.');
    // dport is __be16 as the kernel holds it: 80 reads as 0x5000 on this little-endian machine
    const state = (v: Ct['value']) => (v.fin_initiator && v.fin_responder ? 'closing' : !v.fin_initiator && !v.fin_responder && v.replied ? 'open' : 'other');
    const out: Record<string, Record<string, number>> = {};
    for (const { key, value } of dump.map((e) => e.formatted)) {
      if (key.proto !== 6 || ip(key.src) !== client || key.dport !== 0x5000) continue;
      const to = ip(key.dst) === server ? 'server' : 'other';
      out[to] ??= {};
      out[to][state(value)] = (out[to][state(value)] ?? 0) + 1;
    }
    return out;
  };
  // Each probe's connection is closed (FIN both ways, the last ACK): closing on every node it crossed; the held one open.
  await expectEventually(() => {
    const [n1, n2] = [tracked('n1'), tracked('n2')];
    expect({ n1: { server: n1['server']?.['open'], other: n1['other']?.['open'] }, n2: { server: n2['server']?.['open'] } }).toEqual({ n1: { server: 1, other: undefined }, n2: { server: 1 } });
    expect([n1['server']?.['closing'], n1['other']?.['closing'], n2['server']?.['closing']].every((n) => (n ?? 0) >= 20)).toBe(true);
  }, { timeoutMs: 5000 });
  expect(await agents.get('client')!.request({ send: 'kept' })).toEqual([true]);
});
