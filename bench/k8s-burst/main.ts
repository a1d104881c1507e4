/**
 * bench/k8s-burst: a node coming back from a reboot. 200 pods of this node are ADDed at once (cluster network
 * and one bridge network each) through bin/plexus, with plexusd on the Kubernetes source and 100,000 pods in
 * the (test) cluster, against the same burst with plexusd on the file source (only this node's pods): pods
 * attached per second, and plexusd's peak RSS (the kernel's VmHWM). Goal (issue 12): peak RSS under 150 MiB
 * where Multus users see OOM kills at 50-512 MiB, every ADD answered and none failed.
 *
 * The API server (hack/kube-api) runs in this process on a unix socket, reached from the node's netns at
 * 127.0.0.1:6443 through a forwarder, with TLS and a bearer token as in a cluster.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import yaml from 'js-yaml';
import { DaemonProcess, run } from '../../hack/cluster';
import { KubeApiServer } from '../../hack/kube-api';
import { execInNetns } from '../lib/netns';
import { mdTable, round, writeResults } from '../lib/stats';

const ROOT = resolve(__dirname, '../..');
const PODS = Number(process.env['BURST_PODS'] ?? 200);
const CLUSTER_PODS = Number(process.env['BURST_CLUSTER_PODS'] ?? 100_000);
const NODE_NAME = 'burst-node';
const CNI_DIR = '/usr/lib/cni';
const id = randomBytes(3).toString('hex');
const NODE = `plxk-${id}-node`;
const nodePath = `/var/run/netns/${NODE}`;
const dir = mkdtempSync(join(tmpdir(), `plexus-burst-${id}-`));
const netnses: string[] = [];

const hostLocal = (subnet: string, extra: object = {}) => ({ type: 'host-local', dataDir: join(dir, 'host-local'), ranges: [[{ subnet }]], ...extra });
const cluster = { cniVersion: '1.0.0', name: 'cluster', plugins: [{ type: 'ptp', ipam: hostLocal('10.120.0.0/16', { routes: [{ dst: '0.0.0.0/0' }] }) }] };
const nadConfig = { cniVersion: '1.0.0', name: 'burst', type: 'bridge', bridge: 'br-burst', ipam: hostLocal('10.121.0.0/16') };
const nad = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'burst', namespace: 'default' }, spec: { config: JSON.stringify(nadConfig) } };
const pod = (name: string, node: string) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: 'default', labels: { app: 'burst', tier: name.slice(-1) }, annotations: { 'k8s.v1.cni.cncf.io/networks': 'burst', 'example.com/owner': 'bench' } },
  spec: { nodeName: node, containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
});

interface Outcome {
  source: string;
  pods: number;
  failed: number;
  seconds: number;
  podsPerSecond: number;
  peakRssMiB: number;
}

async function daemon(source: Record<string, unknown>, tag: string): Promise<DaemonProcess> {
  const config = { socketPath: join(dir, `${tag}.sock`), stateDir: join(dir, `state-${tag}`), binDirs: [CNI_DIR], confDir: join(dir, 'cni'), clusterNetwork: 'cluster', nodeName: NODE_NAME, source, logLevel: 'warn' };
  writeFileSync(join(dir, `${tag}.json`), JSON.stringify(config));
  const d = DaemonProcess.spawn({ netns: NODE, configPath: join(dir, `${tag}.json`), socket: config.socketPath, logFile: join(dir, `${tag}.log`) });
  await d.waitReady(30_000);
  return d;
}

const peakRssMiB = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** Every pod ADDed at once, as a kubelet does after a reboot; then all DELed (not timed). */
async function burst(tag: string, names: string[], uids: Map<string, string>): Promise<{ seconds: number; failed: number }> {
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'plexus', type: 'plexus', socketPath: join(dir, `${tag}.sock`), stateDir: join(dir, `state-${tag}`), readinessTimeoutSeconds: 60 });
  const env = (cmd: string, name: string) => ({
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: cmd, CNI_CONTAINERID: createHash('sha256').update(`${tag}/${name}`).digest('hex'), CNI_NETNS: `/var/run/netns/${NODE}-${name}`, CNI_IFNAME: 'eth0', CNI_PATH: CNI_DIR,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}${uids.has(name) ? `;K8S_POD_UID=${uids.get(name)}` : ''}`,
  });
  const t0 = performance.now();
  const results = await Promise.all(names.map((n) => execInNetns(nodePath, join(ROOT, 'bin/plexus'), env('ADD', n), conf)));
  const seconds = (performance.now() - t0) / 1000;
  const failed = results.filter((r) => r.code !== 0);
  if (failed.length) process.stderr.write(`k8s-burst: ${tag}: ${failed.length} ADDs failed, e.g. ${failed[0]!.stdout.slice(0, 300)}\n`);
  for (const n of names) await execInNetns(nodePath, join(ROOT, 'bin/plexus'), env('DEL', n), conf);
  return { seconds, failed: failed.length };
}

async function main(): Promise<void> {
  for (const d of ['cni', 'manifests', 'host-local']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'cni/10-cluster.conflist'), JSON.stringify(cluster));
  run('ip', ['netns', 'add', NODE]);
  netnses.push(NODE);
  run('ip', ['-n', NODE, 'link', 'set', 'lo', 'up']);
  const names = Array.from({ length: PODS }, (_, i) => `burst-${i}`);
  for (const n of names) {
    run('ip', ['netns', 'add', `${NODE}-${n}`]);
    netnses.push(`${NODE}-${n}`);
  }
  const api = new KubeApiServer({ tls: true, historyLimit: 1000 });
  const outcomes: Outcome[] = [];
  try {
    // The file source: this node's pods only (it is not meant for a cluster's worth of manifests).
    writeFileSync(join(dir, 'manifests/objects.yaml'), [nad, ...names.map((n) => pod(n, NODE_NAME))].map((o) => yaml.dump(o)).join('---\n'));
    const file = await daemon({ type: 'file', dir: join(dir, 'manifests') }, 'file');
    const f = await burst('file', names, new Map());
    outcomes.push({ source: 'file', pods: PODS, failed: f.failed, seconds: f.seconds, podsPerSecond: PODS / f.seconds, peakRssMiB: peakRssMiB(file.pid) });
    await file.kill('SIGTERM', 10_000);

    // The API source, with the cluster's other pods on other nodes.
    await api.start(join(dir, 'api.sock'));
    await api.exposeIn(NODE);
    const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'), 'plexusd');
    api.apply(yaml.load(readFileSync(join(ROOT, 'crds/network-attachment-definition.yaml'), 'utf8')) as never);
    api.apply(nad as never);
    const t0 = performance.now();
    for (let i = 0; i < CLUSTER_PODS - PODS; i++) api.apply(pod(`other-${i}`, `node-${i % 500}`) as never);
    const uids = new Map(names.map((n) => [n, api.apply(pod(n, NODE_NAME) as never).metadata.uid!]));
    process.stderr.write(`k8s-burst: ${CLUSTER_PODS} pods in the test cluster (${Math.round(performance.now() - t0)} ms)\n`);
    const kube = await daemon({ type: 'kubernetes', kubeconfig, requestTimeoutMs: 30000 }, 'kube');
    const k = await burst('kube', names, uids);
    outcomes.push({ source: 'kubernetes', pods: PODS, failed: k.failed, seconds: k.seconds, podsPerSecond: PODS / k.seconds, peakRssMiB: peakRssMiB(kube.pid) });
    await kube.kill('SIGTERM', 10_000);
  } finally {
    await api.stop();
    for (const n of netnses.reverse()) run('ip', ['netns', 'del', n], { allowFail: true });
  }
  report(outcomes);
  rmSync(dir, { recursive: true, force: true });
}

function report(outcomes: Outcome[]): void {
  const [file, kube] = outcomes as [Outcome, Outcome];
  const met = kube.peakRssMiB < 150 && kube.failed === 0;
  const rows = outcomes.map((o) => [o.source, o.pods, o.failed, round(o.seconds, 2), round(o.podsPerSecond, 1), round(o.peakRssMiB, 1)]);
  const md = `# bench/k8s-burst\n\n${PODS} pods of one node ADDed at once (cluster network + one bridge network each) through bin/plexus, as a kubelet ` +
    `does after a reboot; plexusd on the Kubernetes source with ${CLUSTER_PODS.toLocaleString('en')} pods in the test cluster, against the file source ` +
    `with this node's pods only. Peak RSS is plexusd's VmHWM.\n\n` +
    mdTable(['source', 'pods', 'failed', 'seconds', 'pods/s', 'peak RSS MiB'], rows) +
    `\nAPI source vs file source: ${round(kube.podsPerSecond / file.podsPerSecond, 2)}x the pods per second, ${round(kube.peakRssMiB / file.peakRssMiB, 2)}x the peak RSS.\n` +
    `Goal: peak RSS under 150 MiB with every ADD answered: ${met ? 'met' : 'NOT met'} (${round(kube.peakRssMiB, 1)} MiB, ${kube.failed} failed).\n`;
  writeResults('k8s-burst', { pods: PODS, clusterPods: CLUSTER_PODS, outcomes, goal: { peakRssMiB: 150, met } }, md);
  process.stdout.write(md);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  for (const n of netnses.reverse()) run('ip', ['netns', 'del', n], { allowFail: true });
  process.exit(1);
});
