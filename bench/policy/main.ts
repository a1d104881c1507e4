/**
 * bench/policy: what NetworkPolicy costs on plexus-routed, against iptables doing the same filtering, in one run.
 *
 * Three two-node clusters (hack/cluster/), each with a client pod and a server pod on n1 (same node) and one on
 * n2 (across nodes):
 * - `ebpf-off`: the eBPF datapath with `policy.enforce: false`, no policy program at all (the baseline);
 * - `ebpf-0`, `ebpf-10`, `ebpf-1000`: the same datapath enforcing, with no policy, then a NetworkPolicy of 10
 *   and of 1,000 ingress rules selecting the servers (rules.ts: the client's rule last);
 * - `kernel-off`, `iptables-10`, `iptables-1000`: plexus-routed without eBPF (the kernel forwards, so netfilter
 *   sees the packets), bare, then with the same rules as plain iptables in FORWARD.
 * Each round measures every variant in turn (starting one later each round, so noise on shared cores hits all
 * alike): TCP throughput (iperf3, one stream), UDP request/response latency (sockperf ping-pong, p50/p99) and
 * new TCP connections per second (crr.c: where a rule list read in order shows, since only a connection's first
 * packet meets the rules). Before a variant is first measured, a pod the rules do not allow must fail to
 * connect: the benchmark measures filtering that happens.
 *
 * Then policy updates: POLICY_PODS pods (1,000) on n1 of the enforcing cluster, a NetworkPolicy of 10 rules
 * selecting all of them applied and removed POLICY_UPDATE_ROUNDS times: the daemon's own update time (its
 * plexus_policy_update_seconds histogram: compile and map writes) and the time from the manifest written to the
 * change seen by a ping every 10 ms; then, while it isolates them all, a policy for one of them added and removed
 * as often (the daemon's time: a change that touches one endpoint); and iptables-restore of the same rules for
 * the same number of pods.
 *
 * Knobs: POLICY_SECONDS (3), POLICY_ROUNDS (3), POLICY_PODS (1000), POLICY_UPDATE_ROUNDS (5). Results:
 * bench/results/policy.{json,md,svg}. Goals (report.ts) are reported, never asserted. Every netns is named
 * plxp*; everything is removed at the end, on failure and on SIGINT/SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Background, Cluster, must, type Pod, REPO_ROOT, runAsync } from '../../hack/cluster';
import { measureLatency, measureTcp, TCP_OMIT_SECONDS } from '../datapath/measure';
import { inNetns } from '../lib/netns';
import { BenchRun, positiveInt } from '../lib/run';
import { RESULTS_DIR, writeResults } from '../lib/stats';
import { buildReport, type Kind, KINDS, type Samples, type UpdateSamples, VARIANTS, type Variant } from './report';
import { IPT_TOP, iptablesRemove, iptablesRestore, networkPolicy, type RuleSet } from './rules';

const say = (line: string): void => void process.stderr.write(`policy: ${line}\n`);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const bench = new BenchRun(say);
/** Set once the measurements are over: servers exiting then is the clean-up's doing. */
let stopping = false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CTL = join(REPO_ROOT, 'bin/plexusctl');
const CRR_PORT = '7000';


/** One cluster of the run and what is measured in it. */
interface Setup {
  readonly kind: Variant['cluster'];
  readonly cluster: Cluster;
  readonly client: Pod;
  /** A pod no rule allows: it must fail to connect wherever rules apply. */
  readonly other: Pod;
  readonly servers: Record<Kind, Pod>;
  /** The rules in force now (null: none). */
  rules: number | null;
}

