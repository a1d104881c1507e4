/**
 * bench/dpdk: pod-to-pod packets through a software switch, in one run, rounds alternating, 64-byte packets:
 *
 *   cross-connect     testpmd io-forwarding two vhost-user ports into each other: the floor of any switch
 *   plexus-dataplane  the engine, two vhost-user ports on one network (MAC learning)
 *   plexus-dataplane policy   the same with a MultiNetworkPolicy of 1,000 rules on pod b (isolated both ways,
 *                     the pods' flow allowed): every packet parsed, its source checked, its connection looked up
 *   ovs-dpdk flows    OVS-DPDK (openvswitch-switch-dpdk, netdev datapath, dpdkvhostuser ports), in_port flows
 *   ovs-dpdk NORMAL   the same with the NORMAL (learning switch) action
 *
 * The same pods and the same core budget for each: the pods are one testpmd with two virtio-user ports (clients of
 * the switch's sockets), mac-forwarding into each other after a first burst, on CPU 0; the switch's polling
 * core is CPU 1 (OVS: pmd-cpu-mask 0x2, its other threads on CPU 0). Figures: Mpps per direction (the pods'
 * Rx-pps, median of each round's last periods) as ratios to the cross-connect and to OVS with flows; core cycles
 * per packet (the switch core's clock over packets switched: what the whole core costs per packet) and, where
 * the switch measures it, processing cycles per packet (cycles of poll iterations that moved packets, OVS's
 * own definition, which leaves out idle polling: the switch's headroom when the pods are the limit).
 *
 * Then the cost of adaptive polling: ICMP round trips between two namespaces through the engine (af_packet ports
 * on veths), one ping every 200 ms (the engine asleep between) against a ping every 0.5 ms (awake), with a Linux
 * bridge in the same place as the reference for the machine's own wake-up; and the idle engine's CPU.
 *
 * OVS-DPDK needs hugepages (it runs EAL --in-memory): the bench raises vm.nr_hugepages to 1024 for its rounds
 * and puts the old value back; where the kernel grants fewer, the OVS rows are left out and the report says so.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Background, daemonGet, must, run } from '../../hack/cluster';
import { EngineClient } from '../../dpdk-native/engine-client';
import type { EnginePolicy } from '../../dpdk-native/policy-wire';
import type { PortSpec } from '../../dpdk-native/ports';
import { barSvg, mdTable, median, percentile, round, writeResults } from '../lib/stats';

const ROOT = resolve(__dirname, '../..');
const ROUNDS = Number(process.env['DPDK_ROUNDS'] ?? 7);
const SECONDS = Number(process.env['DPDK_SECONDS'] ?? 6);
const MAX_SLEEP_US = 200; // the engine's default
const HUGEPAGES = 1024; // 2 GiB of 2 MiB pages: OVS's dpdk-socket-mem 1024 and room to spare
const id = randomBytes(3).toString('hex');
const dir = mkdtempSync(join(tmpdir(), `pxb-dpdk-${id}-`));
const sockA = join(dir, 'a.sock');
const sockB = join(dir, 'b.sock');

const VARIANTS = ['cross-connect', 'plexus-dataplane', 'plexus-dataplane policy', 'ovs-dpdk flows', 'ovs-dpdk NORMAL'] as const;
const POLICY_RULES = 1000;
type Variant = (typeof VARIANTS)[number];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every switch gets the same memory: hugepages where the kernel granted them (OVS needs them), else none. */
let switchHugepages = false;

/** A running switch: its sockets exist; `window` marks the start of the measured period, `processing` reads it. */
interface Switch {
  sockets: [string, string];
  window(): Promise<void>;
  /** Processing cycles per packet over the window, where the switch counts them. */
  processing(): Promise<number | undefined>;
  stop(): Promise<void>;
  output(): string;
}

/** The two pods' application: virtio-user clients of the switch's sockets, mac forwarding after one burst. */
function pods(sockets: [string, string]): Background {
  return new Background('dpdk-testpmd', [
    '--no-huge', '-m', '512', '--no-pci', '--lcores', '0@(0-1),1@0', '--file-prefix', `pxbp${id}`, '--log-level', 'lib.eal:error',
    '--vdev', `net_virtio_user0,path=${sockets[0]},mac=02:00:00:00:ee:0a`,
    '--vdev', `net_virtio_user1,path=${sockets[1]},mac=02:00:00:00:ee:0b`,
    '--', '--total-num-mbufs', '16384', '--forward-mode=mac', '--eth-peer=0,02:00:00:00:ee:0b', '--eth-peer=1,02:00:00:00:ee:0a',
    '--auto-start', '--tx-first', '--stats-period', '1',
  ]);
}

