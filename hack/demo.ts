/**
 * `make demo`: a two-node cluster in network namespaces (hack/cluster/) on the embedded defaults: one
 * plexusd per node, a shared local IPAM store, plexus-routed with eBPF as the cluster network. Three pods get
 * the cluster network and up to three extra networks (examples/manifests) through bin/plexus, exactly as a
 * runtime calls it, one of them with an SR-IOV VF next to its other networks. The demo prints what each pod
 * got, proves reachability on every network (across nodes too), keeps a ping running through a daemon
 * restart, then DELs everything and checks nothing is left. Only addresses inside namespaces created here are
 * ever pinged.
 *
 * There is no SR-IOV hardware here (../shared/ENVIRONMENT.md), and the demo says so: n1's VFs are veth ends
 * behind a fake sysfs tree, their PF an emulated one (hack/cluster/fake-sriov.ts), and the devices the
 * kubelet gave the pod come from a kubelet checkpoint file the demo writes, as a kubelet's device manager does.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { Background, Cluster, daemonGet, FakeSriov, type Pod, REPO_ROOT, run } from './cluster';
import { EngineClient, type EnginePort } from '../dpdk-native/engine-client';

// Unique per run: a second demo (or the CI's, beside a user's) must never remove this one's cluster.
const PREFIX = `plxd${process.pid.toString(36)}`;
const CTL = join(REPO_ROOT, 'bin/plexusctl');
const step = (msg: string): void => console.log(`\n==> ${msg}`);
/** The SR-IOV pod's fixed UID: the kubelet checkpoint names the pod by it. */
const UPF_UID = '5f1d3c4e-0000-4000-8000-00000000d6f0';
const VF = { pci: '0000:af:06.0', netdev: 'ens6f0v0' };
const SRIOV_RESOURCE = 'intel.com/sriov_netdevice';
const info = (msg: string): void => console.log(`    ${msg}`);

function table(rows: Record<string, string>[]): void {
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(width[i]!)).join('  ');
  info(line(cols));
  info(line(width.map((w) => '-'.repeat(w))));
  for (const r of rows) info(line(cols.map((c) => r[c] ?? '')));
}

const ctl = (c: Cluster, node: string, ...args: string[]): any => JSON.parse(run(CTL, ['--socket', c.node(node).socket, ...args]).stdout);

/** examples/manifests with the demo's paths: node-local networks live on n1 and use its daemon. */
function manifests(c: Cluster, file: string): Record<string, unknown>[] {
  const text = readFileSync(join(REPO_ROOT, 'examples/manifests', file), 'utf8')
    .replaceAll('/run/plexus/plexus.sock', c.node('n1').socket)
    .replaceAll('/var/lib/cni/plexus-demo', join(c.rootDir, 'host-local'))
    .replaceAll('"containerDir": "/var/run/plexus"', '"containerDir": "/mnt/plexus"');
  return yaml.loadAll(text).filter((d): d is Record<string, unknown> => d !== null && typeof d === 'object');
}