const setups = new Map<Variant['cluster'], Setup>();
/** Every cluster started, set up or not: clean-up destroys them all. */
const clusters: Cluster[] = [];
let crr = '';

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('must run as root (network namespaces)');
  const missing = ['/usr/bin/iperf3', '/usr/bin/sockperf', '/usr/sbin/iptables-restore'].filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`missing: ${missing.join(', ')} (apt-get install iperf3 sockperf iptables)`);
  const seconds = positiveInt('POLICY_SECONDS', 3);
  const rounds = positiveInt('POLICY_ROUNDS', 3);
  const pods = positiveInt('POLICY_PODS', 1000);
  const updateRounds = positiveInt('POLICY_UPDATE_ROUNDS', 5);
  const tmp = mkdtempSync(join(tmpdir(), 'plexus-bench-policy-'));
  crr = join(tmp, 'crr');
  await must('cc', ['-O2', '-Wall', '-o', crr, join(REPO_ROOT, 'bench/policy/crr.c')]);

  bench.onCleanup(async () => {
    for (const c of clusters) await c.destroy().catch((e: unknown) => say(`destroy: ${message(e)}`));
    rmSync(tmp, { recursive: true, force: true });
  });

  const samples = new Map<string, Samples>(VARIANTS.flatMap((v) => KINDS.map((k) => [`${v.name}|${k}`, { tcpGbps: [], p50Us: [], p99Us: [], crrPerSec: [] }] as const)));
  let update: UpdateSamples | undefined;
  try {
    const run = randomBytes(2).toString('hex');
    for (const [i, name] of (['ebpf-off', 'ebpf', 'kernel'] as const).entries()) {
      if (bench.aborted) return;
      setups.set(name, await setUp(`plxp${run}${name[0]}${i}`, name, 200 + i));
    }
    const perRound = VARIANTS.length * KINDS.length * (seconds * 3 + TCP_OMIT_SECONDS + 3);
    say(`${VARIANTS.length} variants x ${KINDS.length} paths, ${rounds} rounds of ${seconds} s measurements: about ${Math.ceil((perRound * rounds) / 60)} min, then ${pods} pods for the updates`);
    const checked = new Set<string>();
    for (let r = 0; r < rounds && !bench.aborted; r++) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]!);
      for (const v of order) {
        if (bench.aborted) return;
        const s = setups.get(v.cluster)!;
        await applyRules(s, v.rules);
        if (!checked.has(v.name)) {
          await checkFiltering(s, v);
          checked.add(v.name);
        }
        for (const kind of KINDS) {
          const into = samples.get(`${v.name}|${kind}`)!;
          const ep = { client: s.client.netns, server: s.servers[kind].netns, serverIp: s.servers[kind].ipv4! };
          const tcp = await measureTcp(ep, 1, seconds);
          const lat = await measureLatency(ep, seconds);
          const rate = await connectionRate(s.client, s.servers[kind], seconds);
          into.tcpGbps.push(tcp.gbps);
          into.p50Us.push(lat.p50Us);
          into.p99Us.push(lat.p99Us);
          into.crrPerSec.push(rate);
          say(`round ${r + 1}/${rounds} ${v.name.padEnd(13)} ${kind.padEnd(10)} ${tcp.gbps.toFixed(2)} Gbit/s, p50 ${lat.p50Us.toFixed(1)} µs, p99 ${lat.p99Us.toFixed(1)} µs, ${rate.toFixed(0)} conn/s`);
        }
      }
    }
    if (!bench.aborted) update = await measureUpdates(pods, updateRounds);
  } finally {
    stopping = true;
    await bench.cleanup();
  }
  if (bench.aborted) return;
  const report = buildReport(samples, update!, {
    seconds, rounds, pods, updateRounds, host: { kernel: release(), cpus: cpus().length, iptables: (await runAsync('iptables', ['--version'])).stdout.trim() },
  });
  const paths = writeResults('policy', report.json, report.markdown);
  const svg = join(RESULTS_DIR, 'policy.svg');
  writeFileSync(svg, report.svg);
  process.stdout.write(report.markdown);
  say(`results: ${paths.json}, ${paths.md}, ${svg}`);
}

/** A two-node cluster with a client, a pod no rule allows, and a server on each node, crr serving on each. */
async function setUp(prefix: string, kind: Variant['cluster'], underlayIndex: number): Promise<Setup> {
  say(`set up ${kind} (${prefix})`);
  const cluster = new Cluster({
    prefix, nodes: 2, datapath: 'routed', mode: 'native', ebpf: kind !== 'kernel', logLevel: 'warn', underlayIndex,
    daemon: { policy: { enforce: kind === 'ebpf' } },
  });
  clusters.push(cluster); // destroyed at clean-up whatever happens next
  await cluster.up();
  const client = await cluster.addPod('n1', { name: 'client' });
  const other = await cluster.addPod('n1', { name: 'other' });
  const servers = { 'same-node': await cluster.addPod('n1', { name: 'server1', labels: { app: 'server' } }), 'cross-node': await cluster.addPod('n2', { name: 'server2', labels: { app: 'server' } }) };
  for (const server of Object.values(servers)) {
    const bg = new Background('ip', inNetns(server.netns, crr, 'server', server.ipv4!, CRR_PORT));
    void bg.exited.then((code) => !bench.aborted && !stopping && say(`crr server in ${server.netns} exited ${code}: ${bg.output.trim()}`));
    // Other nodes' blocks are routed within moments of their claim.
    for (let i = 0; i < 50 && !cluster.ping(client.netns, server.ipv4!, 1); i++) await sleep(100);
  }
  if (kind === 'kernel') {
    for (const n of cluster.nodes) {
      await must('ip', inNetns(n.netns, 'iptables', '-N', IPT_TOP));
      await must('ip', inNetns(n.netns, 'iptables', '-I', 'FORWARD', '1', '-j', IPT_TOP));
    }
  }
  return { kind, cluster, client, other, servers, rules: null };
}

