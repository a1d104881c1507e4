/**
 * bench/cni-add: ADD then DEL of a pod with the cluster network and two extra networks, through Plexus
 * (bin/plexus -> plexusd -> reference plugins) and, in the same run, the same reference plugins executed
 * directly in sequence, as a runtime would run three conflists. Plexus runs twice over: as configured by
 * default, and with `prestartDelegates: false`, whose ADDs give the breakdown of Plexus's own costs (with
 * prestart, part of the delegates' time is spent before the daemon hands them their config). Iterations
 * rotate between the three so drift hits all alike. Every process is started straight inside the node netns,
 * as a runtime starts a plugin (posix_spawn), so no side pays for an `ip netns exec` wrapper. Also measures
 * plexusd's RSS idle and with 100 pods.
 *
 * Goals: issue 2, Plexus overhead p50 <= 10 ms and p99 <= 25 ms; issue 8, ADD at most 1.05x the reference
 * plugins' own time at p50.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { withNetns } from '../../kernel';
import { execInNetns, type ExecResult } from '../lib/netns';
import { cdfSvg, mdTable, round, rssMiB, summarize, writeResults } from '../lib/stats';
import { run } from '../../hack/cluster';

const ROOT = resolve(__dirname, '../..');
const ITERATIONS = Number(process.env['PLEXUS_BENCH_ITERATIONS'] ?? 100);
const WARMUP = 5;
const PODS_FOR_RSS = Number(process.env['PLEXUS_BENCH_PODS'] ?? 100);
const CNI_DIR = '/usr/lib/cni';
const id = randomBytes(3).toString('hex');
const NODE = `plxb-${id}-node`;
const nodePath = `/var/run/netns/${NODE}`;
const dir = mkdtempSync(join(tmpdir(), `plexus-bench-${id}-`));
const hostLocal = join(dir, 'host-local');
const createdNetns: string[] = [NODE];

const sh = (cmd: string, args: string[]): void => void run(cmd, args);
const ipam = (subnet: string) => ({ type: 'host-local', dataDir: hostLocal, ranges: [[{ subnet }]] });

const cluster = { cniVersion: '1.0.0', name: 'cluster', plugins: [{ type: 'ptp', ipam: { ...ipam('10.98.0.0/16'), routes: [{ dst: '0.0.0.0/0' }] } }] };
const extra1 = { cniVersion: '1.0.0', name: 'extra1', type: 'bridge', bridge: 'br-bench', ipam: ipam('10.97.0.0/16') };
const extra2 = { cniVersion: '1.0.0', name: 'extra2', type: 'macvlan', master: 'uplink0', mode: 'bridge', ipam: ipam('10.96.0.0/16') };
// What the runtime would run directly: three networks, each a single plugin, with libcni's injections.
const direct = [
  { ifName: 'eth0', conf: { ...cluster.plugins[0], name: 'cluster', cniVersion: '1.0.0' } },
  { ifName: 'net1', conf: extra1 },
  { ifName: 'net2', conf: extra2 },
];

type Run = ExecResult;

const exec = (bin: string, env: Record<string, string>, input: string): Promise<Run> => execInNetns(nodePath, bin, env, input);

function cniEnv(command: string, containerId: string, netns: string, ifName: string, pod: string): Record<string, string> {
  return {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: ifName,
    CNI_PATH: CNI_DIR,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod}`,
  };
}

async function must(p: Promise<Run>, what: string): Promise<Run> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stdout}`);
  return r;
}

/** One plexusd of the run: its own socket, state and log. */
interface Daemon {
  name: string;
  dir: string;
  socket: string;
  /** The runtime's conflist entry for it. */
  conf: string;
  proc?: ChildProcess;
}
function daemonAt(name: string): Daemon {
  const d = join(dir, name);
  const socket = join(d, 'plexus.sock');
  return { name, dir: d, socket, conf: JSON.stringify({ cniVersion: '1.0.0', name: 'plexus', type: 'plexus', socketPath: socket, stateDir: join(d, 'state') }) };
}

/** Container IDs of the measured Plexus ADDs, for the breakdown. */
const measured = new Set<string>();