/** The floor: testpmd serving both sockets and io-forwarding port 0 <-> port 1 on CPU 1. */
async function crossConnect(): Promise<Switch> {
  const proc = new Background('dpdk-testpmd', [
    ...(switchHugepages ? ['--in-memory'] : ['--no-huge']), '-m', '512', '--no-pci', '--lcores', '0@(0-1),1@1', '--file-prefix', `pxbx${id}`, '--log-level', 'lib.eal:error',
    '--vdev', `net_vhost0,iface=${sockA},queues=1`, '--vdev', `net_vhost1,iface=${sockB},queues=1`,
    '--', '--total-num-mbufs', '16384', '--forward-mode=io', '--auto-start', '--stats-period', '1', // periodic stats keep a stdin-less testpmd running
  ]);
  await sleep(1500);
  return { sockets: [sockA, sockB], window: async () => undefined, processing: async () => undefined, stop: () => proc.stop(), output: () => proc.output };
}

async function startEngine(config: Record<string, unknown>, netns?: string): Promise<{ proc: Background; client: EngineClient }> {
  const socket = join(dir, `engine-${randomBytes(2).toString('hex')}.sock`);
  const file = join(dir, 'engine.json');
  writeFileSync(file, JSON.stringify({ dpdk: { socketPath: socket, socketDir: join(dir, 's'), filePrefix: `pxbe${id}`, logLevel: 'warn', ...config } }));
  const cmd = [join(ROOT, 'bin/plexus-dataplane'), '--config', file];
  const proc = netns ? new Background('ip', ['netns', 'exec', netns, ...cmd]) : new Background(cmd[0]!, cmd.slice(1));
  for (let i = 0; i < 100 && !(await daemonGet(socket, '/healthz').then((r) => r.status === 200, () => false)); i++) await sleep(100);
  if (!proc.alive) throw new Error(`plexus-dataplane did not start:\n${proc.output.slice(-1500)}`);
  return { proc, client: new EngineClient(socket) };
}

async function engineStats(client: EngineClient): Promise<{ packets: number; busyCycles: number; tscHz: number }> {
  const r = await daemonGet(client.socketPath, '/v1/stats');
  return JSON.parse(r.body) as { packets: number; busyCycles: number; tscHz: number };
}

/**
 * The policy the policy variant gives the engine, in the form plexusd sends: pod b (testpmd's destination address,
 * 198.18.0.2) isolated both ways by POLICY_RULES rules naming other identities' TCP ports, and one allowing UDP
 * port 9 with the world (testpmd's flow: both directions carry 198.18.0.1:9 -> 198.18.0.2:9, mac forwarding
 * keeps the addresses); every other pod of the rules in the ipcache.
 */
function benchPolicy(): EnginePolicy {
  const rules: EnginePolicy['rules'] = [];
  const ipcache: EnginePolicy['ipcache'] = [];
  for (let i = 0; i < POLICY_RULES; i++) {
    ipcache.push(['bench', `10.0.${i >> 8}.${i & 255}`, 16 + i]);
    rules.push([0, 16 + i, 6, 1000 + i, 56], [1, 16 + i, 6, 1000 + i, 56]);
  }
  rules.push([0, 1, 17, 9, 56], [1, 1, 17, 9, 56]);
  return { revision: 'bench', networks: ['bench'], endpoints: [{ network: 'bench', id: 0, ips: ['198.18.0.2'], ports: ['pod-b'], isolated: ['ingress', 'egress'] }], otherPorts: ['pod-a'], ipcache, cidrs: [], rules };
}