/** The rules on the servers, as NetworkPolicy (eBPF) or iptables (kernel); null: none. Waits until enforced. */
async function applyRules(s: Setup, rules: number | null): Promise<void> {
  if (s.rules === rules) return;
  const set: RuleSet = { namespace: 'default', selector: { app: 'server' }, rules: rules ?? 0, allowFrom: s.client.ipv4! };
  if (s.kind === 'kernel') {
    const input = rules === null ? iptablesRemove(2) : iptablesRestore(set, [s.servers['same-node'].ipv4!, s.servers['cross-node'].ipv4!]);
    for (const n of s.cluster.nodes) await must('ip', inNetns(n.netns, 'iptables-restore', '--noflush'), { input });
  } else {
    const before = await Promise.all(s.cluster.nodes.map((n) => updates(n.socket)));
    await s.cluster.writeManifest('policy.yaml', rules === null ? [] : [networkPolicy('bench', set)]);
    for (const [i, n] of s.cluster.nodes.entries()) {
      for (let t = 0; t < 200 && (await updates(n.socket)).count === before[i]!.count; t++) await sleep(50);
    }
  }
  s.rules = rules;
}

/** The daemon's policy updates so far: plexus_policy_update_seconds' count and sum. */
async function updates(socket: string): Promise<{ count: number; sum: number }> {
  const text = (await must(CTL, ['--socket', socket, 'metrics']));
  const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { count: get('plexus_policy_update_seconds_count'), sum: get('plexus_policy_update_seconds_sum') };
}

/** Where rules apply, a pod they do not allow fails to connect; the client connects everywhere. */
async function checkFiltering(s: Setup, v: Variant): Promise<void> {
  for (const server of Object.values(s.servers)) {
    const other = await runAsync('ip', inNetns(s.other.netns, crr, 'client', server.ipv4!, CRR_PORT, '0.2'));
    const client = await runAsync('ip', inNetns(s.client.netns, crr, 'client', server.ipv4!, CRR_PORT, '0.2'));
    if (client.code !== 0) throw new Error(`${v.name}: the client cannot connect to ${server.name}: ${client.stderr.trim()}`);
    const filtered = v.rules !== null;
    if ((other.code !== 0) !== filtered) throw new Error(`${v.name}: a pod no rule allows ${other.code === 0 ? 'connected to' : 'could not connect to'} ${server.name}`);
  }
  say(`${v.name}: ${v.rules === null ? 'no rules, every pod connects' : 'the rules hold: the client connects, the other pod does not'}`);
}

/** New TCP connections per second from `client` to `server` (crr.c). */
async function connectionRate(client: Pod, server: Pod, seconds: number): Promise<number> {
  const out = await must('ip', inNetns(client.netns, crr, 'client', server.ipv4!, CRR_PORT, String(seconds)), { timeoutMs: (seconds + 20) * 1000 });
  return Number(out.trim());
}

/**
 * `pods` pods on n1 of the enforcing cluster; a 10-rule NetworkPolicy selecting all of them applied and
 * removed `rounds` times, timed by the daemon and by a ping that sees it; then iptables-restore of the same
 * rules for as many pods on the kernel cluster's n1.
 */
