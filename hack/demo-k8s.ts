/**
 * `make demo-k8s`: Plexus on the Kubernetes API, in network namespaces. The test API server (hack/kube-api,
 * no kube-apiserver can run here) stands in for the cluster; everything else is as on a real node:
 * kubectl applies the CRDs, the RBAC and the networks; one node's plexusd runs on the API source with a token
 * held to deploy/rbac.yaml's rules; the demo plays the container runtime for two pods (bin/plexus, as a
 * runtime calls it); network-status is read back with kubectl; a network is hot-plugged into a running pod with
 * `kubectl annotate` and the pods ping each other over it, its addresses from plexus-ipam with the IPAM store in
 * the API server (`ipam.store: {type: kubernetes}`: the node's block read back with kubectl); then everything is
 * deleted.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import yaml from 'js-yaml';
import { DaemonProcess, REPO_ROOT, run, runAsync } from './cluster';
import { KubeApiServer, type RbacRule } from './kube-api';

const ID = `plxk${process.pid.toString(36)}`;
const NODE = `${ID}-node`;
const NODE_NAME = 'node-1';
const dir = mkdtempSync(join(tmpdir(), `${ID}-`));
const netnses: string[] = [];
const step = (msg: string): void => console.log(`\n==> ${msg}`);
const info = (msg: string): void => console.log(`    ${msg}`);

const hostLocal = (subnet: string) => ({ type: 'host-local', dataDir: join(dir, 'host-local'), ranges: [[{ subnet }]] });
const NETWORKS = [
  { name: 'storage', ipam: hostLocal('10.151.0.0/24') },
  { name: 'signalling', ipam: { type: 'plexus-ipam', pool: 'signalling-pool', socketPath: join(dir, 'plexus.sock') } },
];
const POOL = { apiVersion: 'plexus.io/v1alpha1', kind: 'IPPool', metadata: { name: 'signalling-pool' }, spec: { cidrs: ['10.152.0.0/24'], blockSize: 28 } };

async function kubectl(...args: string[]): Promise<string> {
  const r = await runAsync('ip', ['netns', 'exec', NODE, 'kubectl', '--kubeconfig', join(dir, 'admin.kubeconfig'), ...args], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function cni(command: string, pod: { name: string; uid: string; id: string }): Promise<{ code: number; stdout: string }> {
  const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'plexus', type: 'plexus', socketPath: join(dir, 'plexus.sock'), stateDir: join(dir, 'state') });
  return runAsync('ip', ['netns', 'exec', NODE, join(REPO_ROOT, 'bin/plexus')], {
    input: conf,
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: pod.id, CNI_NETNS: `/var/run/netns/${NODE}-${pod.name}`, CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni', CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
    },
  });
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const addrOf = (pod: string, ifName: string): string | undefined =>
  (JSON.parse(run('ip', ['-n', `${NODE}-${pod}`, '-j', '-4', 'addr', 'show', 'dev', ifName], { allowFail: true }).stdout || '[]') as Array<{ addr_info: Array<{ local: string }> }>)[0]?.addr_info[0]?.local;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (network namespaces)');
  const api = new KubeApiServer({ tls: true });
  let daemon: DaemonProcess | undefined;
  const pods: Array<{ name: string; uid: string; id: string }> = [];
  try {
    step('A test API server (hack/kube-api: the Kubernetes REST protocol over TLS), reached from the node at 127.0.0.1:6443');
    for (const d of ['cni', 'state', 'host-local']) mkdirSync(join(dir, d), { recursive: true });
    run('ip', ['netns', 'add', NODE]);
    netnses.push(NODE);
    run('ip', ['-n', NODE, 'link', 'set', 'lo', 'up']);
    await api.start(join(dir, 'api.sock'));
    info(`server ${await api.exposeIn(NODE)}`);
    api.writeKubeconfig(join(dir, 'admin.kubeconfig'), 'admin');
    api.writeKubeconfig(join(dir, 'plexusd.kubeconfig'), 'plexusd');
    const role = (yaml.loadAll(readFileSync(join(REPO_ROOT, 'deploy/rbac.yaml'), 'utf8')) as Array<{ kind: string; rules?: RbacRule[] }>).find((d) => d.kind === 'ClusterRole')!;
    api.bindRole('plexusd', role.rules!);
    info('plexusd\'s token is held to the ClusterRole of deploy/rbac.yaml');

    step('kubectl apply: the CRDs, the RBAC, two networks (one with an IPPool) and two pods on this node');
    for (const line of (await kubectl('apply', '-f', join(REPO_ROOT, 'crds'), '-f', join(REPO_ROOT, 'deploy/rbac.yaml'))).trim().split('\n')) info(line);
    const objects = [
      ...NETWORKS.map((n) => ({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: n.name, namespace: 'default' }, spec: { config: JSON.stringify({ cniVersion: '1.0.0', name: n.name, type: 'bridge', bridge: `br-${n.name}`, ipam: n.ipam }) } })),
      POOL,
      ...['web', 'cache'].map((name) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', annotations: { 'k8s.v1.cni.cncf.io/networks': 'storage' } }, spec: { nodeName: NODE_NAME, containers: [{ name, image: 'registry.k8s.io/pause:3.10' }] } })),
    ];
    writeFileSync(join(dir, 'objects.yaml'), objects.map((o) => yaml.dump(o)).join('---\n'));
    for (const line of (await kubectl('apply', '-f', join(dir, 'objects.yaml'))).trim().split('\n')) info(line);

    step('plexusd on the Kubernetes source and IPAM store (source: {type: kubernetes}, ipam.store: {type: kubernetes})');
    writeFileSync(join(dir, 'cni/10-cluster.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'cluster', plugins: [{ type: 'ptp', ipam: { ...hostLocal('10.150.0.0/24'), routes: [{ dst: '0.0.0.0/0' }] } }] }));
    const config = {
      socketPath: join(dir, 'plexus.sock'), stateDir: join(dir, 'state'), binDirs: [join(REPO_ROOT, 'bin'), '/usr/lib/cni'], confDir: join(dir, 'cni'), clusterNetwork: 'cluster', nodeName: NODE_NAME,
      source: { type: 'kubernetes', kubeconfig: join(dir, 'plexusd.kubeconfig') }, logLevel: 'info',
      ipam: { store: { type: 'kubernetes' } },
    };
    writeFileSync(join(dir, 'plexusd.yaml'), yaml.dump(config));
    daemon = DaemonProcess.spawn({ netns: NODE, configPath: join(dir, 'plexusd.yaml'), socket: config.socketPath, logFile: join(dir, 'plexusd.log') });
    await daemon.waitReady(20_000);
    const source = JSON.parse(run(join(REPO_ROOT, 'bin/plexusctl'), ['--socket', config.socketPath, 'source']).stdout);
    info(`synced: ${source.pods.objects} pods of ${NODE_NAME}, ${source.nads.objects} NADs, ${source.namespaces.objects} namespaces`);

    step('The runtime creates the pods\' sandboxes and calls Plexus (bin/plexus ADD)');
    for (const name of ['web', 'cache']) {
      const uid = (await kubectl('get', 'pod', name, '-o', 'jsonpath={.metadata.uid}')).trim();
      run('ip', ['netns', 'add', `${NODE}-${name}`]);
      netnses.push(`${NODE}-${name}`);
      const pod = { name, uid, id: randomBytes(32).toString('hex') };
      const r = await cni('ADD', pod);
      if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout}`);
      pods.push(pod);
      info(`${name}: eth0 ${addrOf(name, 'eth0')}, net1 ${addrOf(name, 'net1')}`);
    }
    const status = async (name: string) => JSON.parse(await kubectl('get', 'pod', name, '-o', 'jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}')) as Array<{ name: string; interface: string; ips: string[] }>;
    info('kubectl get pod web -o jsonpath={...network-status}:');
    for (const s of await status('web')) info(`  ${s.name.padEnd(18)} ${s.interface.padEnd(5)} ${s.ips.join(', ')}`);

    step('Hot-plug: kubectl annotate pod web k8s.v1.cni.cncf.io/networks=storage,signalling (and cache too)');
    for (const name of ['web', 'cache']) await kubectl('annotate', 'pod', name, '--overwrite', 'k8s.v1.cni.cncf.io/networks=storage,signalling');
    await until('net2 in both pods', () => addrOf('web', 'net2') !== undefined && addrOf('cache', 'net2') !== undefined);
    await until('network-status updated', async () => (await status('web')).length === 3 && (await status('cache')).length === 3);
    for (const s of await status('web')) info(`  ${s.name.padEnd(18)} ${s.interface.padEnd(5)} ${s.ips.join(', ')}`);
    const target = addrOf('cache', 'net2')!;
    const ping = run('ip', ['netns', 'exec', `${NODE}-web`, 'ping', '-c', '3', '-i', '0.2', '-W', '2', target], { allowFail: true });
    info(`web -> cache over the hot-plugged signalling network (${target}): ${/(\d+) received/.exec(ping.stdout)?.[1] ?? 0}/3 replies`);
    if (ping.code !== 0) throw new Error(`ping over the hot-plugged network FAILED:\n${ping.stdout}`);
    info('kubectl get ipamrecords -l plexus.io/kind=block (the signalling pool\'s block this node claimed):');
    const blocks = (JSON.parse(await kubectl('get', 'ipamrecords', '-l', 'plexus.io/kind=block', '-o', 'json')) as { items: Array<{ metadata: { labels: Record<string, string> }; spec: { key: string; value: { held: Record<string, string> } } }> }).items;
    for (const b of blocks) {
      const held = Object.entries(b.spec.value.held);
      const pods = held.filter(([, pod]) => pod).map(([o, pod]) => `#${o} ${pod}`).join(', ');
      info(`  ${b.spec.key}  node ${b.metadata.labels['plexus.io/node']}  held: ${pods} (+${held.filter(([, pod]) => !pod).length} in reserve)`);
    }
    if (!blocks.some((b) => b.spec.key === 'signalling-pool:10.152.0.0-28' && b.metadata.labels['plexus.io/node'] === NODE_NAME)) throw new Error('the node\'s block is not in the API server');
    info('kubectl get events --field-selector involvedObject.name=web:');
    const events = JSON.parse(await kubectl('get', 'events', '--field-selector', 'involvedObject.name=web', '-o', 'json')).items as Array<{ reason: string; message: string }>;
    for (const e of events) info(`  ${e.reason.padEnd(16)} ${e.message}`);

    step('Deleting the pods (bin/plexus DEL), then plexusd and the server');
    for (const pod of pods.splice(0)) {
      const r = await cni('DEL', pod);
      if (r.code !== 0) throw new Error(`DEL ${pod.name} FAILED: ${r.stdout}`);
    }
    info(`network-status after DEL: ${(await kubectl('get', 'pod', 'web', '-o', 'jsonpath={.metadata.annotations}')).includes('network-status') ? 'still there (FAILED)' : 'cleared'}`);
    console.log('\nDemo complete.');
  } finally {
    for (const pod of pods) await cni('DEL', pod).catch(() => undefined);
    await daemon?.kill('SIGTERM', 10_000);
    await api.stop();
    for (const n of netnses.reverse()) run('ip', ['netns', 'del', n], { allowFail: true });
    if (!process.env["KEEP"]) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.log(`\nDemo FAILED: ${(e as Error).message}`);
  process.exit(1);
});