async function plexusDataplane(policy = false): Promise<Switch> {
  const { proc, client } = await startEngine({ hugepages: switchHugepages });
  if (policy) await client.putPolicy(benchPolicy());
  for (const [name, sock] of [['pod-a', sockA], ['pod-b', sockB]] as const) {
    await client.put({ name, network: 'bench', kind: 'vhost-user', socket: sock, role: 'server' });
  }
  let start = { packets: 0, busyCycles: 0, tscHz: 1 };
  return {
    sockets: [sockA, sockB],
    window: async () => void (start = await engineStats(client)),
    processing: async () => {
      const end = await engineStats(client);
      return (end.busyCycles - start.busyCycles) / Math.max(1, end.packets - start.packets);
    },
    stop: () => proc.stop(),
    output: () => proc.output,
  };
}

/** A private ovsdb-server and ovs-vswitchd (DPDK build) in their own run directory, stopped by PID. */
async function ovsDpdk(action: 'flows' | 'NORMAL'): Promise<Switch> {
  const rundir = join(dir, `ovs-${randomBytes(2).toString('hex')}`);
  mkdirSync(rundir);
  const env = { ...process.env, OVS_RUNDIR: rundir, OVS_DBDIR: rundir, OVS_LOGDIR: rundir };
  const db = `unix:${join(rundir, 'db.sock')}`;
  await must('ovsdb-tool', ['create', join(rundir, 'conf.db'), '/usr/share/openvswitch/vswitch.ovsschema']);
  const ovsdb = new Background('ovsdb-server', [join(rundir, 'conf.db'), `--remote=punix:${join(rundir, 'db.sock')}`, `--unixctl=${join(rundir, 'ovsdb.ctl')}`, '--no-chdir'], env);
  const vsctl = (...args: string[]) => must('ovs-vsctl', [`--db=${db}`, '--timeout=20', ...args], { env });
  for (let i = 0; i < 50 && !(await vsctl('--no-wait', 'init').then(() => true, () => false)); i++) await sleep(100);
  await vsctl('--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:dpdk-init=true', 'other_config:dpdk-socket-mem=1024',
    'other_config:pmd-cpu-mask=0x2', 'other_config:dpdk-lcore-mask=0x1', `other_config:dpdk-extra=--file-prefix=pxbo${id} --no-pci`);
  const vswitchd = new Background('/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk', [db, `--unixctl=${join(rundir, 'vswitchd.ctl')}`, '--no-chdir', `--log-file=${join(rundir, 'vswitchd.log')}`], env);
  const stop = async () => {
    await vswitchd.stop(5000);
    await ovsdb.stop();
  };
  try {
    await vsctl('add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev');
    await vsctl('add-port', 'br0', 'vhua', '--', 'set', 'Interface', 'vhua', 'type=dpdkvhostuser', 'ofport_request=1');
    await vsctl('add-port', 'br0', 'vhub', '--', 'set', 'Interface', 'vhub', 'type=dpdkvhostuser', 'ofport_request=2');
    const mgmt = `unix:${join(rundir, 'br0.mgmt')}`;
    await must('ovs-ofctl', ['del-flows', mgmt], { env });
    const flows = action === 'flows' ? ['in_port=1,actions=output:2', 'in_port=2,actions=output:1'] : ['actions=NORMAL'];
    for (const f of flows) await must('ovs-ofctl', ['add-flow', mgmt, f], { env });
  } catch (e) {
    const log = (() => { try { return readFileSync(join(rundir, 'vswitchd.log'), 'utf8').slice(-1500); } catch { return ''; } })();
    await stop();
    throw new Error(`OVS-DPDK set-up failed: ${(e as Error).message}\n${log}`);
  }
  const appctl = (...args: string[]) => must('ovs-appctl', ['-t', join(rundir, 'vswitchd.ctl'), ...args], { env });
  return {
    sockets: [join(rundir, 'vhua'), join(rundir, 'vhub')],
    window: async () => void (await appctl('dpif-netdev/pmd-stats-clear')),
    processing: async () => {
      const m = /avg processing cycles per packet: ([\d.]+)/.exec(await appctl('dpif-netdev/pmd-stats-show'));
      return m ? Number(m[1]) : undefined;
    },
    stop,
    output: () => vswitchd.output,
  };
}