async function plexusCycle(d: Daemon, netns: string, pod: string, record: boolean): Promise<[number, number]> {
  const cid = randomBytes(32).toString('hex');
  if (record) measured.add(cid);
  const t0 = performance.now();
  await must(exec(join(ROOT, 'bin/plexus'), cniEnv('ADD', cid, netns, 'eth0', pod), d.conf), 'plexus ADD');
  const t1 = performance.now();
  await must(exec(join(ROOT, 'bin/plexus'), cniEnv('DEL', cid, netns, 'eth0', pod), d.conf), 'plexus DEL');
  return [t1 - t0, performance.now() - t1];
}

async function directCycle(netns: string): Promise<[number, number]> {
  const cid = randomBytes(32).toString('hex');
  const t0 = performance.now();
  const results: string[] = [];
  for (const d of direct) {
    const r = await must(exec(join(CNI_DIR, d.conf.type as string), cniEnv('ADD', cid, netns, d.ifName, 'direct'), JSON.stringify(d.conf)), `direct ${d.conf.type} ADD`);
    results.push(r.stdout);
  }
  const t1 = performance.now();
  for (const [i, d] of [...direct.entries()].reverse()) {
    const conf = { ...d.conf, prevResult: JSON.parse(results[i]!) };
    await must(exec(join(CNI_DIR, d.conf.type as string), cniEnv('DEL', cid, netns, d.ifName, 'direct'), JSON.stringify(conf)), `direct ${d.conf.type} DEL`);
  }
  return [t1 - t0, performance.now() - t1];
}

function makeNetns(name: string): string {
  sh('ip', ['netns', 'add', name]);
  createdNetns.push(name);
  return `/var/run/netns/${name}`;
}

async function startDaemon(d: Daemon, extra: object): Promise<ChildProcess> {
  mkdirSync(d.dir, { recursive: true });
  // As in production (log level info); the breakdown reads each ADD's own log line.
  const config = { socketPath: d.socket, stateDir: join(d.dir, 'state'), binDirs: [CNI_DIR], confDir: join(dir, 'cni'), clusterNetwork: 'cluster', source: { type: 'file', dir: join(dir, 'manifests') }, logLevel: 'info', ...extra };
  writeFileSync(join(d.dir, 'plexusd.json'), JSON.stringify(config));
  const log = openSync(join(d.dir, 'plexusd.log'), 'a');
  const env = { PATH: process.env['PATH'] ?? '' };
  d.proc = withNetns(nodePath, () => spawn(process.execPath, [join(ROOT, 'bin/plexusd'), '--config', join(d.dir, 'plexusd.json')], { env, stdio: ['ignore', log, log] }));
  for (let i = 0; i < 200; i++) {
    const r = run(join(ROOT, 'bin/plexusctl'), ['--socket', d.socket, 'health'], { allowFail: true });
    if (r.code === 0) return d.proc;
    await new Promise((r2) => setTimeout(r2, 50));
  }
  throw new Error(`plexusd (${d.name}) did not become ready`);
}