/** from_pod's counters for a pod, as operators see them (`plexusctl routed`). */
function counters(c: Cluster, pod: Pod): string {
  const view = ctl(c, pod.node, 'routed') as { endpoints: { pod?: string; counters?: Record<string, number> }[] };
  const n = view.endpoints.find((e) => e.pod === `${pod.namespace}/${pod.name}`)?.counters;
  return n ? `redirected ${n['redirected']}, routed ${n['routed']}, to the stack ${n['passed']}, spoofed ${n['spoofed_packets']}` : 'no counters';
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (network namespaces)');
  step('Building a two-node cluster in network namespaces (hack/cluster/)');
  const c = new Cluster({
    prefix: PREFIX, nodes: 2, datapath: 'routed', mode: 'native', ebpf: true, logLevel: 'warn', log: info,
    // n1 has "SR-IOV NICs": a fake sysfs and an emulated PF; the kubelet's PodResources socket does not exist
    // here, so the device manager's checkpoint file is what tells plexusd which VF the pod was given.
    nodeDaemon: (node) => node.name !== 'n1' ? {} : {
      sriov: {
        sysfsRoot: join(node.dir, 'sysfs'), emulatePf: true,
        podResources: { socket: join(node.dir, 'kubelet.sock'), checkpoint: join(node.dir, 'kubelet_internal_checkpoint'), timeoutMs: 500 },
      },
      // n1 runs plexus-dataplane too (started below from this same config).
      dpdk: { socketPath: join(node.dir, 'dataplane.sock'), socketDir: join(node.dir, 'dpdk'), filePrefix: `${PREFIX}-n1`, logLevel: 'warn' },
    },
  });
  const onSignal = (): void => void c.destroy().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let engine: Background | undefined;
  try {
    await c.up();
    engine = await startEngine(c);
    await runDemo(c, engine);
    await engine.stop();
  } catch (err) {
    await engine?.stop();
    console.error(`\ndemo failed: ${(err as Error).message}`);
    for (const n of c.nodes) console.error(`--- plexusd ${n.netns} log (last lines) ---\n${c.daemonLog(n, 3000)}`);
    await c.destroy().catch((e) => console.error(`cleanup: ${(e as Error).message}`));
    process.exit(1);
  }
  step('Tearing the cluster down');
  await c.destroy();
  const left = run('ip', ['netns', 'list']).stdout.split('\n').filter((l) => l.startsWith(`${PREFIX}-`));
  if (left.length) throw new Error(`namespaces left: ${left.join(', ')}`);
  info('no namespace, daemon, pin or state directory left');
  console.log('\nDemo complete: every network attached, reachable across nodes, and cleaned up.');
}

/** plexus-dataplane for n1, from n1's plexusd config (its `dpdk` section); stopped by PID at the end. */
async function startEngine(c: Cluster): Promise<Background> {
  const n1 = c.node('n1');
  const engine = new Background('ip', ['netns', 'exec', n1.netns, join(REPO_ROOT, 'bin/plexus-dataplane'), '--config', n1.configPath]);
  for (let i = 0; i < 150; i++) {
    if (!engine.alive) break;
    const ok = await daemonGet(join(n1.dir, 'dataplane.sock'), '/healthz').then((r) => r.status === 200, () => false);
    if (ok) return engine;
    await new Promise((r) => setTimeout(r, 100));
  }
  await engine.stop();
  throw new Error(`plexus-dataplane did not start: ${engine.output.slice(-2000)}`);
}

/**
 * A pod's DPDK application as the pod contract says (docs/dpdk.md): dpdk-testpmd in the pod's netns, its
 * socket directory mounted where the NAD's containerDir says (here in a mount namespace of its own, with a
 * tmpfs over /mnt: the demo rewrites containerDir to /mnt/plexus so nothing of the host's filesystem changes).
 */
function podApp(c: Cluster, pod: Pod, vdev: string, fwd: string[]): Background {
  const hostDir = join(c.node(pod.node).dir, 'dpdk', pod.uid);
  const testpmd = ['dpdk-testpmd', '--no-huge', '-m', '256', '--no-pci', '--lcores', '0@(0-1),1@0', '--file-prefix', `${PREFIX}-${pod.name}`,
    '--log-level', 'lib.eal:error', '--vdev', vdev, '--', '--total-num-mbufs', '8192', '--auto-start', '--stats-period', '1', ...fwd];
  return new Background('ip', ['netns', 'exec', pod.netns, 'unshare', '-m', 'sh', '-c',
    'mount -t tmpfs plx /mnt && mkdir -p /mnt/plexus && mount --bind "$1" /mnt/plexus && shift && exec "$@"', 'sh', hostDir, ...testpmd]);
}

const enginePorts = (c: Cluster): Promise<EnginePort[]> => new EngineClient(join(c.node('n1').dir, 'dataplane.sock')).ports();