/** Mpps per direction from the pods' testpmd: the median Rx-pps of each port over the round's last periods. */
function rxMpps(output: string): [number, number] {
  const per: [number[], number[]] = [[], []];
  const re = /NIC statistics for port (\d)[\s\S]*?Rx-pps:\s+(\d+)/g;
  for (let m = re.exec(output); m; m = re.exec(output)) per[Number(m[1])]?.push(Number(m[2]));
  const last = (xs: number[]) => median(xs.slice(-Math.max(1, SECONDS - 2))) / 1e6;
  return [last(per[0]), last(per[1])];
}

/** CPU share of one core used by `pid` over `ms` (utime + stime from /proc). */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const ticks = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).reduce((a, b) => a + Number(b), 0);
  const t0 = ticks();
  await sleep(ms);
  return (ticks() - t0) / 100 / (ms / 1000);
}

interface Round {
  mpps: [number, number];
  processingCycles?: number;
}

async function round1(variant: Variant): Promise<Round> {
  const sw = variant === 'cross-connect' ? await crossConnect() : variant.startsWith('plexus-dataplane') ? await plexusDataplane(variant === 'plexus-dataplane policy') : await ovsDpdk(variant === 'ovs-dpdk flows' ? 'flows' : 'NORMAL');
  const app = pods(sw.sockets);
  try {
    await sleep(2000); // connected, learned, steady
    await sw.window();
    await sleep((SECONDS - 2) * 1000);
    const processingCycles = await sw.processing();
    const mpps = rxMpps(app.output);
    if (mpps.some((x) => !Number.isFinite(x) || x === 0)) throw new Error(`${variant}: no traffic in the pods' testpmd:\n${app.output.slice(-1500)}\n--- switch ---\n${sw.output().slice(-1500)}`);
    return { mpps, ...(processingCycles !== undefined ? { processingCycles } : {}) };
  } finally {
    await app.stop();
    await sw.stop();
    rmSync(sockA, { force: true });
    rmSync(sockB, { force: true });
  }
}

/** Sets vm.nr_hugepages to at least `want`; returns the value to put back, and whether the kernel granted them. */
function raiseHugepages(want: number): { restore: () => void; granted: boolean } {
  const file = '/proc/sys/vm/nr_hugepages';
  const before = Number(readFileSync(file, 'utf8'));
  if (before >= want) return { restore: () => undefined, granted: true };
  writeFileSync(file, String(want));
  const granted = Number(readFileSync(file, 'utf8')) >= want;
  return { restore: () => writeFileSync(file, String(before)), granted };
}

/**
 * Round trips between two namespaces with a veth each into a third, joined there by the engine (af_packet ports
 * on one network) or, as the reference, by a Linux bridge; a ping every 200 ms (a switch asleep between, and
 * the CPUs idle) against a ping every 0.5 ms. The bridge's difference is the machine's own (idle CPUs waking);
 * what the engine adds beyond it is what adaptive polling costs. RTTs in µs.
 */