function podManifests(names: string[]): string {
  return names.map((n) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${n}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: extra1, extra2\n`).join('---\n');
}

function nadManifest(name: string, conf: object): string {
  return `apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  config: '${JSON.stringify(conf)}'\n`;
}

async function main(): Promise<void> {
  for (const d of ['cni', 'manifests', 'state', 'host-local']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'cni/10-cluster.conflist'), JSON.stringify(cluster));
  writeFileSync(join(dir, 'manifests/nads.yaml'), [nadManifest('extra1', extra1), nadManifest('extra2', extra2)].join('---\n'));
  const rssPods = Array.from({ length: PODS_FOR_RSS }, (_, i) => `rss-${i}`);
  writeFileSync(join(dir, 'manifests/pods.yaml'), podManifests(['bench', ...rssPods]));
  sh('ip', ['netns', 'add', NODE]);
  sh('ip', ['-n', NODE, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', NODE, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0p']);
  sh('ip', ['-n', NODE, 'link', 'set', 'uplink0', 'up']);
  sh('ip', ['-n', NODE, 'link', 'set', 'uplink0p', 'up']);
  const plexusd = daemonAt('plexus');
  const serial = daemonAt('plexus-serial');
  try {
    const daemon = await startDaemon(plexusd, {});
    await startDaemon(serial, { prestartDelegates: false });
    await new Promise((r) => setTimeout(r, 500));
    const rssIdle = rssMiB(daemon.pid!);
    const podA = makeNetns(`plxb-${id}-a`);
    const podB = makeNetns(`plxb-${id}-b`);
    const podC = makeNetns(`plxb-${id}-c`);
    const series = () => ({ add: [] as number[], del: [] as number[], cycle: [] as number[] });
    const runs: Record<Variant, Series> = { direct: series(), plexus: series(), serial: series() };
    const variants: Variant[] = ['plexus', 'direct', 'serial'];
    process.stderr.write(`cni-add: ${WARMUP} warm-up + ${ITERATIONS} iterations each, rotating plexus, direct, plexus without prestart\n`);
    for (let i = 0; i < WARMUP + ITERATIONS; i++) {
      for (let k = 0; k < variants.length; k++) {
        const which = variants[(i + k) % variants.length]!;
        const record = i >= WARMUP;
        const [a, d] =
          which === 'plexus' ? await plexusCycle(plexusd, podA, 'bench', false) : which === 'serial' ? await plexusCycle(serial, podC, 'bench', record) : await directCycle(podB);
        if (!record) continue;
        runs[which].add.push(a);
        runs[which].del.push(d);
        runs[which].cycle.push(a + d);
      }
      if ((i + 1) % 20 === 0) process.stderr.write(`  ${i + 1 - WARMUP}/${ITERATIONS}\n`);
    }
    const breakdown = addBreakdown(readFileSync(join(serial.dir, 'plexusd.log'), 'utf8'));
    process.stderr.write(`cni-add: attaching ${PODS_FOR_RSS} pods for the RSS figure\n`);
    const pods = rssPods.map((name) => ({ name, path: makeNetns(`plxb-${id}-${name}`), cid: randomBytes(32).toString('hex') }));
    for (const p of pods) await must(exec(join(ROOT, 'bin/plexus'), cniEnv('ADD', p.cid, p.path, 'eth0', p.name), plexusd.conf), `ADD ${p.name}`);
    const rssPodsMiB = rssMiB(daemon.pid!);
    for (const p of pods) await must(exec(join(ROOT, 'bin/plexus'), cniEnv('DEL', p.cid, p.path, 'eth0', p.name), plexusd.conf), `DEL ${p.name}`);
    report(runs, rssIdle, rssPodsMiB, breakdown);
  } finally {
    for (const d of [plexusd, serial]) d.proc?.kill('SIGTERM');
    for (const ns of createdNetns.reverse()) run('ip', ['netns', 'del', ns], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

type Variant = 'direct' | 'plexus' | 'serial';
interface Series {
  add: number[];
  del: number[];
  cycle: number[];
}

interface Breakdown {
  /** Per measured ADD: the daemon's own time for the request, and its delegates' (spawn to exit). */
  daemon: number[];
  delegates: number[];
}

/** From plexusd's log: each measured ADD's line ("ADD done": its duration and its delegates' time). */
function addBreakdown(log: string): Breakdown {
  const out: Breakdown = { daemon: [], delegates: [] };
  for (const line of log.split('\n')) {
    if (!line.includes('"msg":"ADD done"')) continue;
    const e = JSON.parse(line) as { containerId?: string; ms?: number; delegatesMs?: number };
    if (!e.containerId || !measured.has(e.containerId) || e.ms === undefined || e.delegatesMs === undefined) continue;
    out.daemon.push(e.ms);
    out.delegates.push(e.delegatesMs);
  }
  return out;
}

function report(runs: Record<Variant, Series>, rssIdle: number, rssPods: number, breakdown: Breakdown): void {
  const rows: (string | number)[][] = [];
  const json: Record<string, unknown> = { iterations: ITERATIONS, networksPerPod: 3, unit: 'ms' };
  const ref = runs.direct;
  for (const [variant, label] of [['plexus', 'plexus'], ['serial', 'plexus, prestart off']] as const) {
    const out: Record<string, unknown> = {};
    for (const k of ['add', 'del', 'cycle'] as const) {
      const p = summarize(runs[variant][k]);
      const r = summarize(ref[k]);
      out[k] = { plexus: p, direct: r, overheadP50: p.p50 - r.p50, overheadP99: p.p99 - r.p99, ratioP50: p.p50 / r.p50, ratioP99: p.p99 / r.p99 };
      rows.push([k.toUpperCase(), label, round(r.p50, 1), round(p.p50, 1), round(p.p50 - r.p50, 1), round(p.p50 / r.p50), round(r.p99, 1), round(p.p99, 1), round(p.p99 - r.p99, 1), round(p.p99 / r.p99)]);
    }
    if (variant === 'plexus') Object.assign(json, out);
    else json['prestartOff'] = out;
  }
  json['rssMiB'] = { idle: round(rssIdle, 1), withPods: round(rssPods, 1), pods: PODS_FOR_RSS };
  // Where an ADD's overhead goes, at p50, from the daemon without prestart (with it, part of the delegates'
  // time is spent before the daemon hands them their config): outside the daemon (the forwarder's exec, the
  // socket round trip), the daemon's own work (parse, plan, two durable record writes, default route, status),
  // and what the delegates cost when the daemon spawns them beyond what they cost run directly.
  const own = breakdown.daemon.map((t, i) => t - breakdown.delegates[i]!);
  const serialAdd = summarize(runs.serial.add).p50;
  const b = {
    samples: breakdown.daemon.length,
    outsideDaemonP50: serialAdd - summarize(breakdown.daemon).p50,
    daemonOwnP50: summarize(own).p50,
    delegatesP50: summarize(breakdown.delegates).p50,
    delegatesBeyondDirectP50: summarize(breakdown.delegates).p50 - summarize(ref.add).p50,
    prestartGainP50: serialAdd - summarize(runs.plexus.add).p50,
  };
  json['addBreakdown'] = b;
  const add = json['add'] as { overheadP50: number; overheadP99: number; ratioP50: number };
  json['goals'] = { overheadP50Ms: 10, overheadP99Ms: 25, ratioP50: 1.05, metP50: add.overheadP50 <= 10, metP99: add.overheadP99 <= 25, metRatioP50: add.ratioP50 <= 1.05 };
  const md =
    `# bench/cni-add\n\nADD then DEL of one pod with 3 networks (ptp cluster network, bridge, macvlan; host-local IPAM), ` +
    `${ITERATIONS} iterations each, rotating; milliseconds. "direct" runs the same reference plugins in sequence ` +
    `as a runtime would; "plexus" goes through bin/plexus and plexusd as configured by default; "prestart off" is ` +
    `plexusd with \`prestartDelegates: false\`. Every process is started with posix_spawn, as a Go runtime starts one.\n\n` +
    mdTable(['op', 'variant', 'direct p50', 'plexus p50', 'overhead p50', 'ratio p50', 'direct p99', 'plexus p99', 'overhead p99', 'ratio p99'], rows) +
    `\nWhere the ADD overhead goes (p50, ms, from the prestart-off daemon's own timings of ${b.samples} ADDs): outside the daemon ` +
    `(bin/plexus exec, socket) ${round(b.outsideDaemonP50, 1)}; the daemon's own work (parse, plan, two durable ` +
    `record writes, default route, status) ${round(b.daemonOwnP50, 1)}; the three delegates spawned by the daemon ` +
    `${round(b.delegatesP50, 1)}, ${round(b.delegatesBeyondDirectP50, 1)} more than run directly. Starting each next plugin ` +
    `while the current one works (prestart) takes ${round(b.prestartGainP50, 1)} off an ADD.\n` +
    `\nplexusd RSS: ${round(rssIdle, 1)} MiB idle, ${round(rssPods, 1)} MiB with ${PODS_FOR_RSS} pods attached.\n` +
    `Goals (ADD): overhead p50 <= 10 ms ${add.overheadP50 <= 10 ? 'met' : 'NOT met'}, p99 <= 25 ms ${add.overheadP99 <= 25 ? 'met' : 'NOT met'}; ` +
    `ratio p50 <= 1.05 ${add.ratioP50 <= 1.05 ? 'met' : 'NOT met'}.\n\n![ADD latency CDF](cni-add.svg)\n`;
  const paths = writeResults('cni-add', json, md);
  writeFileSync(join(resolve(paths.md, '..'), 'cni-add.svg'), cdfSvg('ADD latency, 3 networks (CDF)', [
    { name: 'direct (reference plugins)', samples: ref.add, color: '#1f77b4' },
    { name: 'plexus', samples: runs.plexus.add, color: '#d62728' },
    { name: 'plexus, prestart off', samples: runs.serial.add, color: '#ff7f0e' },
  ]));
  process.stdout.write(md);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).message}\n`);
  process.exit(1);
});
