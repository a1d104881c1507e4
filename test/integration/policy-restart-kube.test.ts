/**
 * A restart of plexusd on the Kubernetes source, while the API server cannot list the pods of other nodes:
 * the policy peers a node knows by labels only from that list. Two nodes (hack/cluster, plexus-routed with
 * eBPF, each daemon on the Kubernetes source of the test API server, reached inside each node's netns); the
 * server's pod admits only the client of the other node. Until the peers are listed again, the restarted
 * daemon must keep what the pinned maps hold (the policy its predecessor wrote), not write a policy without
 * them: that would cut the client's live connection and deny its new ones (D-14). A pod added meanwhile waits
 * for the listing, then gets TryAgainLater (CNI code 11); once the list answers, everything is written.
 * Witnesses: real sockets across the underlay, the CNI error, /metrics.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type Pod, REPO_ROOT, run } from '../../hack/cluster';
import yaml from 'js-yaml';
import { KubeApiServer, type KubeObject } from '../../hack/kube-api';
import { expectEventually } from '../helpers/eventually';
import { explained } from '../helpers/explained';
import { NAMED_PORTS, NetpolAgent } from '../helpers/netpol';

jest.setTimeout(180_000);

const CTL = join(REPO_ROOT, 'bin/plexusctl');
const PREFIX = `plxpr${process.pid % 100000}`;
const api = new KubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'pxrestart-'));
let c: Cluster;
const agents = new Map<string, NetpolAgent>();
const pods = new Map<string, Pod>();
const uids = new Map<string, string>();

const podObject = (name: string, node: string) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'default', name, labels: { app: name } },
  spec: { nodeName: node, containers: [{ name: 'agent', image: 'agent', ports: NAMED_PORTS }] },
});
const publish = (name: string, node: string) => uids.set(name, api.apply(podObject(name, c.node(node).netns)).metadata.uid!);
const probe = (from: string, to: string) => agents.get(from)!.probe([{ ip: pods.get(to)!.ipv4!, port: 80, proto: 'TCP' }]).then((r) => r[0]);
const metric = (node: string, name: string) => new RegExp(`^${name} (\\S+)`, 'm').exec(run(CTL, ['--socket', c.node(node).socket, 'metrics']).stdout)?.[1];
const clusterTest = (name: string, body: () => Promise<void>): void => test(name, () => explained(() => c.diagnose(), body));

beforeAll(async () => {
  await api.start(join(dir, 'api.sock'));
  // The CRDs a cluster running Plexus has (NADs, MultiNetworkPolicies, IPAM), as `kubectl apply -f crds/`.
  for (const f of readdirSync(join(REPO_ROOT, 'crds'))) for (const crd of yaml.loadAll(readFileSync(join(REPO_ROOT, 'crds', f), 'utf8'))) api.apply(crd as KubeObject);
  // Each node reaches the server at 127.0.0.1:6443 of its own netns (exposed once the netns exist).
  const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'), 'plexus-test', 'http://127.0.0.1:6443');
  c = await Cluster.create({
    prefix: PREFIX, nodes: 2, datapath: 'routed', mode: 'native', ebpf: true, logLevel: 'info',
    daemon: { source: { type: 'kubernetes', kubeconfig, podWaitMs: 2000, requestTimeoutMs: 3000, watchSilenceSeconds: 30, backoffMaxMs: 500 } },
  });
  for (const n of ['n1', 'n2']) await api.exposeIn(c.node(n).netns);
  api.apply({
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'default', name: 'server-from-client' },
    spec: { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }] },
  });
  for (const [node, name] of [['n1', 'client'], ['n1', 'other'], ['n2', 'server']] as const) {
    publish(name, node);
    const pod = await c.addPod(node, { name, uid: uids.get(name)! });
    pods.set(name, pod);
    agents.set(name, await NetpolAgent.started(pod.netns));
  }
});

afterAll(async () => {
  for (const a of agents.values()) a.stop();
  await c?.destroy();
  await api.stop();
  rmSync(dir, { recursive: true, force: true });
});

clusterTest('before the restart: n2 admits the client of n1 by its labels (known from the API), not the other pod', async () => {
  await expectEventually(async () => {
    expect({ client: await probe('client', 'server'), other: await probe('other', 'server') }).toEqual({ client: true, other: false });
  }, { timeoutMs: 20_000 });
  expect(metric('n2', 'plexus_policy_peers')).toBe('2');
  expect(metric('n2', 'plexus_policy_waiting_for_source')).toBe('0');
});

clusterTest('restarted while the other nodes\' pods cannot be listed: the live connection and new ones from the client go on; an ADD waits, then gets code 11', async () => {
  const server = pods.get('server')!;
  const client = agents.get('client')!;
  expect(await client.request({ hold: { ip: server.ipv4, port: 80, key: 'live' }, timeoutMs: 2000 })).toEqual([true]);
  // The list of every pod not on n2 (the peers) fails from now on; n2's own pods, the policies and namespaces list.
  api.failNext(500, { method: 'GET', queryIncludes: `spec.nodeName!=${c.node('n2').netns}`, count: 1_000_000 });
  await c.restartDaemon('n2');
  // The daemon is ready (its restore wrote what it could). Several rounds: the pinned maps keep deciding as before.
  for (let i = 0; i < 3; i++) {
    expect(await client.request({ send: 'live', timeoutMs: 1500 })).toEqual([true]);
    expect({ client: await probe('client', 'server'), other: await probe('other', 'server') }).toEqual({ client: true, other: false });
    await new Promise((r) => setTimeout(r, 500));
  }
  expect(metric('n2', 'plexus_policy_waiting_for_source')).toBe('1');
  expect(c.daemonLog('n2')).toMatch(/"unlisted":\["Pod of other nodes"\],"msg":"the source has not listed everything policy reads/);
  // A pod of n2 cannot have its policy written: its ADD waits podWaitMs, then asks the runtime to retry.
  publish('late', 'n2');
  const late = c.addPod('n2', { name: 'late', uid: uids.get('late')! });
  await expect(late).rejects.toThrow(/"code":11,.*pod default\/late.*policy cannot be written yet.*Pod of other nodes/s);

  // The list answers again: the policy is written with the peers, and the connection was never cut.
  api.clearFailures();
  await expectEventually(() => expect(metric('n2', 'plexus_policy_waiting_for_source')).toBe('0'), { timeoutMs: 15_000 });
  expect(metric('n2', 'plexus_policy_peers')).toBe('2');
  expect(await client.request({ send: 'live', timeoutMs: 1500 })).toEqual([true]);
  expect({ client: await probe('client', 'server'), other: await probe('other', 'server') }).toEqual({ client: true, other: false });
  expect(c.daemonLog('n2')).toMatch(/the source has listed everything policy reads: writing the policy/);
  // The runtime's retry of the same ADD now goes through.
  const retry = c.listPods().find((p) => p.name === 'late')!;
  expect(await c.cniCall('ADD', retry)).toMatchObject({ code: 0 });
});
