/**
 * bench/datapath: TCP throughput (iperf3, 1 and 4 streams) and UDP ping-pong latency (sockperf, p50/p99)
 * between two endpoints through every topology of the registry (topologies.ts), in one run. All topologies are
 * set up first; then each round runs each measurement on each topology in turn, so noise on the 2 shared cores
 * hits all of them alike, and the report takes the median of the rounds. Ratios are to the limit of each kind
 * (raw-veth same-node, raw-node-veth cross-node); goals (report.ts) are reported, never asserted.
 *
 * Knobs: DATAPATH_SECONDS (per measurement, default 3), DATAPATH_ROUNDS (default 5), DATAPATH_TOPOLOGIES
 * (comma-separated names, in the order wanted; default: all), DATAPATH_RESULTS (the results' file name in
 * bench/results, default `datapath`: a run of a few topologies should not replace the full one). Every netns is named plxd-<random>-*; all of them
 * and every process started are removed at the end, on failure and on SIGINT/SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchRun, positiveInt } from '../lib/run';
import { RESULTS_DIR, writeResults } from '../lib/stats';
import { SOCKPERF_MSG_SIZE, TCP_OMIT_SECONDS, checkReachable, clientMtu, measureLatency, measureTcp } from './measure';
import { type RunConfig, type Samples, type TopologyRun, buildReport, emptySamples } from './report';
import { selectTopologies } from './topologies';
import type { Endpoints, Topology } from './topology';


const say = (line: string): void => void process.stderr.write(`datapath: ${line}\n`);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const bench = new BenchRun(say);

interface Measurement {
  label: string;
  /** Runs once, adds its figures to `into`, returns them as text for the progress line. */
  run(ep: Endpoints, seconds: number, into: Samples): Promise<string>;
}

/** iperf3 with `streams` parallel streams, into the sample arrays of that stream count. */
function tcp(streams: 1 | 4): Measurement {
  return {
    label: `tcp x${streams}`,
    async run(ep, seconds, into) {
      const r = await measureTcp(ep, streams, seconds);
      into[streams === 1 ? 'tcp1Gbps' : 'tcp4Gbps'].push(r.gbps);
      into[streams === 1 ? 'retransmits1' : 'retransmits4'].push(r.retransmits);
      return `${r.gbps.toFixed(2)} Gbit/s, ${r.retransmits} retransmits`;
    },
  };
}

const MEASUREMENTS: Measurement[] = [
  tcp(1),
  tcp(4),
  {
    label: 'latency',
    async run(ep, seconds, into) {
      const r = await measureLatency(ep, seconds);
      into.p50Us.push(r.p50Us);
      into.p99Us.push(r.p99Us);
      return `p50 ${r.p50Us.toFixed(1)} µs, p99 ${r.p99Us.toFixed(1)} µs (${r.observations} observations)`;
    },
  },
];

function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('must run as root (network namespaces)');
  const missing = ['/usr/bin/iperf3', '/usr/bin/sockperf', '/usr/lib/cni/bridge', '/usr/lib/cni/ptp', '/usr/lib/cni/host-local'].filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`missing: ${missing.join(', ')} (apt-get install iperf3 sockperf containernetworking-plugins)`);
}

interface Active {
  topology: Topology;
  run: TopologyRun;
  ep: Endpoints;
}

/** Sets up every topology; one that fails (or cannot reach its server) is torn down and reported, not measured. */
async function setUpAll(topologies: Topology[], runs: TopologyRun[]): Promise<Active[]> {
  const active: Active[] = [];
  for (const [i, topology] of topologies.entries()) {
    if (bench.aborted) break;
    const run = runs[i]!;
    try {
      say(`set up ${topology.name} (${topology.kind})`);
      const ep = await topology.setup();
      await checkReachable(ep);
      run.endpoints = ep;
      run.mtu = await clientMtu(ep);
      active.push({ topology, run, ep });
    } catch (e) {
      if (bench.aborted) break;
      run.error = message(e);
      say(`set up ${topology.name} FAILED: ${run.error}`);
      await topology.teardown().catch((e2: unknown) => say(`teardown ${topology.name}: ${message(e2)}`));
    }
  }
  return active;
}

/** Each round runs each measurement on each topology in turn; a failed measurement is recorded and skipped. */
async function measureRounds(active: Active[], rounds: number, seconds: number): Promise<void> {
  const perRound = active.length * (2 * (seconds + TCP_OMIT_SECONDS) + seconds + 1.5);
  say(`${active.length} topologies, ${rounds} rounds x ${MEASUREMENTS.length} measurements x ${seconds} s: about ${Math.ceil((perRound * rounds) / 60)} min`);
  for (let r = 0; r < rounds; r++) {
    // Round-robin, starting one topology later each round, so none is always measured first.
    const order = active.map((_, i) => active[(i + r) % active.length]!);
    for (const m of MEASUREMENTS) {
      for (const { topology, run, ep } of order) {
        if (bench.aborted) return;
        const tag = `round ${r + 1}/${rounds} ${m.label.padEnd(7)} ${topology.name.padEnd(16)}`;
        try {
          say(`${tag} ${await m.run(ep, seconds, run.samples)}`);
        } catch (e) {
          if (bench.aborted) return;
          run.failures.push(`round ${r + 1} ${m.label}: ${message(e)}`);
          say(`${tag} FAILED: ${message(e)}`);
        }
      }
    }
  }
}


async function main(): Promise<void> {
  checkPrerequisites();
  const seconds = positiveInt('DATAPATH_SECONDS', 3);
  const rounds = positiveInt('DATAPATH_ROUNDS', 5);
  const resultsName = process.env['DATAPATH_RESULTS'] || 'datapath';
  if (!/^[a-z0-9][a-z0-9-]*$/.test(resultsName)) throw new Error(`DATAPATH_RESULTS must be a file name of [a-z0-9-], not '${resultsName}'`);
  const runPrefix = `plxd-${randomBytes(3).toString('hex')}`;
  const tmp = join(tmpdir(), runPrefix);
  const topologies = selectTopologies(process.env['DATAPATH_TOPOLOGIES'], runPrefix, tmp);
  mkdirSync(tmp, { mode: 0o700 });

  bench.onCleanup(async () => {
    for (const t of topologies) await t.teardown().catch((e: unknown) => say(`teardown ${t.name}: ${message(e)}`));
    rmSync(tmp, { recursive: true, force: true });
  });

  const runs: TopologyRun[] = topologies.map((t) => ({ name: t.name, kind: t.kind, baseline: t.baseline, ...(t.likeForLike ? { likeForLike: t.likeForLike } : {}), description: t.description, samples: emptySamples(), failures: [] }));
  try {
    const active = await setUpAll(topologies, runs);
    if (!bench.aborted) await measureRounds(active, rounds, seconds);
  } finally {
    await bench.cleanup();
  }
  if (bench.aborted) return;

  const config: RunConfig = {
    seconds,
    rounds,
    tcpOmitSeconds: TCP_OMIT_SECONDS,
    sockperfMsgSize: SOCKPERF_MSG_SIZE,
    host: { kernel: release(), cpus: cpus().length, brNetfilter: existsSync('/proc/sys/net/bridge') },
  };
  const report = buildReport(runs, config);
  const svgPath = join(RESULTS_DIR, `${resultsName}.svg`);
  const paths = writeResults(resultsName, report.json, report.markdown.replace('](datapath.svg)', `](${resultsName}.svg)`));
  writeFileSync(svgPath, report.svg);
  process.stdout.write(report.markdown);
  say(`results: ${paths.json}, ${paths.md}, ${svgPath}`);
}

bench.finish(main(), message);