async function runDemo(c: Cluster, _engine: Background): Promise<void> {
  step('Node-local extra networks on n1: a macvlan parent and two bridges; NADs and an IPPool in the manifests');
  const n1 = c.node('n1').netns;
  mkdirSync(join(c.rootDir, 'host-local'), { recursive: true });
  c.exec(n1, 'ip', ['link', 'add', 'plx-uplink', 'type', 'veth', 'peer', 'name', 'plx-uplink-p']);
  for (const l of ['plx-uplink', 'plx-uplink-p']) c.exec(n1, 'ip', ['link', 'set', l, 'up']);
  // A fixed MAC: a bridge otherwise takes its lowest port's, which changes as pods join and makes the bridge
  // plugin's CHECK (v1.1.1) fail for pods attached earlier.
  for (const [i, br] of ['plx-storage', 'plx-sig'].entries()) {
    c.exec(n1, 'ip', ['link', 'add', br, 'address', `02:00:00:00:be:0${i}`, 'type', 'bridge']);
    c.exec(n1, 'ip', ['link', 'set', br, 'up']);
  }
  await c.writeManifest('networks.yaml', manifests(c, 'networks.yaml'));
  info('NADs storage (bridge), telco-data (macvlan + plexus-ipam), signalling (bridge), sriov-n6 (plexus-sriov); IPPools');

  step('SR-IOV on n1: a PF with two VFs (FAKE: no SR-IOV hardware here; veth VFs behind a fake sysfs, an emulated PF)');
  const node1 = c.node('n1');
  const fake = new FakeSriov(join(node1.dir, 'sysfs'), n1, `${PREFIX}-n1-wire`);
  fake.addPf({ pci: '0000:af:00.0', name: 'ens6f0', vfs: [VF, { pci: '0000:af:06.1', netdev: 'ens6f0v1' }] });
  c.exec(fake.wire, 'ip', ['addr', 'add', '10.40.0.1/24', 'dev', FakeSriov.wireEnd(VF.netdev)]);
  // What the kubelet's device manager records when it gives upf one VF of the resource.
  writeFileSync(join(node1.dir, 'kubelet_internal_checkpoint'), JSON.stringify({
    Data: { PodDeviceEntries: [{ PodUID: UPF_UID, ContainerName: 'upf', ResourceName: SRIOV_RESOURCE, DeviceIDs: { '0': [VF.pci] }, AllocResp: '' }], RegisteredDevices: { [SRIOV_RESOURCE]: [VF.pci, '0000:af:06.1'] } },
    Checksum: 0,
  }));
  info(`PF ens6f0 (0000:af:00.0): VF 0 ${VF.pci} = ${VF.netdev}, VF 1 0000:af:06.1 = ens6f0v1; resource ${SRIOV_RESOURCE}; upf holds VF 0`);

  step('Creating pods and calling the CNI plugin as the runtime does (ADD)');
  const meta = new Map(manifests(c, 'pods.yaml').map((p: any) => [p.metadata.name as string, p.metadata as { annotations?: Record<string, string>; labels?: Record<string, string> }]));
  const placement: [string, string][] = [['web', 'n2'], ['cache', 'n1'], ['upf', 'n1'], ['cnf-a', 'n1'], ['cnf-b', 'n1']];
  const pods: Record<string, Pod> = {};
  for (const [name, node] of placement) {
    const { annotations: a = {}, labels } = meta.get(name) ?? {};
    pods[name] = await c.addPod(node, { name, ...(Object.keys(a).length ? { annotations: a } : {}), ...(labels ? { labels } : {}), ...(name === 'upf' ? { uid: UPF_UID } : {}) });
  }

  step('What each pod got (network-status from `plexusctl status`, cross-checked with `ip` in the pod)');
  const rows: Record<string, string>[] = [];
  const addr = new Map<string, string[]>();
  for (const [name, node] of placement) {
    const pod = pods[name]!;
    const status = ctl(c, node, 'status', `default/${name}`) as { name: string; interface: string; ips?: string[]; mac?: string; default?: boolean; 'device-info'?: { type: string } }[];
    const links = JSON.parse(c.exec(pod.netns, 'ip', ['-j', 'addr']).stdout) as { ifname: string; address: string }[];
    for (const s of status) {
      const userspace = s['device-info']?.type === 'vhost-user' || s['device-info']?.type === 'memif';
      const link = links.find((l) => l.ifname === s.interface);
      if (userspace) {
        rows.push({ pod: name, node, interface: s.interface, network: s.name, default: '', addresses: `(${s['device-info']!.type}, no kernel interface)` });
        continue;
      }
      if (!link) throw new Error(`${name}: ${s.interface} in network-status but not in the pod`);
      if (s.mac && link.address !== s.mac) throw new Error(`${name}: ${s.interface} MAC ${link.address} != status ${s.mac}`);
      rows.push({ pod: name, node, interface: s.interface, network: s.name, default: s.default ? 'yes' : '', addresses: (s.ips ?? []).join(' ') });
      addr.set(`${name}:${s.name}`, s.ips ?? []);
    }
  }
  table(rows);

  step('The SR-IOV VF in upf (`ip` in the pod, the PF as the emulated driver holds it, network-status device-info)');
  const n6 = (JSON.parse(c.exec(pods['upf']!.netns, 'ip', ['-j', '-d', 'link', 'show', 'n6']).stdout) as { ifname: string; address: string; operstate: string }[])[0]!;
  info(`upf n6: ${n6.address}, ${n6.operstate}; ${VF.netdev} is no longer in n1: ${c.exec(n1, 'ip', ['link', 'show', VF.netdev], { allowFail: true }).code !== 0}`);
  const pfVf = pfState(node1.dir)?.[0];
  info(`PF ens6f0 vf 0: vlan ${pfVf?.vlan}, spoofchk ${pfVf?.spoofchk ? 'on' : 'off'}, trust ${pfVf?.trust ? 'on' : 'off'}`);
  const upfStatus = ctl(c, 'n1', 'status', 'default/upf') as { interface: string; 'device-info'?: unknown }[];
  info(`device-info: ${JSON.stringify(upfStatus.find((s) => s.interface === 'n6')?.['device-info'])}`);
  const wirePing = c.exec(pods['upf']!.netns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '10.40.0.1'], { allowFail: true });
  info(`upf -> the VF's switch port 10.40.0.1 over n6: ${wirePing.code === 0 ? 'ok' : 'FAILED'}`);
  if (wirePing.code !== 0) throw new Error('no reachability over the SR-IOV VF');

  step('DPDK pods on plexus-dataplane: cnf-a (vhost-user, its socket) and cnf-b (memif, the engine\'s), testpmd as their applications');
  const dpStatus = (name: string) => (ctl(c, 'n1', 'status', `default/${name}`) as { interface: string; ips?: string[]; 'device-info'?: unknown }[])[1]!;
  info(`cnf-a device-info: ${JSON.stringify(dpStatus('cnf-a')['device-info'])}`);
  info(`cnf-b device-info: ${JSON.stringify(dpStatus('cnf-b')['device-info'])}`);
  // The addresses plexus-ipam gave them on dp-demo: cnf-a sends from its own to cnf-b's (what policy judges).
  const [ipA, ipB] = ['cnf-a', 'cnf-b'].map((n) => dpStatus(n).ips![0]!.split('/')[0]!);
  const apps = [
    podApp(c, pods['cnf-a']!, 'net_virtio_user0,path=/mnt/plexus/net1.sock,server=1,mac=02:00:00:00:da:0a', ['--forward-mode=txonly', '--eth-peer=0,02:00:00:00:da:0b', `--tx-ip=${ipA},${ipB}`]),
    podApp(c, pods['cnf-b']!, 'net_memif0,role=client,socket=/mnt/plexus/net1.sock,socket-abstract=no,id=0,mac=02:00:00:00:da:0b', ['--forward-mode=mac', '--eth-peer=0,02:00:00:00:da:0a', '--tx-first']),
  ];
  try {
    const byPod = (ports: EnginePort[], pod: Pod): Partial<NonNullable<EnginePort['counters']>> => ports.find((p) => p.name === `${pod.containerId.slice(0, 12)}-net1`)?.counters ?? {};
    let ports = await enginePorts(c);
    for (let i = 0; i < 100 && !((byPod(ports, pods['cnf-b']!)['txPackets'] ?? 0) > 10_000 && (byPod(ports, pods['cnf-b']!)['rxPackets'] ?? 0) > 10_000); i++) {
      await new Promise((r) => setTimeout(r, 200));
      ports = await enginePorts(c);
    }
    const a = byPod(ports, pods['cnf-a']!);
    const b = byPod(ports, pods['cnf-b']!);
    info(`engine port of cnf-a (vhost-user): received ${a['rxPackets']}, sent ${(a['txPackets'] ?? 0) + (a['txDropped'] ?? 0)} (txonly does not read them: ${a['txDropped']} dropped at its ring)`);
    const learned = (JSON.parse((await daemonGet(join(c.node('n1').dir, 'dataplane.sock'), '/v1/stats')).body) as { learned: number }).learned;
    info(`engine port of cnf-b (memif):      received ${b['rxPackets']}, sent ${b['txPackets']} (${b['txDropped']} dropped at its ring: on two shared cores cnf-b reads slower than cnf-a sends)`);
    info(`${learned} MACs learned; what cnf-a sent before cnf-b's MAC was known was flooded`);
    if (!((b['txPackets'] ?? 0) > 10_000 && (b['rxPackets'] ?? 0) > 10_000)) throw new Error('no packets between the DPDK pods');
    await dpdkPolicyDemo(c, (ports) => ({ a: byPod(ports, pods['cnf-a']!), b: byPod(ports, pods['cnf-b']!) }), ipA!, ipB!);
  } finally {
    for (const app of apps) await app.stop();
  }

  step('The routed datapath on n1 (`ip route show proto 180`, `tc filter`)');
  for (const fam of ['-4', '-6']) {
    for (const l of c.exec(n1, 'ip', [fam, 'route', 'show', 'proto', '180']).stdout.trim().split('\n')) info(l.replace(/\s+/g, ' '));
  }
  const cacheIf = pods['cache']!.result.interfaces?.[0]?.name ?? '';
  info(c.exec(n1, 'tc', ['filter', 'show', 'dev', cacheIf, 'ingress']).stdout.trim().split('\n').pop()!.trim());

  step('Reachability on every network (ping between pods)');
  const checks: [string, string, string, 4 | 6][] = [
    ['web', 'cache', 'k8s-pod-network', 4],
    ['web', 'cache', 'k8s-pod-network', 6],
    ['cache', 'upf', 'k8s-pod-network', 4],
    ['cache', 'upf', 'default/storage', 4],
    ['upf', 'cache', 'default/telco-data', 6],
    ['upf', 'cache', 'default/signalling', 4],
  ];
  for (const [from, to, net, fam] of checks) {
    const dst = (addr.get(`${to}:${net}`) ?? []).find((a) => (fam === 6) === a.includes(':'));
    if (!dst) throw new Error(`${to} has no IPv${fam} address on ${net}`);
    // Cross-node routes follow block claims within half a second.
    let r = c.exec(pods[from]!.netns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', dst], { allowFail: true });
    for (let i = 0; i < 10 && r.code !== 0; i++) r = c.exec(pods[from]!.netns, 'ping', ['-c', '1', '-W', '1', dst], { allowFail: true });
    const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
    const where = pods[from]!.node === pods[to]!.node ? 'same node' : 'across nodes';
    info(`${from.padEnd(5)} -> ${to.padEnd(5)} ${net.padEnd(19)} ${dst.padEnd(16)} ${where.padEnd(12)} ${r.code === 0 ? `ok (avg ${rtt?.[1] ?? '?'} ms)` : 'FAILED'}`);
    if (r.code !== 0) throw new Error(`no reachability from ${from} to ${to} on ${net}`);
  }
  info(`cache's from_pod counters (\`plexusctl routed\`): ${counters(c, pods['cache']!)}`);

  step('Restarting plexusd on n1 while web pings cache every 20 ms (the datapath does not need the daemon)');
  const cacheIp = addr.get('cache:k8s-pod-network')![0]!;
  const pinger = spawn('ip', ['netns', 'exec', pods['web']!.netns, 'ping', '-i', '0.02', '-c', '150', '-W', '1', cacheIp], { stdio: ['ignore', 'pipe', 'ignore'] });
  const out: Buffer[] = [];
  pinger.stdout.on('data', (d: Buffer) => out.push(d));
  const done = new Promise((r) => pinger.on('exit', r));
  await new Promise((r) => setTimeout(r, 300));
  await c.restartDaemon('n1');
  await done;
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(Buffer.concat(out).toString());
  info(`${summary?.[1]} sent, ${summary?.[2]} received across the restart`);
  if (!summary || summary[1] !== summary[2]) throw new Error('packets were lost across the daemon restart');

  await policyDemo(c, pods, addr);

  step('The IPAM service: one record per pod (`plexusctl ipam pods`)');
  for (const node of ['n1', 'n2']) {
    for (const rec of ctl(c, node, 'ipam', 'pods') as { namespace: string; name: string; addresses: { ip: string; network: string; ifName: string }[] }[]) {
      info(`${node}: ${rec.namespace}/${rec.name}: ${rec.addresses.map((a) => `${a.ip} (${a.network}, ${a.ifName})`).join(', ')}`);
    }
  }

  step('CHECK, then DEL every pod, and verify nothing is left');
  for (const p of Object.values(pods)) {
    const r = await c.checkPod(p);
    if (r.code !== 0) throw new Error(`CHECK of ${p.name} failed: ${r.stdout.trim()}`);
  }
  info('CHECK ok for every pod');
  for (const p of Object.values(pods)) await c.delPod(p, { keepNetns: true });
  for (const p of Object.values(pods)) {
    const left = (JSON.parse(c.exec(p.netns, 'ip', ['-j', 'link']).stdout) as { ifname: string }[]).filter((l) => l.ifname !== 'lo');
    if (left.length) throw new Error(`${p.name}: interfaces left after DEL: ${left.map((l) => l.ifname).join(', ')}`);
  }
  for (const n of c.nodes) {
    const veths = (JSON.parse(c.exec(n.netns, 'ip', ['-j', 'link']).stdout) as { ifname: string }[]).filter((l) => /^plx[0-9a-f]{11}$/.test(l.ifname));
    if (veths.length) throw new Error(`${n.netns}: pod veths left after DEL: ${veths.map((l) => l.ifname).join(', ')}`);
    if ((ctl(c, n.name, 'ipam', 'pods') as unknown[]).length) throw new Error(`${n.netns}: IPAM records left after DEL`);
  }
  info('DEL ok: pods have only lo, no pod veth on any node, every address released');
  const back = JSON.parse(c.exec(n1, 'ip', ['-j', 'link', 'show', VF.netdev]).stdout) as unknown[];
  const vfAfter = pfState(c.node('n1').dir)?.[0];
  if (back.length !== 1 || vfAfter?.vlan !== 0 || vfAfter.trust || !vfAfter.spoofchk) throw new Error('the VF was not restored by DEL');
  info(`SR-IOV: ${VF.netdev} back in n1 under its own name, PF settings restored (vlan 0, spoofchk on, trust off)`);
  const leftPorts = await enginePorts(c);
  if (leftPorts.length) throw new Error(`DPDK engine ports left after DEL: ${leftPorts.map((p) => p.name).join(', ')}`);
  info('DPDK: no engine port left, pod socket directories removed');
}