type Rtts = { asleepUs: number[]; awakeUs: number[] };
async function wakeUpLatency(maxSleepUs: number): Promise<{ engine: Rtts; bridge: Rtts }> {
  const [node, pa, pb] = [`pxbn-${id}`, `pxba-${id}`, `pxbb-${id}`];
  const ping = (count: number, interval: string) => {
    const out = run('ip', ['netns', 'exec', pa, 'ping', '-n', '-c', String(count), '-i', interval, '-W', '1', '10.250.0.2']).stdout;
    return [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  };
  const measure = (): Rtts => {
    ping(3, '0.2'); // ARP resolved, MACs learned
    return { asleepUs: ping(30, '0.2'), awakeUs: ping(3000, '0.0005') };
  };
  try {
    for (const ns of [node, pa, pb]) run('ip', ['netns', 'add', ns]);
    for (const [pod, side, addr] of [[pa, 'va', '10.250.0.1/24'], [pb, 'vb', '10.250.0.2/24']] as const) {
      run('ip', ['link', 'add', 'eth0', 'netns', pod, 'type', 'veth', 'peer', 'name', side, 'netns', node]);
      run('ip', ['-n', pod, 'addr', 'add', addr, 'dev', 'eth0']);
      run('ip', ['-n', pod, 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', node, 'link', 'set', side, 'up']);
    }
    const { proc, client } = await startEngine({ maxSleepUs }, node);
    let engine: Rtts;
    try {
      for (const side of ['va', 'vb']) await client.put({ name: side, network: 'lat', kind: 'af_packet', iface: side } as PortSpec);
      engine = measure();
    } finally {
      await proc.stop();
    }
    run('ip', ['-n', node, 'link', 'add', 'br0', 'type', 'bridge']);
    for (const side of ['va', 'vb']) run('ip', ['-n', node, 'link', 'set', side, 'master', 'br0']);
    run('ip', ['-n', node, 'link', 'set', 'br0', 'up']);
    return { engine, bridge: measure() };
  } finally {
    for (const ns of [node, pa, pb]) run('ip', ['netns', 'del', ns], { allowFail: true });
  }
}

async function main(): Promise<void> {
  const results = Object.fromEntries(VARIANTS.map((v) => [v, [] as Round[]])) as Record<Variant, Round[]>;
  const huge = raiseHugepages(HUGEPAGES);
  switchHugepages = huge.granted;
  const variants = VARIANTS.filter((v) => huge.granted || !v.startsWith('ovs'));
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of r % 2 ? [...variants].reverse() : variants) {
        results[v].push(await round1(v));
        const last = results[v].at(-1)!;
        process.stderr.write(`dpdk: round ${r + 1} ${v}: ${last.mpps.map((x) => x.toFixed(2)).join(' / ')} Mpps${last.processingCycles ? `, ${Math.round(last.processingCycles)} processing cycles/packet` : ''}\n`);
      }
    }
  } finally {
    huge.restore();
  }
  try {
    const latency = await wakeUpLatency(MAX_SLEEP_US);
    // The idle engine: two ports, no peer, no traffic.
    const idle = await startEngine({});
    for (const [name, sock] of [['pod-a', sockA], ['pod-b', sockB]] as const) await idle.client.put({ name, network: 'bench', kind: 'vhost-user', socket: sock, role: 'server' });
    await sleep(1000);
    const idleCpu = await cpuShare(idle.proc.pid!, 5000);
    const tscHz = (await engineStats(idle.client)).tscHz;
    await idle.proc.stop();
    report(results, variants, idleCpu, latency, tscHz, huge.granted);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results: Record<Variant, Round[]>, variants: Variant[], idleCpu: number, latency: { engine: Rtts; bridge: Rtts }, tscHz: number, ovs: boolean): void {
  const mpps = (v: Variant, i: 0 | 1) => median(results[v].map((x) => x.mpps[i]));
  const total = (v: Variant) => mpps(v, 0) + mpps(v, 1);
  const coreCycles = (v: Variant) => tscHz / (total(v) * 1e6);
  const processing = (v: Variant) => {
    const xs = results[v].flatMap((x) => (x.processingCycles !== undefined ? [x.processingCycles] : []));
    return xs.length ? median(xs) : undefined;
  };
  // Ratios are taken within each round (the switches of one round run minutes apart at most, so a machine whose
  // speed drifts over the run moves them together) and the median over rounds is reported.
  const ratio = (v: Variant, to: Variant) => median(results[v].map((x, r) => Math.min(x.mpps[0] / results[to][r]!.mpps[0], x.mpps[1] / results[to][r]!.mpps[1])));
  const rows = variants.map((v) => {
    const p = processing(v);
    return [v, round(mpps(v, 0), 2), round(mpps(v, 1), 2), round(ratio(v, 'cross-connect'), 2), ovs ? round(ratio(v, 'ovs-dpdk flows'), 2) : '-', Math.round(coreCycles(v)), p === undefined ? '-' : Math.round(p)];
  });
  const vsFloor = ratio('plexus-dataplane', 'cross-connect');
  const policyCost = ratio('plexus-dataplane policy', 'plexus-dataplane');
  const vsOvs = ovs ? ratio('plexus-dataplane', 'ovs-dpdk flows') : undefined;
  const p50 = (xs: number[]) => percentile(xs, 50);
  const p99 = (xs: number[]) => percentile(xs, 99);
  const lat = (r: Rtts) => ({ asleepP50: p50(r.asleepUs), asleepP99: p99(r.asleepUs), awakeP50: p50(r.awakeUs), awakeP99: p99(r.awakeUs) });
  const [le, lb] = [lat(latency.engine), lat(latency.bridge)];
  const wakeCost = le.asleepP50 - le.awakeP50 - (lb.asleepP50 - lb.awakeP50);
  const json = {
    rounds: ROUNDS, seconds: SECONDS, packetBytes: 64, tscHz, results, idleEngineCpu: idleCpu, wakeUp: { maxSleepUs: MAX_SLEEP_US, engine: le, bridge: lb, costP50Us: wakeCost },
    policy: { rules: POLICY_RULES, vsNoPolicy: policyCost },
    goals: { vsCrossConnect: { want: 0.8, got: vsFloor, met: vsFloor >= 0.8 }, vsOvsFlows: vsOvs === undefined ? 'not measured (no hugepages)' : { want: 1, got: vsOvs, met: vsOvs >= 0.98 } },
  };
  const us = (x: number) => `${Math.round(x)} µs`;
  const md = `# bench/dpdk\n\nPod-to-pod through the switch, 64-byte packets, ${ROUNDS} rounds of ${SECONDS} s, alternating. The pods: one ` +
    `testpmd with two virtio-user ports (CPU 0); the switch's polling core: CPU 1 (OVS: pmd-cpu-mask 0x2). Mpps per direction ` +
    `(median of rounds); ratios of the weaker direction to the cross-connect (the floor of a software switch) and to OVS-DPDK with ` +
    `explicit flows, taken within each round (the machine's speed drifts over a run) and the median reported. Core cycles per packet: the switch core's ${round(tscHz / 1e9, 2)} GHz over packets switched (both directions). ` +
    `Processing cycles per packet: cycles of poll iterations that moved packets (OVS's pmd-stats definition; testpmd does not split it).\n\n` +
    mdTable(['switch', 'a->b Mpps', 'b->a Mpps', 'vs cross-connect', 'vs OVS flows', 'core cycles/pkt', 'processing cycles/pkt'], rows) +
    `\nGoals: >= 0.8x the cross-connect: ${vsFloor >= 0.8 ? 'met' : 'NOT met'} (${round(vsFloor, 2)}); ` +
    (vsOvs === undefined ? 'OVS-DPDK not measured: the kernel did not grant the hugepages it needs.\n' : `at least OVS-DPDK with flows: ${vsOvs >= 0.98 ? 'met' : 'NOT met'} (${round(vsOvs, 2)}; within 2% counts as even).\n`) +
    `When every switch comes close to the cross-connect, the pods' single testpmd core is the limit, and processing cycles per packet ` +
    `say which switch has more headroom.\n\n` +
    `MultiNetworkPolicy in the engine (${POLICY_RULES} rules on pod b, isolated both ways, the pods' flow allowed: every packet ` +
    `parsed, its source checked against its port, its connection looked up): ${round(policyCost, 2)} of the engine's rate without a policy.\n\n` +
    `Adaptive polling (maxSleepUs ${MAX_SLEEP_US}): ICMP round trips between two namespaces through the engine (af_packet ports on ` +
    `veths) and, as the reference, through a Linux bridge; a ping every 200 ms (switch asleep, CPUs idle) and every 0.5 ms (awake).\n\n` +
    mdTable(['path', 'every 200 ms p50', 'p99', 'every 0.5 ms p50', 'p99'], [
      ['plexus-dataplane', us(le.asleepP50), us(le.asleepP99), us(le.awakeP50), us(le.awakeP99)],
      ['Linux bridge', us(lb.asleepP50), us(lb.asleepP99), us(lb.awakeP50), us(lb.awakeP99)],
    ]) +
    `\nWhat the first packet after a pause pays for the engine's sleep, beyond the machine's own wake-up: ${us(wakeCost)} at p50 ` +
    `(at most maxSleepUs by design). Idle plexus-dataplane (two ports, no traffic): ${round(idleCpu * 100, 1)}% of one core.\n\n` +
    `![Mpps](dpdk.svg)\n`;
  const paths = writeResults('dpdk', json, md);
  writeFileSync(join(resolve(paths.md, '..'), 'dpdk.svg'), barSvg('Pod to pod, 64 B, Mpps per direction', [{ name: 'a->b', color: '#1f77b4' }, { name: 'b->a', color: '#d62728' }],
    variants.map((v) => ({ label: v, values: [mpps(v, 0), mpps(v, 1)] })), { yLabel: 'Mpps' }));
  process.stdout.write(md);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).message}\n`);
  process.exit(1);
});