async function measureUpdates(pods: number, rounds: number): Promise<UpdateSamples> {
  const s = setups.get('ebpf')!;
  const names = Array.from({ length: pods }, (_, i) => `b${i}`);
  // b0 also carries a label of its own, for the one-pod policy.
  await s.cluster.writeManifest('bulk.yaml', names.map((name, i) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'bulk', labels: { app: 'bulk', ...(i === 0 ? { first: 'yes' } : {}) } } })));
  const started = Date.now();
  const added: Pod[] = [];
  for (let i = 0; i < names.length; i += 8) {
    added.push(...await Promise.all(names.slice(i, i + 8).map((name) => s.cluster.addPod('n1', { namespace: 'bulk', name }))));
    if (added.length % 100 < 8) say(`${added.length}/${pods} pods on n1 (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    if (bench.aborted) throw new Error('bench.aborted');
  }
  const set: RuleSet = { namespace: 'bulk', selector: { app: 'bulk' }, rules: 10, allowFrom: s.client.ipv4!, allowPort: 80 };
  const out: UpdateSamples = { daemonMs: [], onePodMs: [], seenMs: [], iptablesApplyMs: [], iptablesRemoveMs: [] };
  const n1 = s.cluster.node('n1');
  const target = added[0]!.ipv4!;
  for (let r = 0; r < rounds; r++) {
    for (const apply of [true, false]) {
      // ICMP from the client: allowed without the policy, denied by it (its rule allows TCP 80 only).
      const ping = new Background('ip', inNetns(s.client.netns, 'ping', '-D', '-n', '-i', '0.01', '-W', '1', target));
      await sleep(300);
      const before = await updates(n1.socket);
      const t0 = Date.now();
      await s.cluster.writeManifest('bulk-policy.yaml', apply ? [networkPolicy('bulk', set)] : [], [n1]);
      let after = before;
      for (let t = 0; t < 400 && after.count === before.count; t++) after = (await sleep(25), await updates(n1.socket));
      await sleep(500);
      await ping.stop();
      const replies = [...ping.output.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
      const seen = apply ? Math.max(...replies.filter((t) => t >= t0)) : Math.min(...replies.filter((t) => t >= t0));
      out.daemonMs.push(((after.sum - before.sum) / Math.max(1, after.count - before.count)) * 1000);
      out.seenMs.push(Number.isFinite(seen) ? Math.max(0, seen - t0) : NaN);
      say(`update ${r + 1}/${rounds} ${apply ? 'apply ' : 'remove'}: daemon ${out.daemonMs.at(-1)!.toFixed(1)} ms, seen by ping after ${out.seenMs.at(-1)!.toFixed(0)} ms`);
    }
  }
  // While the 10-rule policy isolates every pod, one more policy for b0 alone: a change that touches one endpoint.
  const one = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'bulk', name: 'first' }, spec: { podSelector: { matchLabels: { first: 'yes' } }, ingress: [{ from: [{ ipBlock: { cidr: `${s.client.ipv4!}/32` } }], ports: [{ protocol: 'TCP', port: 81 }] }] } };
  const change = async (objects: Record<string, unknown>[]): Promise<number> => {
    const before = await updates(n1.socket);
    await s.cluster.writeManifest('bulk-policy.yaml', objects, [n1]);
    let after = before;
    for (let t = 0; t < 400 && after.count === before.count; t++) after = (await sleep(25), await updates(n1.socket));
    return ((after.sum - before.sum) / Math.max(1, after.count - before.count)) * 1000;
  };
  await change([networkPolicy('bulk', set)]);
  for (let r = 0; r < rounds; r++) {
    for (const add of [true, false]) {
      out.onePodMs.push(await change([networkPolicy('bulk', set), ...(add ? [one] : [])]));
      say(`one-pod update ${r + 1}/${rounds} ${add ? 'add   ' : 'remove'}: daemon ${out.onePodMs.at(-1)!.toFixed(1)} ms`);
    }
  }
  await change([]);
  const k = setups.get('kernel')!.cluster.node('n1');
  const ips = added.map((p) => p.ipv4!);
  for (let r = 0; r < rounds; r++) {
    for (const [input, into] of [[iptablesRestore(set, ips), out.iptablesApplyMs], [iptablesRemove(ips.length), out.iptablesRemoveMs]] as const) {
      const t0 = process.hrtime.bigint();
      await must('ip', inNetns(k.netns, 'iptables-restore', '--noflush'), { input, timeoutMs: 120_000 });
      into.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    say(`iptables ${r + 1}/${rounds}: restore of ${ips.length} pods x 10 rules ${out.iptablesApplyMs.at(-1)!.toFixed(0)} ms, removal ${out.iptablesRemoveMs.at(-1)!.toFixed(0)} ms`);
  }
  say(`deleting ${pods} pods`);
  for (let i = 0; i < added.length; i += 8) await Promise.all(added.slice(i, i + 8).map((p) => s.cluster.delPod(p)));
  return out;
}

bench.finish(main(), message);