/**
 * MultiNetworkPolicy on a DPDK network, enforced in plexus-dataplane's poll loop: cnf-b closed to ingress on
 * default/dp-memif while cnf-a sends to it; the engine drops cnf-a's packets (its port's policyDropped grows,
 * cnf-b receives nothing more), `plexusctl observe` shows the drops, and removing the policy lets them through.
 */
type Counters = Partial<NonNullable<EnginePort['counters']>>;

async function dpdkPolicyDemo(c: Cluster, cnfs: (ports: EnginePort[]) => { a: Counters; b: Counters }, ipA: string, ipB: string): Promise<void> {
  step('MultiNetworkPolicy on the DPDK network default/dp-memif (in plexus-dataplane\'s poll loop): cnf-b closed to ingress');
  const closed = {
    apiVersion: 'k8s.cni.cncf.io/v1beta1', kind: 'MultiNetworkPolicy',
    metadata: { namespace: 'default', name: 'cnf-b-closed', annotations: { 'k8s.v1.cni.cncf.io/policy-for': 'default/dp-memif' } },
    spec: { podSelector: { matchLabels: { app: 'cnf-b' } }, policyTypes: ['Ingress'] },
  };
  const sample = async () => cnfs(await enginePorts(c));
  await c.writeManifest('policy.yaml', [closed]);
  let before = await sample();
  for (let i = 0; i < 40 && !((before.a['policyDropped'] ?? 0) > 0); i++) {
    await new Promise((r) => setTimeout(r, 250));
    before = await sample();
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = await sample();
  const dropped = (after.a['policyDropped'] ?? 0) - (before.a['policyDropped'] ?? 0);
  const reached = (after.b['txPackets'] ?? 0) - (before.b['txPackets'] ?? 0);
  info(`cnf-a (${ipA}) -> cnf-b (${ipB}) over one second: ${dropped} packets dropped by the engine at cnf-a's port, ${reached} delivered to cnf-b`);
  if (!(dropped > 1000 && reached === 0)) throw new Error('the MultiNetworkPolicy on default/dp-memif did not take effect in the engine');
  info('`plexusctl observe --network default/dp-memif --last 1` on n1:');
  for (const l of run(CTL, ['--socket', c.node('n1').socket, 'observe', '--network', 'default/dp-memif', '--last', '1']).stdout.trim().split('\n')) info(`  ${l}`);
  await c.writeManifest('policy.yaml', []);
  let open = false;
  for (let i = 0; i < 40 && !open; i++) {
    const x = await sample();
    await new Promise((r) => setTimeout(r, 250));
    open = ((await sample()).b['txPackets'] ?? 0) > (x.b['txPackets'] ?? 0);
  }
  if (!open) throw new Error('removing the MultiNetworkPolicy did not let cnf-a reach cnf-b again');
  info('policy removed: cnf-b receives again');
}

/** The emulated PF's VFs of ens6f0 (what a real driver would report through IFLA_VFINFO_LIST). */
/**
 * NetworkPolicy on the cluster network, enforced by the eBPF policy program ahead of from_pod on n1: a default
 * deny for ingress in namespace default, then an allow rule for upf -> cache; `plexusctl observe` shows the
 * dropped and the allowed flows. Then a MultiNetworkPolicy on the secondary network default/storage (enforced
 * inside the pods, on their storage interface): upf closed on storage while the cluster network stays open.
 */
async function policyDemo(c: Cluster, pods: Record<string, Pod>, addr: Map<string, string[]>): Promise<void> {
  const cacheIp = addr.get('cache:k8s-pod-network')!.find((a) => a.includes('.'))!;
  const reach = (from: string): boolean => c.exec(pods[from]!.netns, 'ping', ['-c', '1', '-W', '1', cacheIp], { allowFail: true }).code === 0;
  const np = (name: string, spec: object) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'default', name }, spec });
  const denyAll = np('default-deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
  const allowUpf = np('cache-from-upf', { podSelector: { matchLabels: { app: 'cache' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'upf' } } }] }] });
  /** Policies take effect within moments of the daemon reading the manifest: poll the ping a few times. */
  const settle = async (from: string, want: boolean): Promise<boolean> => {
    for (let i = 0; i < 20; i++) {
      if (reach(from) === want) return want;
      await new Promise((r) => setTimeout(r, 250));
    }
    return !want;
  };

  step('NetworkPolicy on the cluster network (eBPF ahead of from_pod): default deny for ingress, then allow upf -> cache');
  await c.writeManifest('policy.yaml', [denyAll]);
  info(`policy default/default-deny-ingress: upf -> cache ping ${(await settle('upf', false)) ? 'ALLOWED (wrong)' : 'denied'}`);
  await c.writeManifest('policy.yaml', [denyAll, allowUpf]);
  const upfOk = await settle('upf', true);
  info(`plus default/cache-from-upf:          upf -> cache ping ${upfOk ? 'allowed' : 'DENIED (wrong)'}; cache -> upf ping ${c.exec(pods['cache']!.netns, 'ping', ['-c', '1', '-W', '1', addr.get('upf:k8s-pod-network')!.find((a) => a.includes('.'))!], { allowFail: true }).code === 0 ? 'ALLOWED (wrong)' : 'denied'}`);
  if (!upfOk) throw new Error('the allow rule did not take effect');
  info('`plexusctl observe --to-pod default/cache --last 4` on n1:');
  for (const l of run(CTL, ['--socket', c.node('n1').socket, 'observe', '--to-pod', 'default/cache', '--last', '4']).stdout.trim().split('\n')) info(`  ${l}`);
  await c.writeManifest('policy.yaml', []);
  if (!(await settle('upf', true))) throw new Error('removing the policies did not restore reachability');
  info('policies removed: every pod reachable again');

  step('MultiNetworkPolicy on the secondary network default/storage (eBPF inside each pod, on its storage interface)');
  const upfOn = (net: string): string => addr.get(`upf:${net}`)!.find((a) => a.includes('.'))!;
  const cacheTo = (net: string): boolean => c.exec(pods['cache']!.netns, 'ping', ['-c', '1', '-W', '1', upfOn(net)], { allowFail: true }).code === 0;
  const closed = {
    apiVersion: 'k8s.cni.cncf.io/v1beta1', kind: 'MultiNetworkPolicy',
    metadata: { namespace: 'default', name: 'upf-storage-closed', annotations: { 'k8s.v1.cni.cncf.io/policy-for': 'default/storage' } },
    spec: { podSelector: { matchLabels: { app: 'upf' } }, policyTypes: ['Ingress'] },
  };
  await c.writeManifest('policy.yaml', [closed]);
  let denied = false;
  for (let i = 0; i < 20 && !(denied = !cacheTo('default/storage')); i++) await new Promise((r) => setTimeout(r, 250));
  info(`policy default/upf-storage-closed: cache -> upf ping on default/storage ${denied ? 'denied' : 'ALLOWED (wrong)'}; on the cluster network ${cacheTo('k8s-pod-network') ? 'allowed' : 'DENIED (wrong)'}`);
  if (!denied) throw new Error('the MultiNetworkPolicy did not take effect');
  const upfStorage = 'net1'; // storage is the first network upf's annotation asks for
  info(`tc filter on upf's ${upfStorage} (inside the pod): ${c.exec(pods['upf']!.netns, 'tc', ['filter', 'show', 'dev', upfStorage, 'ingress']).stdout.trim().split('\n').pop()!.trim()}`);
  info('`plexusctl observe --network default/storage --last 2` on n1:');
  for (const l of run(CTL, ['--socket', c.node('n1').socket, 'observe', '--network', 'default/storage', '--last', '2']).stdout.trim().split('\n')) info(`  ${l}`);
  await c.writeManifest('policy.yaml', []);
  let open = false;
  for (let i = 0; i < 20 && !(open = cacheTo('default/storage')); i++) await new Promise((r) => setTimeout(r, 250));
  if (!open) throw new Error('removing the MultiNetworkPolicy did not restore reachability on default/storage');
  info('policy removed: cache reaches upf on default/storage again');
}

function pfState(nodeDir: string): { vlan: number; spoofchk?: boolean; trust?: boolean }[] | undefined {
  try {
    return (JSON.parse(readFileSync(join(nodeDir, 'sysfs', 'plexus-emulated-pf.json'), 'utf8')) as { pfs: Record<string, { vlan: number }[]> }).pfs['ens6f0'];
  } catch {
    return undefined;
  }
}

main().catch((e) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exit(1);
});
